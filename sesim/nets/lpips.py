"""LPIPS (Zhang et al., CVPR 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), version 0.1, with its backbone passed in.

``d(x, y) = sum_l mean_{h,w} w_l . (n(f_l(x)) - n(f_l(y)))^2`` where ``f_l`` are five ReLU
activations of an ImageNet backbone (AlexNet: relu1..relu5; VGG16: relu1_2, relu2_2, relu3_3,
relu4_3, relu5_3), ``n`` divides each feature vector by its L2 norm over channels (+1e-10), and
``w_l >= 0`` are the learned 1x1 "linear" layers. Inputs are ``[-1, 1]`` images shifted and scaled
per channel by the v0.1 "scaling layer" (shift ``(-.030, -.088, -.188)``, scale ``(.458, .448,
.450)``, i.e. ImageNet mean/std in [-1, 1] units).

Weights (nothing is downloaded; see :mod:`sesim.nets.weightfiles`):

* backbone: torchvision's ``alexnet-owt-7be5be79.pth`` (``--lpips-backbone-weights``,
  ``$SESIM_ALEXNET_WEIGHTS``, hub cache) or ``vgg16-397923af.pth`` (``$SESIM_VGG16_WEIGHTS``, hub cache);
* linear layers: the ``lpips`` package's ``weights/v0.1/alex.pth`` / ``vgg.pth`` (keys
  ``lin0.model.1.weight`` ... ``lin4.model.1.weight``, shape ``(1, C_l, 1, 1)``): ``--lpips-weights``,
  ``$SESIM_LPIPS_WEIGHTS``, hub cache ``lpips_v0.1_<net>.pth``, or the file inside an installed
  ``lpips`` package (``pip install lpips``: 53 kB, ships these weights).

:class:`LPIPS` takes any backbone module returning the five feature maps, so tests use random nets.
"""

from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .vgg import VGG16_ENV, VGG16_IMAGENET_FILE, VGG16Features, rename_torchvision_keys, run_to_taps
from .weightfiles import load_weights_file, require_weights_file

__all__ = ["LPIPS", "AlexNetTrunk", "VGG16Trunk", "build_lpips", "LPIPS_CHANNELS", "ALEXNET_FILE"]

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
LPIPS_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)

# (name, kind, args) of torchvision's AlexNet ``features``; index i in torchvision == position i here.
_ALEX_PLAN = (
    ("conv1", "conv", (3, 64, 11, 4, 2)), ("relu1", "relu", ()), ("pool1", "pool", ()),
    ("conv2", "conv", (64, 192, 5, 1, 2)), ("relu2", "relu", ()), ("pool2", "pool", ()),
    ("conv3", "conv", (192, 384, 3, 1, 1)), ("relu3", "relu", ()),
    ("conv4", "conv", (384, 256, 3, 1, 1)), ("relu4", "relu", ()),
    ("conv5", "conv", (256, 256, 3, 1, 1)), ("relu5", "relu", ()),
)
_ALEX_TAPS = ("relu1", "relu2", "relu3", "relu4", "relu5")
_VGG_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")


class AlexNetTrunk(nn.Module):
    """torchvision AlexNet ``features`` up to relu5, layers named; returns the 5 ReLU outputs.

    Input: ``(N, 3, H, W)`` already normalised by the LPIPS scaling layer. ``weights``: a path,
    ``"auto"`` (flag/env/hub cache, else ``WeightsNotFoundError``) or ``None`` (random init).
    """

    def __init__(self, weights: str | os.PathLike | None = "auto") -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for name, kind, args in _ALEX_PLAN:
            if kind == "conv":
                cin, cout, k, s, p = args
                layers[name] = nn.Conv2d(cin, cout, k, stride=s, padding=p)
            elif kind == "relu":
                layers[name] = nn.ReLU()
            else:
                layers[name] = nn.MaxPool2d(kernel_size=3, stride=2)
        self.body = nn.Sequential(layers)
        self.weights_source = "random"
        if weights is not None:
            path = require_weights_file(
                ALEXNET_FILE, "AlexNet (ImageNet, torchvision) for LPIPS", env="SESIM_ALEXNET_WEIGHTS",
                path=None if weights == "auto" else weights, flag="--lpips-backbone-weights",
                source_hint="It is torchvision's AlexNet_Weights.IMAGENET1K_V1 file.")
            state = load_weights_file(path, "AlexNet")
            self.body.load_state_dict(rename_torchvision_keys(state, [n for n, _, _ in _ALEX_PLAN]))
            self.weights_source = str(path)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(run_to_taps(self.body, x, _ALEX_TAPS).values())


