"""Networks that describe themselves: the arguments a network was built with travel with its weights.

A class deriving from :class:`Described` records the arguments of its constructor call (after
defaults are applied) as :attr:`Described.spec`, ``{"class": name, "kwargs": {...}}``, plain JSON.
Run folders store the spec next to the weights (``generator.safetensors`` metadata), so
:func:`sesim.nets.registry.build_network` rebuilds the network from the file alone, without the training
configuration or any training recipe (``sesim translate``, ``export``, ``viz``, ``view``);
:mod:`sesim.nets.registry` knows every such class.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from torch import nn

__all__ = ["Described", "NetworkSpecError", "described_class", "network_spec"]

_CLASSES: dict[str, type["Described"]] = {}


class NetworkSpecError(ValueError):
    """A spec names an unknown network class or arguments it does not take."""


def _plain(value: Any) -> Any:
    """JSON-ready copy of a constructor argument (tuples become lists)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"constructor argument {value!r} is not plain data; a Described network takes only "
                    "numbers, strings, booleans, None and lists / dicts of them")


class Described(nn.Module):
    """Base class of networks whose constructor arguments are recorded in :attr:`spec`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _CLASSES[cls.__name__] = cls
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: Described, *args: Any, **kw: Any) -> None:
            if "_spec" not in self.__dict__:  # the outermost constructor (a subclass calls its parent's)
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = {k: _plain(v) for k, v in list(bound.arguments.items())[1:]}
                object.__setattr__(self, "_spec", {"class": type(self).__name__, "kwargs": arguments})
            init(self, *args, **kw)

        cls.__init__ = recording_init  # type: ignore[method-assign]

    @property
    def spec(self) -> dict[str, Any]:
        """``{"class": ..., "kwargs": {...}}``: what :func:`~sesim.nets.registry.build_network` needs to rebuild it."""
        return {"class": self._spec["class"], "kwargs": dict(self._spec["kwargs"])}


def network_spec(net: nn.Module) -> dict[str, Any] | None:
    """The spec of a :class:`Described` network (looking through ``torch.compile`` wrappers), else None."""
    net = getattr(net, "_orig_mod", net)
    return net.spec if isinstance(net, Described) else None


def described_class(name: str) -> type[Described] | None:
    """The :class:`Described` class called ``name`` among those imported so far."""
    return _CLASSES.get(name)
