"""Per-query reference for windowed self-similarity maps (the slow, obviously-correct way).

This is the computation of the authors' public code (F-LSeSim ``PatchSim.select_patch``): a Python
loop over the sampled queries that slices each query's ``P x P`` window out of the feature map
(shifted inward at the borders so it always holds ``P x P`` real positions) and takes the dot
products of the query's feature vector with that window. It is written independently of
:mod:`sesim.ops.selfsim` (its own normalisation, slicing instead of flat-index gathers) so that
the fast kernel can be checked against it, and so that ``bench/speed.py`` can time the fast
kernel against the per-query loop it replaces.

Importable from the tests (pytest puts ``tests/`` on ``sys.path``) and from the bench (which adds
``tests/`` itself)::

    from reference_selfsim import per_query_maps, PerQuerySpatialLoss
"""

from __future__ import annotations

import math

import torch

from sesim.losses.spatial import SpatialCorrelativeLoss


def _normalize(f: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-location feature normalisation, written out (no ``F.normalize``)."""
    if norm == "l2":
        return f / f.norm(dim=1, keepdim=True).clamp_min(1e-8)
    if norm in ("centered_l2", "tanh"):
        g = f - f.mean(dim=(2, 3), keepdim=True)
        if norm == "centered_l2":
            return g / g.norm(dim=1, keepdim=True).clamp_min(1e-8)
        return g / math.sqrt(f.shape[1])
    raise ValueError(f"unknown feature normalisation {norm!r}")


def per_query_maps(
    f: torch.Tensor,
    queries: torch.Tensor,
    patch_size: int | None,
    norm: str = "l2",
    tanh_scale: float = 10.0,
) -> torch.Tensor:
    """Self-similarity maps, one query at a time.

    Args:
        f: ``(N, C, H, W)`` features (not yet normalised); any floating dtype; differentiable.
        queries: ``(N_s,)`` flat query indices ``r * W + c``, shared by the batch.
        patch_size: window side ``P``; ``None`` (or ``P`` covering the map) gives the global map.
            The window is ``min(P, H) x min(P, W)``, its top-left corner ``P // 2`` rows/cols
            before the query, clamped so the window stays inside the map.
        norm: ``"l2"``, ``"centered_l2"`` or ``"tanh"`` (dot products squashed by
            ``tanh(. / tanh_scale)``).

    Returns:
        ``(N, N_s, N_p)`` maps, ``N_p = ph * pw`` with the window positions in row-major order.
    """
    n, c, h, w = f.shape
    g = _normalize(f, norm)
    if patch_size is None:
        ph, pw = h, w
    else:
        ph, pw = min(patch_size, h), min(patch_size, w)
    rows = []
    for q in queries.tolist():
        r, col = divmod(int(q), w)
        top = min(max(r - ph // 2, 0), h - ph)
        left = min(max(col - pw // 2, 0), w - pw)
        window = g[:, :, top:top + ph, left:left + pw].reshape(n, c, ph * pw)  # (N, C, N_p)
        query = g[:, :, r, col]  # (N, C)
        rows.append(torch.bmm(query.unsqueeze(1), window).squeeze(1))  # (N, N_p) dot products
    sim = torch.stack(rows, dim=1)
    return torch.tanh(sim / tanh_scale) if norm == "tanh" else sim


class PerQuerySpatialLoss(SpatialCorrelativeLoss):
    """:class:`SpatialCorrelativeLoss` with its maps computed by :func:`per_query_maps`.

    Everything else (features, heads, query sampling, distance) is inherited, so timing this
    against the original isolates the map kernel. Only ``keys="window"`` is supported.
    """

    def _maps(self, f: torch.Tensor, queries: torch.Tensor, window: torch.Tensor | None) -> torch.Tensor:
        if self.keys != "window":
            raise ValueError("PerQuerySpatialLoss supports keys='window' only")
        return per_query_maps(f, queries, self.patch_size, self.norm, self.tanh_scale)
