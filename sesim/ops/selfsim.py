"""Self-similarity ("spatially-correlative") maps: the pure tensor functions.

Notation (paper, Sec. 3.1): for a feature map ``f`` of shape ``(N, C, H, W)`` and a query
location ``i``, the map ``S_i = f_i^T f_*`` holds the similarity of the query's feature vector to
the ``N_p`` positions of a window around it (local) or of the whole map (global). A collection
of ``N_s`` queries gives ``S`` of shape ``(N, N_s, N_p)``.

Locations are flat indices ``r * W + c`` into the ``H x W`` map. Local windows are ``P x P``
(clipped to ``min(P, H) x min(P, W)``) and *shifted inward* at borders, so every window holds
exactly ``N_p`` real positions and keeps its shape on non-square maps; when ``P`` covers the whole
map the window is the whole map, i.e. the global map. The query is at the window centre
(``P // 2`` rows/cols from its top-left corner) except where the window was shifted at a border.

Implementation: one batched product of the sampled queries against the whole map
(``N x N_s x HW``), then a gather of each query's window. This avoids a Python loop over queries
and never materialises per-window feature copies (``C x N_s x N_p``); its cost is that of the
global map. Its backward (:class:`_QueryProduct`) and the feature normalisation's
(:class:`_UnitLength`) are written out by hand: fewer temporaries than autograd's generic chain,
which matters on a CPU where these small products are near the matmul peak and the rest is
overhead (``bench/speed.py``'s kernel rows).

(A row-band tiled variant -- each group of queries multiplied only with the rows holding its
windows, about 60 % of the arithmetic at 256 px -- measured 1.16-1.37x slower on a CPU and was
removed; docs/benchmarks.md.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import check_choice

NORMS = ("l2", "centered_l2", "tanh")
DISTANCES = ("cos", "l1")
SAMPLINGS = ("random", "grid")
#: the paper's local window side in feature positions (App. B.1: 32 x 32); the one place this default lives
PAPER_PATCH_SIZE = 32


def sample_queries(
    height: int,
    width: int,
    num: int,
    mode: str = "random",
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick ``num`` query locations on an ``height x width`` map.

    Args:
        num: number of queries ``N_s``; ``num <= 0`` or ``num >= H*W`` selects every position.
        mode: ``"random"`` (a random subset without repetition, drawn on the CPU from torch's
            global RNG or ``generator``) or ``"grid"`` (an evenly spaced grid of about ``num``
            points following the map's aspect ratio, cell centres).

    Returns:
        ``(N_s,)`` int64 flat indices ``r * width + c``, on ``device``.
    """
    total = height * width
    check_choice("query sampling", mode, SAMPLINGS)
    if num <= 0 or num >= total:
        return torch.arange(total, device=device)
    if mode == "random":
        # randperm on the CPU: reproducible across devices, and avoids CUDA randperm issues.
        return torch.randperm(total, generator=generator)[:num].to(device)
    rows = max(1, min(height, round(math.sqrt(num * height / width))))
    cols = max(1, min(width, num // rows))
    r = ((torch.arange(rows, dtype=torch.float64) + 0.5) * height / rows).floor().long()
    c = ((torch.arange(cols, dtype=torch.float64) + 0.5) * width / cols).floor().long()
    return (r[:, None] * width + c[None, :]).flatten().to(device)


def window_index(
    queries: torch.Tensor, height: int, width: int, patch_size: int | None
) -> torch.Tensor | None:
    """Flat indices of each query's ``P x P`` window, shifted inward at borders.

    Args:
        queries: ``(N_s,)`` flat query indices.
        patch_size: window side ``P`` in feature positions; ``None`` means global (returns None).

    Returns:
        ``(N_s, N_p)`` int64 indices with ``N_p = min(P, H) * min(P, W)`` (row-major within the
        window), or ``None`` when the window covers the whole map (global map).
    """
    if patch_size is None or (patch_size >= height and patch_size >= width):
        return None
    ph, pw = min(patch_size, height), min(patch_size, width)
    r, c = queries // width, queries % width
    r0 = (r - ph // 2).clamp(0, height - ph)
    c0 = (c - pw // 2).clamp(0, width - pw)
    dr = torch.arange(ph, device=queries.device).repeat_interleave(pw)
    dc = torch.arange(pw, device=queries.device).repeat(ph)
    return (r0[:, None] + dr[None, :]) * width + (c0[:, None] + dc[None, :])


def normalize_features(f: torch.Tensor, norm: str = "l2") -> torch.Tensor:
    """Prepare ``(N, C, H, W)`` features so that dot products give the chosen similarity.

    - ``"l2"`` (paper): each location's C-vector is L2-normalised; dot products are cosines.
    - ``"centered_l2"`` (public code with ``--use_norm``): subtract each channel's spatial mean,
      then L2-normalise per location.
    - ``"tanh"`` (public code default): subtract each channel's spatial mean and divide by
      ``sqrt(C)``; :func:`self_similarity` then squashes dot products with ``tanh(. / scale)``.
    """
    check_choice("feature normalisation", norm, NORMS)
    if norm in ("centered_l2", "tanh"):
        f = f - f.mean(dim=(2, 3), keepdim=True)
    if norm == "tanh":
        return f / math.sqrt(f.shape[1])
    return _unit_length(f)


def _unit_length(f: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``f / max(|f|, eps)`` along dim 1 (``F.normalize``'s values), computed as ``f * rsqrt(sum f^2)``
    with a hand-written backward (:class:`_UnitLength`).

    On a CPU this is 2-3x faster forward + backward than ``F.normalize`` on NCHW maps of the sizes
    sesim uses (1x64x64x64 to 1x512x32x32), where the channel-strided vector norm is slow.
    ``eps^2`` is raised to the dtype's smallest normal number so half precision cannot divide by 0.
    """
    return _UnitLength.apply(f, max(eps * eps, torch.finfo(f.dtype).tiny))


class _UnitLength(torch.autograd.Function):
    """``y = f * r`` with ``r = rsqrt(max(sum_c f^2, floor))``; backward ``r * (g - y * sum_c(g * y))``
    (the clamped locations get ``r * g``: their norm is a constant there)."""

    @staticmethod
    def forward(ctx, f, floor):  # type: ignore[override]
        sq = (f * f).sum(dim=1, keepdim=True)
        r = sq.clamp_min(floor).rsqrt_()
        y = f * r
        ctx.save_for_backward(y, r, sq >= floor)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        y, r, live = ctx.saved_tensors
        dot = (g * y).sum(dim=1, keepdim=True).mul_(live)
        return (g - y * dot).mul_(r), None


def self_similarity(
    f: torch.Tensor,
    queries: torch.Tensor,
    window: torch.Tensor | None = None,
    *,
    norm: str = "l2",
    tanh_scale: float = 10.0,
) -> torch.Tensor:
    """Spatially-correlative maps of a feature map.

    Args:
        f: ``(N, C, H, W)`` features (not yet normalised).
        queries: ``(N_s,)`` flat query indices (shared by the whole batch).
        window: ``(N_s, N_p)`` flat window indices from :func:`window_index`, or ``None`` for the
            global map (``N_p = H * W``).
        norm: see :func:`normalize_features`.
        tanh_scale: divisor inside ``tanh`` for ``norm="tanh"``.

    Returns:
        ``(N, N_s, N_p)`` maps. Values lie in [-1, 1] for every norm (cosines or tanh).
    """
    f = normalize_features(f, norm)
    sim = _QueryProduct.apply(f.flatten(2), queries, window)  # (N, C, HW) -> (N, N_s, N_p)
    if norm == "tanh":
        sim = torch.tanh(sim / tanh_scale)
    return sim


class _QueryProduct(torch.autograd.Function):
    """Queries against the whole map, then each query's window: ``(N, C, HW)`` -> ``(N, N_s, N_p)``.

    Forward: one ``bmm`` of the ``N_s`` query columns against the map and a gather of the windows
    (none for the global map). Backward, written out so that nothing is computed twice: the window
    gradients are scattered into one ``(N, N_s, HW)`` buffer, which feeds both products (the map's
    gradient and the queries'), and the queries' gradient is added into the map's columns in place.
    Same values as autograd through ``bmm`` + ``gather`` (tests/test_reference_selfsim.py).
    """

    @staticmethod
    def forward(ctx, flat, queries, window):  # type: ignore[override]
        q = flat.index_select(2, queries)  # (N, C, Ns); faster than flat[:, :, queries] on a CPU
        sim = torch.bmm(q.transpose(1, 2), flat)  # (N, Ns, HW)
        if window is not None:
            sim = sim.gather(2, window.unsqueeze(0).expand(sim.shape[0], -1, -1))
        ctx.save_for_backward(flat, q, queries, window)
        return sim

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_sim):  # type: ignore[override]
        flat, q, queries, window = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        n, _, hw = flat.shape
        if window is None:
            dense = grad_sim
        else:
            dense = grad_sim.new_zeros(n, grad_sim.shape[1], hw)
            dense.scatter_add_(2, window.unsqueeze(0).expand(n, -1, -1), grad_sim)
        grad_flat = torch.bmm(q, dense)  # d/d map:     sum over queries of q_s * g_s  (N, C, HW)
        grad_q = torch.bmm(flat, dense.transpose(1, 2))  # d/d queries: (N, C, Ns)
        grad_flat.index_add_(2, queries, grad_q)
        return grad_flat, None, None


def map_distance(
    sx: torch.Tensor,
    sy: torch.Tensor,
    kind: str = "cos",
    *,
    mask_keep: float | None = None,
    mask_from: str = "source",
    smooth_l1: bool = False,
) -> torch.Tensor:
    """Per-query distance between two sets of maps (paper Eq. 2).

    Args:
        sx, sy: ``(N, N_s, N_p)`` maps of the source and the translation.
        kind: ``"cos"``: ``1 - cos(S_x_i, S_y_i)`` (supports pattern correlation regardless of
            magnitude; paper default, Table 3 row E); ``"l1"``: mean absolute difference over the
            ``N_p`` entries.
        mask_keep: the public code's masked comparison: with ``k = floor(N_p * mask_keep)``, keep
            the entries where the reference map (``sx`` for ``mask_from="source"``, ``sy`` for
            ``"target"``, the public code's choice) is at least its value of descending rank ``k``
            (0-based; so ``k + 1`` entries barring ties, as the public code's ``sorted[:, :, k]``
            threshold), zero the rest in both maps, then compare; ``"l1"`` scales both maps by
            ``N_p / k`` first. ``None`` (default) compares the full maps. The mask is a constant
            for autograd (gradients flow through the kept entries).
        smooth_l1: the public code's criterion without ``--use_norm``: SmoothL1 (beta 1) instead of
            the absolute value, applied to ``1 - cos`` (``"cos"``) or to each entry difference
            (``"l1"``, then averaged). ``False`` (default): the plain distances above.

    Returns:
        ``(N, N_s)`` non-negative distances (cos in [0, 2]).
    """
    check_choice("map distance", kind, DISTANCES)
    check_choice("mask_from", mask_from, ("source", "target"))
    scale = 1.0
    if mask_keep is not None:
        ref = sx if mask_from == "source" else sy
        n_p = ref.shape[-1]
        k = max(1, int(n_p * mask_keep))
        threshold = ref.topk(min(k + 1, n_p), dim=-1).values[..., -1:]
        mask = (ref >= threshold).to(sx.dtype)
        sx, sy = sx * mask, sy * mask
        scale = n_p / k
    if kind == "cos":
        d = 1.0 - F.cosine_similarity(sx, sy, dim=-1, eps=1e-8)
        return F.smooth_l1_loss(d, torch.zeros_like(d), reduction="none") if smooth_l1 else d
    diff = (sx - sy) * scale if scale != 1.0 else sx - sy  # "l1"
    if smooth_l1:
        return F.smooth_l1_loss(diff, torch.zeros_like(diff), reduction="none").mean(dim=-1)
    return diff.abs().mean(dim=-1)
