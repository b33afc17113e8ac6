"""Per-location error of content losses between two images (paper Fig. 5).

Each function compares image ``a`` (the source) with image ``b`` (a candidate translation) and
returns an ``(H', W')`` float numpy array: how much the loss penalises each location of ``b``.
A good *structure* loss lights up little when ``b`` shows the same layout as ``a`` in another
domain (labels vs. photo) and a lot when the layout differs; pixel L1 and the perceptual loss
light up in both cases, because they also penalise the change of appearance a translation needs.

Multi-layer losses are averaged over their layers after bilinear resizing of every layer's map to
the finest layer's resolution (``H' x W'`` = that layer's feature map). The mean of the returned
array is the loss value up to the losses' own averaging conventions.

Inputs are ``(1, C, H, W)`` or ``(C, H, W)`` tensors in [-1, 1] of the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..losses.patchnce import PatchSampleMLP, patch_nce_loss
from ..losses.spatial import SpatialCorrelativeLoss
from ..ops.selfsim import map_distance


@dataclass
class ErrorMap:
    """One loss's error map: ``values`` ``(H', W')`` >= 0, ``name`` of the loss, ``note`` on how
    it was computed (e.g. "random-init encoder")."""

    name: str
    values: np.ndarray
    note: str = ""

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = a[None] if a.dim() == 3 else a
    b = b[None] if b.dim() == 3 else b
    if a.dim() != 4 or a.shape[0] != 1 or a.shape != b.shape:
        raise ValueError(f"expected two images of the same shape (1, C, H, W) or (C, H, W), got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def _combine(per_layer: Sequence[torch.Tensor]) -> np.ndarray:
    """Average ``(h_l, w_l)`` maps after resizing them to the largest one."""
    h, w = max((m.shape for m in per_layer), key=lambda s: s[0] * s[1])
    resized = [m if m.shape == (h, w) else
               F.interpolate(m[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
               for m in per_layer]
    return torch.stack(resized).mean(0).float().cpu().numpy()


@torch.no_grad()
def l1_error(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Pixel L1: ``|a - b|`` averaged over channels, ``(H, W)`` in [0, 2]."""
    a, b = _pair(a, b)
    return (a - b).abs().mean(1)[0].float().cpu().numpy()


@torch.no_grad()
def perceptual_error(a: torch.Tensor, b: torch.Tensor, extractor: nn.Module, layers: Sequence[str]) -> np.ndarray:
    """Perceptual loss: ``|phi_l(a) - phi_l(b)|`` averaged over channels, then over ``layers``.

    ``extractor`` maps images to ``{layer: (1, C_l, h_l, w_l)}`` (e.g. :class:`~sesim.nets.vgg.VGG16Features`).
    """
    a, b = _pair(a, b)
    fa, fb = extractor(a), extractor(b)
    return _combine([(fa[name] - fb[name]).abs().mean(1)[0] for name in layers])


@torch.no_grad()
def sesim_error(a: torch.Tensor, b: torch.Tensor, structure: SpatialCorrelativeLoss) -> np.ndarray:
    """F/LSeSim: the map distance (paper Eq. 2) of *every* location used as a query.

    Uses ``structure``'s own features (with its LSeSim heads if it has them), window size,
    normalisation and distance; only the query sampling is replaced by "all positions".
    """
    a, b = _pair(a, b)
    shapes = {name: f.shape[-2:] for name, f in structure.structure_features(a).items()}
    queries = {name: torch.arange(h * w) for name, (h, w) in shapes.items()}
    ma, mb = structure.maps(a, queries), structure.maps(b, queries)
    per_layer = []
    for name, (h, w) in shapes.items():
        d = map_distance(ma[name].maps, mb[name].maps, structure.distance, mask_keep=structure.mask_keep,
                         mask_from=structure.mask_from, smooth_l1=structure.smooth_l1)
        per_layer.append(d[0].view(h, w))
    return _combine(per_layer)


@torch.no_grad()
def patchnce_error(a: torch.Tensor, b: torch.Tensor, encoder: Callable[[torch.Tensor, Sequence[str]], Mapping],
                   mlp: PatchSampleMLP, layers: Sequence[str], temperature: float = 0.07) -> np.ndarray:
    """PatchNCE (CUT): the InfoNCE loss of every position of ``b`` (query) against all positions of
    ``a`` (keys; the positive is the same position).

    Args:
        encoder: ``(images, layers) -> {layer: (1, C, h, w)}``, e.g. a generator's ``encode``.
        mlp: the projection heads (a trained CUT run's ``F``, or a random-init one).
    """
    a, b = _pair(a, b)
    fa, fb = encoder(a, list(layers)), encoder(b, list(layers))
    per_layer = []
    for name in layers:
        h, w = fa[name].shape[-2:]
        key, ids = mlp({name: fa[name]}, 0)
        query, _ = mlp({name: fb[name]}, 0, ids)
        loss = patch_nce_loss(query[name], key[name], temperature=temperature, batch_size=1)
        per_layer.append(loss.view(h, w))
    return _combine(per_layer)
