"""Patch-wise InfoNCE on self-similarity maps (paper Eq. 3), the LSeSim training objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def patch_infonce(
    query: torch.Tensor,
    positive: torch.Tensor,
    other: torch.Tensor | None = None,
    *,
    temperature: float = 0.07,
    positive_vs_other: bool = False,
) -> torch.Tensor:
    """InfoNCE over map rows: each query map must pick its own location in the augmented image.

    For query ``i`` with map ``v = query[:, i]`` the logits are, all divided by ``temperature``:

    - ``sim(v, positive[:, j])`` for every ``j``: ``j = i`` is the positive (same location in a
      structure-preserving augmentation), the other ``N_s - 1`` locations are negatives
      (``K = 255`` for the default 256 queries);
    - ``sim(v, other[:, m])`` for every ``m`` when ``other`` is given: locations of another image;
    - with ``positive_vs_other`` (the public code's variant) also ``sim(positive[:, i], other[:, m])``.

    ``sim`` is the cosine similarity of two maps (rows are L2-normalised).

    Args:
        query: ``(N, N_s, N_p)`` maps of the image.
        positive: ``(N, N_s, N_p)`` maps of its augmentation at the same locations and windows.
        other: ``(N, M, N_p)`` maps of another image, or ``None``.

    Returns:
        ``(N, N_s)`` per-query losses (mean it for a scalar).
    """
    n, ns, _ = query.shape
    q = F.normalize(query, dim=-1, eps=1e-8)
    p = F.normalize(positive, dim=-1, eps=1e-8)
    groups = [torch.bmm(q, p.transpose(1, 2))]  # (N, Ns, Ns); the diagonal holds the positives
    if other is not None:
        o = F.normalize(other, dim=-1, eps=1e-8)
        groups.append(torch.bmm(q, o.transpose(1, 2)))
        if positive_vs_other:
            groups.append(torch.bmm(p, o.transpose(1, 2)))
    logits = torch.cat(groups, dim=2) / temperature  # (N, Ns, Ns [+ M [+ M]])
    target = torch.arange(ns, device=query.device).expand(n, ns)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view(n, ns)
