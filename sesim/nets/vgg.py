"""VGG16 feature extractor with layers chosen by name, and explicit weight loading.

The structure loss reads activations such as ``relu3_1`` and ``relu4_1`` of an ImageNet VGG16
(the configuration "D" of Simonyan & Zisserman, without batch norm). Layers are addressed by
name, never by an integer index into ``torchvision.models.vgg16().features``.

Weights (``weights=`` argument):

- ``"imagenet"``: torchvision's ``VGG16_Weights.IMAGENET1K_V1`` state dict, file
  ``vgg16-397923af.pth``. Looked for, in order, at ``$SESIM_VGG16_WEIGHTS``, then in the torch
  hub cache (``$TORCH_HOME/hub/checkpoints/``, default ``~/.cache/torch/hub/checkpoints/``),
  and finally downloaded into that cache by torchvision's URL unless ``SESIM_OFFLINE=1`` or
  ``download=False``. When none works, :class:`WeightsNotFoundError` names the file and every
  place looked.
- ``"auto"``: the same, but never downloads.
- a path (``str`` or ``os.PathLike``) to a state dict saved with ``torch.save``; keys either in
  torchvision's form (``features.10.weight``) or sesim's (``conv3_1.weight``).
- ``None`` / ``"random"``: random (Kaiming) initialisation -- a test fixture: through the structure
  loss, random VGG16 features are far less reliable on real photos than pretrained ones (AUC 0.71 /
  0.60 against 1.00, :mod:`sesim.nets.backbones`).

Which backbone and weights a command uses when the user names none is decided in
:mod:`sesim.nets.backbones`, not here.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn

from .weightfiles import WeightsNotFoundError, find_weights_file, hub_checkpoint_path, load_weights_file, rgb_input

log = logging.getLogger("sesim")

# (name, kind, out_channels) in network order; kinds: conv, relu, pool.
_VGG16_PLAN: tuple[tuple[str, str, int], ...] = tuple(
    item
    for block, (n_convs, ch) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], start=1)
    for item in (
        [
            entry
            for i in range(1, n_convs + 1)
            for entry in ((f"conv{block}_{i}", "conv", ch), (f"relu{block}_{i}", "relu", ch))
        ]
        + [(f"pool{block}", "pool", ch)]
    )
)

#: All layer names in network order (``conv1_1``, ``relu1_1``, ..., ``pool5``).
VGG16_LAYERS: tuple[str, ...] = tuple(name for name, _, _ in _VGG16_PLAN)
#: The ReLU outputs, the usual choices for perceptual and structure losses.
VGG16_RELU_LAYERS: tuple[str, ...] = tuple(n for n, kind, _ in _VGG16_PLAN if kind == "relu")

VGG16_IMAGENET_FILE = "vgg16-397923af.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


VGG16_ENV = "SESIM_VGG16_WEIGHTS"


def vgg16_search_places() -> list[str]:
    """Where :func:`find_imagenet_weights` looks, in order, as words for an error message."""
    env = os.environ.get(VGG16_ENV)
    return [f"${VGG16_ENV} ({env if env else 'not set'})", str(hub_checkpoint_path(VGG16_IMAGENET_FILE))]


def find_imagenet_weights() -> Path | None:
    """Return the local path of the ImageNet VGG16 state dict (``$SESIM_VGG16_WEIGHTS``, then the
    torch hub cache), or ``None`` if absent. A set variable that names no file is an error."""
    return find_weights_file(VGG16_IMAGENET_FILE, env=VGG16_ENV)


def _load_imagenet_state(download: bool) -> tuple[dict[str, torch.Tensor], Path]:
    path = find_imagenet_weights()
    if path is not None:
        return load_weights_file(path, "VGG16"), path
    offline = os.environ.get("SESIM_OFFLINE", "") not in ("", "0")
    reason = "downloads are disabled (SESIM_OFFLINE is set)" if offline else "download was not attempted"
    if download and not offline:
        try:
            from torchvision.models import VGG16_Weights

            state = torch.hub.load_state_dict_from_url(VGG16_Weights.IMAGENET1K_V1.url, map_location="cpu",
                                                       progress=True)
            return state, hub_checkpoint_path(VGG16_IMAGENET_FILE)
        except Exception as exc:  # no network, proxy, hash mismatch...
            reason = f"the download failed ({type(exc).__name__}: {exc})"
    places = "\n".join(f"  - {p}" for p in vgg16_search_places())
    raise WeightsNotFoundError(
        f"ImageNet VGG16 weights not found: {VGG16_IMAGENET_FILE} is needed and {reason}.\n"
        f"Looked for it at:\n{places}\n"
        f"Put torchvision's {VGG16_IMAGENET_FILE} in one of these places (copy it from a machine "
        f"where `torchvision.models.vgg16(weights='IMAGENET1K_V1')` has run) or pass its path "
        f"(--backbone-weights PATH; weights=PATH in Python). Without it, the default backbone "
        f"(--backbone auto) uses the pretrained EfficientNet-Lite0 that installs with sesim."
    )


def rename_torchvision_keys(state: Mapping[str, torch.Tensor], names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Map the ``features.<i>.<param>`` keys of a torchvision VGG/AlexNet state dict to ``<names[i]>.<param>``.

    Keys already in that form are kept; ``classifier.*`` and anything else is dropped."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "features" and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(names):
            out[f"{names[int(parts[1])]}.{parts[2]}"] = value
        elif parts[0] in names:
            out[key] = value
    return out


def run_to_taps(body: nn.Sequential, x: torch.Tensor, taps: Sequence[str]) -> dict[str, torch.Tensor]:
    """Run ``body``'s named layers on ``x`` until each layer named in ``taps`` has given its output;
    returns ``{layer: output}`` in network order."""
    out: dict[str, torch.Tensor] = {}
    for name, layer in body.named_children():
        x = layer(x)
        if name in taps:
            out[name] = x
            if len(out) == len(taps):
                break
    return out


#: the paper's structure layers (Sec. 4, App. B.1), the default of the loss on VGG16
VGG16_DEFAULT_LAYERS: tuple[str, ...] = ("relu3_1", "relu4_1")


class VGG16Features(nn.Module):
    """Frozen-by-default VGG16 trunk returning named activations.

    Args:
        layers: names from :data:`VGG16_LAYERS`, e.g. ``("relu3_1", "relu4_1")``. The trunk is cut
            after the deepest one.
        weights: ``"imagenet"``, ``"auto"``, a state-dict path, or ``None`` / ``"random"`` (see the
            module docstring). ``weights_source`` and ``weights_file`` say what was loaded.
        requires_grad: train the trunk (default ``False``: parameters frozen).
        download: allow downloading ImageNet weights when they are not cached.

    Input: ``(N, 3, H, W)`` or ``(N, 1, H, W)`` images in [-1, 1]; greyscale is repeated to 3
    channels. ImageNet mean/std normalisation is applied inside.
    Output: ``dict`` layer name -> ``(N, C_l, H / s_l, W / s_l)`` with ``C_l`` from
    :attr:`out_channels` and stride ``s_l`` from :meth:`stride`.
    """

    name = "vgg16"

    def __init__(self, layers: Sequence[str] = VGG16_DEFAULT_LAYERS, weights: str | os.PathLike | None = "imagenet", *,
                 requires_grad: bool = False, download: bool = True) -> None:
        super().__init__()
        layers = tuple(layers)
        unknown = [name for name in layers if name not in VGG16_LAYERS]
        if not layers or unknown:
            raise ValueError(f"unknown VGG16 layer(s) {unknown or '(none given)'}; choose from {VGG16_RELU_LAYERS}")
        self.layers = layers
        last = max(VGG16_LAYERS.index(name) for name in layers)
        modules: OrderedDict[str, nn.Module] = OrderedDict()
        in_ch = 3
        for name, kind, ch in _VGG16_PLAN[: last + 1]:
            if kind == "conv":
                modules[name] = nn.Conv2d(in_ch, ch, kernel_size=3, padding=1)
                in_ch = ch
            elif kind == "relu":
                modules[name] = nn.ReLU(inplace=False)
            else:
                modules[name] = nn.MaxPool2d(kernel_size=2, stride=2)
        self.body = nn.Sequential(modules)
        self.out_channels: dict[str, int] = {n: c for n, _, c in _VGG16_PLAN if n in layers}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.weights_file: Path | None = None
        self.weights_source = self._load(weights, download)
        self.requires_grad_(requires_grad)

    # -- weights ---------------------------------------------------------------------------
    def _load(self, weights: str | os.PathLike | None, download: bool) -> str:
        if weights is None or weights == "random":
            log.debug("VGG16 features are randomly initialised (Kaiming).")
            for m in self.body:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
            return "random"
        if weights in ("imagenet", "auto") or type(weights).__name__ == "VGG16_Weights":
            state, path = _load_imagenet_state(download and weights != "auto")
            source = "imagenet"
        else:
            path = find_weights_file(VGG16_IMAGENET_FILE, path=weights, what="VGG16")
            state = load_weights_file(path, "VGG16")
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            source = str(path)
        state = rename_torchvision_keys(state, VGG16_LAYERS)
        own = self.body.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise ValueError(f"VGG16 state dict from {source} lacks {missing[:4]}... ; is it a VGG16 checkpoint?")
        self.body.load_state_dict({k: state[k] for k in own})
        self.weights_file = path
        return source

    # -- geometry --------------------------------------------------------------------------
    @staticmethod
    def stride(layer: str) -> int:
        """Spatial downsampling factor of ``layer`` relative to the input (1, 2, 4, 8, 16 or 32)."""
        idx = VGG16_LAYERS.index(layer)
        return 2 ** sum(1 for n in VGG16_LAYERS[: idx + 1] if n.startswith("pool"))

    # -- forward ---------------------------------------------------------------------------
    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images (1 or 3 channels) -> ImageNet-normalised 3-channel input."""
        return ((rgb_input(x) + 1) * 0.5 - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return run_to_taps(self.body, self.normalize_input(x), self.layers)
