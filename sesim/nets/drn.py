"""DRN-D-22 semantic segmentation (Yu, Koltun & Funkhouser, "Dilated Residual Networks", CVPR 2017),
built here so a user-supplied Cityscapes checkpoint scores label->photo translations offline.

The layout and parameter names are those of fyu/drn (``drn.py`` + ``DRNSeg`` of ``segment.py``), so
the released ``drn_d_22_cityscapes.pth`` loads key by key (a ``module.`` prefix from
``DataParallel`` and a ``{"state_dict": ...}`` wrapper are accepted):

* ``base.0`` .. ``base.8`` -- DRN arch "D", channels (16, 32, 64, 128, 256, 512, 512, 512), layer
  counts (1, 1, 2, 2, 2, 2, 1, 1): ``base.0`` 7x7 conv 3 -> 16 + BN + ReLU; ``base.1`` / ``base.2`` 3x3
  conv + BN + ReLU (the second with stride 2); ``base.3`` / ``base.4`` two residual BasicBlocks each
  with stride 2; ``base.5`` / ``base.6`` two BasicBlocks with dilation 2 / 4 (no stride); ``base.7`` /
  ``base.8`` 3x3 conv + BN + ReLU with dilation 2 / 1. Output stride 8, 512 channels.
* ``seg`` -- 1x1 conv 512 -> 19 classes; ``up`` -- a fixed bilinear 16x16 transposed conv, stride 8,
  per class (groups = classes), back to the input size; then log-softmax.

:class:`DRNSegmenter` is the callable :func:`sesim.metrics.segmentation.segmentation_accuracy`
expects: ``(N, 3, H, W)`` RGB in ``[0, 1]`` -> ``(N, 19, H, W)`` class scores, normalising inside with
the Cityscapes statistics of fyu/drn's ``datasets/cityscapes/info.json`` (mean 0.290101, 0.328081,
0.286964; std 0.182954, 0.186566, 0.184475). H and W should be multiples of 8.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn

from .weightfiles import hub_checkpoint_path, load_weights_file, require_weights_file

__all__ = ["DRN_D22_FILE", "DRN_ENV", "CITYSCAPES_MEAN", "CITYSCAPES_STD", "DRNSeg", "DRNSegmenter",
           "find_drn_weights"]

DRN_D22_FILE = "drn_d_22_cityscapes.pth"
DRN_ENV = "SESIM_DRN_WEIGHTS"
CITYSCAPES_MEAN = (0.290101, 0.328081, 0.286964)
CITYSCAPES_STD = (0.182954, 0.186566, 0.184475)
_CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)


def find_drn_weights(path: str | os.PathLike | None = None) -> Path:
    """Locate the DRN-D-22 Cityscapes checkpoint (flag path, ``$SESIM_DRN_WEIGHTS``, torch hub cache under
    ``drn_d_22_cityscapes.pth`` or ``drn_d_22.pth``) or raise ``WeightsNotFoundError`` naming it."""
    return require_weights_file(
        DRN_D22_FILE, "DRN-D-22 Cityscapes segmentation", path=path, env=DRN_ENV, flag="--drn-weights",
        extra=[hub_checkpoint_path("drn_d_22.pth")],
        source_hint="It is fyu/drn's released DRN-D-22 model trained on Cityscapes (19 classes), also "
                    "circulated as drn_d_22.pth by the CUT-lineage repositories; DRN-D-105 gives other numbers.")


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1, kernel: int = 3) -> list[nn.Module]:
    pad = dilation * (kernel // 2)
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class _BasicBlock(nn.Module):
    """Two 3x3 convs (dilations ``d1``, ``d2``) with BN, a residual (1x1 conv + BN when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, d1: int = 1, d2: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=d1, dilation=d1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=d2, dilation=d2, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _residual_stage(cin: int, cout: int, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Two BasicBlocks, every conv with ``dilation`` (fyu/drn's ``_make_layer`` with ``new_level=False``);
    the first block strided and projected when the shape changes."""
    return nn.Sequential(_BasicBlock(cin, cout, stride, dilation, dilation),
                         _BasicBlock(cout, cout, 1, dilation, dilation))


def _bilinear_up(classes: int) -> nn.ConvTranspose2d:
    up = nn.ConvTranspose2d(classes, classes, 16, stride=8, padding=4, output_padding=0, groups=classes, bias=False)
    f = math.ceil(16 / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    kernel = torch.tensor([[(1 - abs(i / f - c)) * (1 - abs(j / f - c)) for j in range(16)] for i in range(16)])
    with torch.no_grad():
        up.weight.copy_(kernel.expand(classes, 1, 16, 16))
    up.weight.requires_grad_(False)
    return up


class DRNSeg(nn.Module):
    """DRN-D-22 + 1x1 classifier + bilinear x8 upsampling: ``(N, 3, H, W)`` normalised -> ``(N, classes, H, W)``
    log-probabilities."""

    def __init__(self, classes: int = 19) -> None:
        super().__init__()
        c = _CHANNELS
        self.base = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, c[0], 7, padding=3, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True)),
            nn.Sequential(*_conv_bn_relu(c[0], c[0])),
            nn.Sequential(*_conv_bn_relu(c[0], c[1], stride=2)),
            _residual_stage(c[1], c[2], stride=2),
            _residual_stage(c[2], c[3], stride=2),
            _residual_stage(c[3], c[4], dilation=2),
            _residual_stage(c[4], c[5], dilation=4),
            nn.Sequential(*_conv_bn_relu(c[5], c[6], dilation=2)),
            nn.Sequential(*_conv_bn_relu(c[6], c[7], dilation=1)),
        )
        self.seg = nn.Conv2d(c[7], classes, 1, bias=True)
        self.up = _bilinear_up(classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.up(self.seg(self.base(x))), dim=1)


class DRNSegmenter(nn.Module):
    """The Cityscapes segmenter for :func:`~sesim.metrics.segmentation.segmentation_accuracy`.

    Args:
        weights: a DRN-D-22 Cityscapes checkpoint path, ``"auto"`` (find ``drn_d_22_cityscapes.pth``;
            ``WeightsNotFoundError`` naming it when absent) or ``None`` (random init: tests only).
        classes: number of classes (19 for Cityscapes train ids).

    Call: ``(N, 3, H, W)`` RGB float in ``[0, 1]`` -> ``(N, classes, H, W)`` log-probabilities.
    """

    def __init__(self, weights: str | os.PathLike | None = "auto", classes: int = 19) -> None:
        super().__init__()
        self.net = DRNSeg(classes)
        if weights is None:
            self.weights_source, self.weights_file = "random", None
        else:
            path = find_drn_weights(None if weights == "auto" else weights)
            state = load_weights_file(path, "DRN-D-22 segmenter")
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
            state = {k.removeprefix("module."): v for k, v in state.items()}
            if "up.weight" not in state:  # fixed bilinear kernel; some copies leave it out
                state["up.weight"] = self.net.up.weight.detach().clone()
            try:
                self.net.load_state_dict(state, strict=True)
            except RuntimeError as err:
                raise ValueError(f"{path} is not a DRN-D-22 segmentation checkpoint with {classes} classes "
                                 f"(DRN-D-105 and other DRNs have other layers): {str(err)[:300]}") from None
            self.weights_source, self.weights_file = str(path), path
        self.register_buffer("mean", torch.tensor(CITYSCAPES_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CITYSCAPES_STD).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)
        self.__name__ = "DRN-D-22"

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x.float() - self.mean) / self.std)
