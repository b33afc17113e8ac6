"""Contextual loss (Mechrez, Talmi & Zelnik-Manor, ECCV 2018), MCL-Net's style term (Eq. 7).

It compares two *sets* of feature vectors without asking them to be aligned: for each feature
``y_j`` of the target (the exemplar), how strongly is it the nearest neighbour of some feature of
the generated image, relative to the other candidates? So it rewards the generated image for
containing the exemplar's textures and colours anywhere, which is what a style term between
images of different layouts needs (a pixel or perceptual distance would ask for the exemplar's
layout too).

For features ``x_i`` (generated) and ``y_j`` (target), both centred on the target's mean and
L2-normalised: cosine distances ``d_ij = 1 - x_i . y_j``; relative distances
``d~_ij = d_ij / (min_k d_ik + eps)``; affinities ``w_ij = exp((1 - d~_ij) / h)`` normalised over
``j`` into ``CX_ij``; ``CX = mean_j max_i CX_ij`` in (0, 1]; over layers
``L = -log(sum_l mu_l CX_l)`` with ``sum mu_l = 1`` (Eq. 7 of MCL-Net: the weighted sum inside the
log). ``h`` is the band width (0.5 here; Mechrez et al. use values in [0.1, 1]).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

__all__ = ["contextual_similarity", "contextual_loss"]


def contextual_similarity(x: torch.Tensor, y: torch.Tensor, *, band_width: float = 0.5,
                          max_points: int = 1024) -> torch.Tensor:
    """``CX(x, y)`` per image: ``(N, C, H, W)`` generated and ``(N, C, H', W')`` target features ->
    ``(N,)`` in (0, 1] (1: every target feature has its own close match in ``x``).

    Maps with more than ``max_points`` locations are average-pooled by the smallest integer factor
    that brings them under it (the ``N x HW x H'W'`` distance matrix stays small).
    """
    x, y = _pool_to(x, max_points), _pool_to(y, max_points)
    mu = y.mean(dim=(2, 3), keepdim=True)
    xs = F.normalize((x - mu).flatten(2), dim=1, eps=1e-8)  # (N, C, P)
    ys = F.normalize((y - mu).flatten(2), dim=1, eps=1e-8)  # (N, C, Q)
    dist = 1.0 - torch.bmm(xs.transpose(1, 2), ys)  # (N, P, Q)
    rel = dist / (dist.min(dim=2, keepdim=True).values + 1e-5)
    cx = F.softmax((1.0 - rel) / band_width, dim=2)  # exp(...) normalised over the target's points
    return cx.max(dim=1).values.mean(dim=1)


def contextual_loss(fx: Mapping[str, torch.Tensor], fy: Mapping[str, torch.Tensor], layers: Sequence[str],
                    weights: Sequence[float] | None = None, *, band_width: float = 0.5) -> torch.Tensor:
    """``-log(sum_l mu_l CX(fx[l], fy[l]))``, averaged over the batch; ``weights`` ``mu_l`` default to
    equal and are normalised to sum 1. ``fx``/``fy``: ``{layer: (N, C, H, W)}`` of the generated
    image and of the exemplar; gradients flow into whichever carries them."""
    mu = torch.tensor(list(weights) if weights is not None else [1.0] * len(layers), dtype=torch.float32)
    if len(mu) != len(layers) or (mu < 0).any() or mu.sum() <= 0:
        raise ValueError(f"need one non-negative weight per layer ({len(layers)}), got {list(mu.tolist())}")
    mu = mu / mu.sum()
    cx = sum(float(m) * contextual_similarity(fx[name], fy[name], band_width=band_width)
             for m, name in zip(mu, layers))
    return -torch.log(cx.clamp_min(1e-8)).mean()


def _pool_to(f: torch.Tensor, max_points: int) -> torch.Tensor:
    h, w = f.shape[-2:]
    k = 1
    while (h // k) * (w // k) > max_points:
        k += 1
    return F.avg_pool2d(f, k) if k > 1 else f
