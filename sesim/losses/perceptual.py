"""Feature-matching ("perceptual") content loss: L1 between pretrained activations of the source and
the translation (Johnson et al. 2016). A baseline for the content-loss ablation (paper Fig. 6): it
compares features directly, so it also penalises the appearance change a translation needs. The
network is the structure loss's backbone (:mod:`sesim.nets.backbones`)."""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.backbones import build_backbone, default_perceptual_layers, resolve_backbone


class PerceptualLoss(nn.Module):
    """``mean_l L1(phi_l(x), phi_l(y))`` over backbone layers ``phi_l`` (default: VGG16 ``relu3_3``,
    as the public F-LSeSim code; EfficientNet-Lite0 ``stage2``, the last map at the same stride).

    ``backbone`` / ``weights`` as :class:`~sesim.losses.spatial.SpatialCorrelativeLoss`.
    Inputs: ``(N, C, H, W)`` images in [-1, 1]; gradients flow into ``y`` only; the network is frozen.
    """

    def __init__(self, layers: Sequence[str] | str | None = None, *, backbone: str = "auto",
                 weights: str | os.PathLike | None = "auto", extractor: nn.Module | None = None) -> None:
        super().__init__()
        if extractor is None:
            choice = resolve_backbone(backbone, weights)
            extractor = build_backbone(choice.name, layers or default_perceptual_layers(choice.name), choice.weights)
        elif isinstance(layers, str):
            layers = [n.strip() for n in layers.split(",") if n.strip()]
        self.layers = tuple(layers or extractor.layers)
        self.extractor = extractor
        self.extractor.requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            fx = self.extractor(x)
        fy = self.extractor(y)
        return sum(F.l1_loss(fy[name], fx[name]) for name in self.layers) / len(self.layers)


class PixelL1Loss(nn.Module):
    """``L1(x, y)`` on pixels: the crudest content loss (gradients into ``y`` only)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(y, x.detach())


class NoContentLoss(nn.Module):
    """GAN-only ablation: a content loss that is always 0 (and costs nothing)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y.new_zeros(())
