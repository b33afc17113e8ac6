"""Marginal contrastive loss (MCL) of MCL-Net (Zhan et al., CVPR 2022, Sec. 3.2 and Algorithm 1).

The correspondence network's two encoders see a conditional input ``X`` (label map, edges) and its
ground-truth photo ``Y``. Their feature vectors at the *same* location are a positive pair; every
other location of the other image is a negative. With unit vectors ``x_i``, ``y_j`` and
``cos(theta_ij) = x_i . y_j``, the loss for anchor ``x_i`` is

    -log  exp(s cos(theta_ii + m)) / ( exp(s cos(theta_ii + m)) + sum_{j != i} exp(s cos(theta_ij)) )

an InfoNCE whose positive carries an additive angular margin ``m`` (ArcFace's): the positive must
beat the negatives by an angle ``m``, which makes feature clusters more compact and separable
than plain InfoNCE (``m = 0``). ``s = 1 / temperature`` is the scale of Eq. 1's ``x . y / tau``
(one parameter, written two ways in the paper). The loss is bidirectional, ``L_xy + L_yx``
(``y_i`` as anchor against every ``x_j``), averaged over locations and images.

``cos(theta + m)`` is computed as ``cos(theta) cos(m) - sin(theta) sin(m)`` (no ``arccos``, whose
gradient is infinite at +-1). Past ``theta = pi - m``, ``cos(theta + m)`` would rise again (a
worse positive would score better); there the positive logit is ``cos(theta) - (1 + cos(pi - m))``
instead, which is continuous at that angle and keeps decreasing with ``theta`` (ArcFace guards the
same case).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["marginal_infonce", "MarginalContrastiveLoss"]


def _margin_cosine(cos: torch.Tensor, margin: float) -> torch.Tensor:
    """``cos(theta + margin)`` for ``cos = cos(theta)``, monotone continuation past ``theta = pi - margin``."""
    if margin == 0:
        return cos
    sin = (1.0 - cos * cos).clamp_min(1e-12).sqrt()
    shifted = cos * math.cos(margin) - sin * math.sin(margin)
    threshold = math.cos(math.pi - margin)  # theta > pi - margin  <=>  cos < threshold
    return torch.where(cos > threshold, shifted, cos - (1.0 + threshold))


def marginal_infonce(anchor: torch.Tensor, positive: torch.Tensor, *, margin: float = 0.4,
                     temperature: float = 0.07) -> torch.Tensor:
    """One direction of the loss: each anchor location must pick its own location in ``positive``.

    Args:
        anchor: ``(N, L, C)`` feature vectors (any scale; L2-normalised here).
        positive: ``(N, L, C)`` feature vectors of the paired image at the same ``L`` locations.
        margin: additive angular margin ``m`` in radians on the positive (0: plain InfoNCE).
        temperature: ``tau``; the logits are ``cos / tau`` (scale ``s = 1 / tau``).

    Returns:
        ``(N, L)`` per-location losses (non-negative).
    """
    a = F.normalize(anchor, dim=-1, eps=1e-8)
    p = F.normalize(positive, dim=-1, eps=1e-8)
    cos = torch.bmm(a, p.transpose(1, 2))  # (N, L, L); the diagonal holds the positives
    n, length, _ = cos.shape
    eye = torch.eye(length, dtype=torch.bool, device=cos.device)
    logits = torch.where(eye, _margin_cosine(cos, margin), cos) / temperature
    target = torch.arange(length, device=cos.device).expand(n, length)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view(n, length)


class MarginalContrastiveLoss(nn.Module):
    """Bidirectional marginal InfoNCE between two feature maps at the same locations.

    ``loss(fx, fy)`` with ``fx``, ``fy``: ``(N, C, H, W)`` (e.g. ``E_X(X)`` and ``E_Z(Y)``) returns
    the scalar ``mean(L_xy) + mean(L_yx)``. ``max_locations`` (default: all) subsamples that many
    random locations per call (torch's global RNG) to bound the ``L x L`` logits on large maps.
    Gradients flow into both inputs.
    """

    def __init__(self, margin: float = 0.4, temperature: float = 0.07, max_locations: int | None = None) -> None:
        super().__init__()
        if not 0 <= margin < math.pi / 2:
            raise ValueError(f"margin must be in [0, pi/2) radians, got {margin}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.margin, self.temperature, self.max_locations = margin, temperature, max_locations

    def extra_repr(self) -> str:
        return f"margin={self.margin}, temperature={self.temperature}, max_locations={self.max_locations}"

    def forward(self, fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
        if fx.shape != fy.shape:
            raise ValueError(f"feature maps differ in shape: {tuple(fx.shape)} vs {tuple(fy.shape)}")
        x, y = fx.flatten(2).transpose(1, 2), fy.flatten(2).transpose(1, 2)  # (N, L, C)
        if self.max_locations is not None and x.shape[1] > self.max_locations:
            keep = torch.randperm(x.shape[1], device=x.device)[: self.max_locations]
            x, y = x[:, keep], y[:, keep]
        kw = dict(margin=self.margin, temperature=self.temperature)
        return marginal_infonce(x, y, **kw).mean() + marginal_infonce(y, x, **kw).mean()
