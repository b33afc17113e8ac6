"""The methods the benchmarks compare, each a list of sesim presets plus a few flat options.

A benchmark builds a method's training config in three layers (:func:`build_config`): its own base
(presets and flat options shared by every method it compares: image size, network widths, data),
then the method (:data:`METHODS`: the presets in ``sesim/presets/*.toml`` that define it, then its
flat options), then its per-run options (steps, seed, run folder, ``--set`` overrides). Configs are
touched only through ``TrainConfig()``, ``apply_preset``, ``set_flat`` and ``to_dict``; values are
read back through :func:`option`, the one place that knows how a config stores its options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    from sesim.config import TrainConfig


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    presets: tuple[str, ...] = ()
    #: flat options (``TrainConfig.set_flat`` names) applied after the presets
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: how the method is configured, for the reports
    note: str = ""


METHODS: dict[str, Method] = {m.key: m for m in (
    Method("cyclegan", "CycleGAN", ("cyclegan",),
           note="preset `cyclegan`: two G, two D, cycle 10, identity 0.5, pool 50, lr 2e-4"),
    Method("cut", "CUT", ("cut",), note="preset `cut`: PatchNCE on G's encoder, identity NCE, lambda_NCE 1, lr 2e-4"),
    Method("fastcut", "FastCUT", ("fastcut",),
           note="preset `fastcut`: no identity NCE, lambda_NCE 10, flip equivariance, lr 2e-4"),
    Method("gan-only", "GAN only", (), {"structure": "none"}, note="sesim method, structure loss off (lambda = 0)"),
    Method("fsesim", "FSeSim", (), {"structure": "fsesim"}, note="sesim method, fixed pretrained self-similarity"),
    Method("lsesim", "LSeSim", ("lsesim",), note="sesim method, learned heads (InfoNCE)"),
    # --mode single-image (paper Sec. 4.3)
    Method("painting2photo", "FSeSim", ("painting2photo",), note="preset `painting2photo`: single-image FSeSim"),
    Method("sincut", "SinCUT", ("sincut",), note="preset `sincut`: single-image CUT"),
)}


def build_config(method: Method | str | None = None, *, presets: Iterable[str] = (),
                 base: Mapping[str, Any] | None = None, run: Mapping[str, Any] | None = None) -> "TrainConfig":
    """``TrainConfig()`` + the benchmark's ``presets`` and flat ``base`` options + ``method``'s presets
    and options + the flat ``run`` options (in their order; later ones win)."""
    from sesim.config import TrainConfig

    method = METHODS[method] if isinstance(method, str) else method
    cfg = TrainConfig()
    for name in presets:
        cfg.apply_preset(name)
    set_options(cfg, base or {})
    if method is not None:
        for name in method.presets:
            cfg.apply_preset(name)
        set_options(cfg, method.settings)
    set_options(cfg, run or {})
    return cfg


def set_options(cfg: "TrainConfig", values: Mapping[str, Any]) -> "TrainConfig":
    for key, value in values.items():
        cfg.set_flat(key, value)
    return cfg


def option(cfg: "TrainConfig", name: str) -> Any:
    """The value of a config option by its flat name (``"steps"``, ``"structure"``; ``"method"``).

    The only place bench code reads a config's values: the layout of ``TrainConfig`` may change
    (sections split per component) and then only this function follows it.
    """
    try:
        return cfg.get_flat(name)
    except KeyError:
        raise KeyError(f"no config option {name!r}") from None


def parse_sets(items: Iterable[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` arguments -> ``{key: value}`` (dashes in keys become underscores)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def unavailable(method: Method | str) -> str | None:
    """Why ``method`` cannot run in this checkout (its sesim method is not registered), or None."""
    from sesim.methods import RECIPES

    method = METHODS[method] if isinstance(method, str) else method
    cfg = build_config(method)
    key = (option(cfg, "method"), option(cfg, "mode"))
    return None if key in RECIPES else f"{method.label} (recipe {key} is not in sesim.methods.RECIPES)"
