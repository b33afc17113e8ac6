"""Feature-matching ("perceptual") content loss: L1 between VGG16 activations of the source and the
translation (Johnson et al. 2016). A baseline for the content-loss ablation (paper Fig. 6): it
compares features directly, so it also penalises the appearance change a translation needs."""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.vgg import VGG16Features, layer_names


class PerceptualLoss(nn.Module):
    """``mean_l L1(phi_l(x), phi_l(y))`` over VGG16 layers ``phi_l`` (default ``relu3_3``, as the
    public F-LSeSim code).

    Inputs: ``(N, C, H, W)`` images in [-1, 1]; gradients flow into ``y`` only; VGG16 is frozen.
    """

    def __init__(self, layers: Sequence[str] | str = ("relu3_3",), *, weights: str | os.PathLike | None = "imagenet",
                 extractor: nn.Module | None = None) -> None:
        super().__init__()
        self.layers = layer_names(layers) if extractor is None else tuple(layers)
        self.extractor = extractor if extractor is not None else VGG16Features(self.layers, weights)
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