class VGG16Trunk(nn.Module):
    """VGG16 (sesim's named :class:`~sesim.nets.vgg.VGG16Features` body) returning the 5 LPIPS taps.

    Input already normalised by the LPIPS scaling layer (VGG16Features' own normalisation is skipped).
    """

    def __init__(self, weights: str | os.PathLike | None = "auto") -> None:
        super().__init__()
        if weights == "auto":
            weights = require_weights_file(VGG16_IMAGENET_FILE, "VGG16 (ImageNet, torchvision) for LPIPS",
                                           env=VGG16_ENV, flag="--lpips-backbone-weights")
        self.vgg = VGG16Features(layers=_VGG_TAPS, weights=weights, download=False)
        self.weights_source = self.vgg.weights_source

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(run_to_taps(self.vgg.body, x, _VGG_TAPS).values())


def _lpips_package_file(net: str) -> Path | None:
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1" / f"{net}.pth"


class LPIPS(nn.Module):
    """LPIPS v0.1 distance with a given backbone.

    Args:
        backbone: module mapping a normalised ``(N, 3, H, W)`` batch to a list of 5 feature maps
            with ``channels`` channels.
        channels: channel count of each feature map.
        linear_weights: state dict (or path to one) with ``lin{l}.model.1.weight`` of shape
            ``(1, C_l, 1, 1)``, or ``None`` for uniform weights ``1 / C_l`` (a test configuration:
            not the published LPIPS).

    ``forward(x, y)``: ``(N, 3, H, W)`` images in ``[-1, 1]`` (H, W >= 32 for AlexNet) -> ``(N,)``
    distances (>= 0, 0 for identical images).
    """

    def __init__(self, backbone: nn.Module, channels: Sequence[int],
                 linear_weights: dict | str | os.PathLike | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.channels = tuple(int(c) for c in channels)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in self.channels)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.linear_source = "uniform"
        if linear_weights is None:
            for lin, c in zip(self.lins, self.channels):
                nn.init.constant_(lin.weight, 1.0 / c)
        else:
            source = "state dict"
            if not isinstance(linear_weights, dict):
                source = str(linear_weights)
                linear_weights = load_weights_file(linear_weights, "LPIPS linear layers")
            for i, lin in enumerate(self.lins):
                key = f"lin{i}.model.1.weight"
                if key not in linear_weights:
                    raise ValueError(f"LPIPS linear weights lack {key} ({source}); is it an lpips v0.1 file?")
                lin.weight.data.copy_(linear_weights[key].reshape(lin.weight.shape))
            self.linear_source = source
        self.eval()
        self.requires_grad_(False)

    @staticmethod
    def _unit(f: torch.Tensor) -> torch.Tensor:
        return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected two (N, 3, H, W) batches of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
        fx = self.backbone((x - self.shift) / self.scale)
        fy = self.backbone((y - self.shift) / self.scale)
        total = x.new_zeros(x.shape[0])
        for lin, a, b in zip(self.lins, fx, fy):
            total = total + lin((self._unit(a) - self._unit(b)) ** 2).mean(dim=(1, 2, 3))
        return total


def build_lpips(net: str = "alex", *, backbone_weights: str | os.PathLike | None = "auto",
                linear_weights: str | os.PathLike | None = "auto") -> LPIPS:
    """The published LPIPS v0.1 (``net`` = ``"alex"`` or ``"vgg"``) from local files (see module doc).

    ``backbone_weights=None`` / ``linear_weights=None`` give random / uniform weights (tests only).
    """
    if net not in LPIPS_CHANNELS:
        raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_CHANNELS)}, got {net!r}")
    if linear_weights == "auto":
        linear_weights = require_weights_file(
            f"lpips_v0.1_{net}.pth", f"LPIPS v0.1 linear layers ({net})", env="SESIM_LPIPS_WEIGHTS",
            flag="--lpips-weights", extra=[_lpips_package_file(net)],
            source_hint=f"It is weights/v0.1/{net}.pth of the `lpips` pip package; `pip install lpips` "
                        f"(or `pip install sesim[eval]`) lets sesim find it there.")
    trunk = AlexNetTrunk(backbone_weights) if net == "alex" else VGG16Trunk(backbone_weights)
    model = LPIPS(trunk, LPIPS_CHANNELS[net], linear_weights)
    model.net_name = net
    return model
