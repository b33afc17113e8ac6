"""Every network that describes itself (:class:`~sesim.nets.described.Described`), and
:func:`build_network`, which rebuilds one from its spec."""

from __future__ import annotations

from typing import Any

from torch import nn

from . import exemplar_translator, multiscale_d, munit, patchgan, resnet_generator, stylegan2  # noqa: F401  (registered)
from .described import NetworkSpecError, described_class

__all__ = ["build_network"]


def build_network(spec: dict[str, Any]) -> nn.Module:
    """A new network (fresh weights) from a spec written by :attr:`Described.spec`.

    Raises:
        NetworkSpecError: not a spec, an unknown class, or arguments the class does not take.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("kwargs"), dict) or "class" not in spec:
        raise NetworkSpecError(f"not a network spec: {spec!r}")
    cls = described_class(spec["class"])
    if cls is None:
        raise NetworkSpecError(f"unknown network class {spec['class']!r}")
    try:
        return cls(**spec["kwargs"])
    except TypeError as err:
        raise NetworkSpecError(f"{spec['class']} cannot be built from {spec['kwargs']}: {err}") from None
