"""The fast self-similarity kernel (one batched product + gather) against the per-query reference.

``reference_selfsim.per_query_maps`` loops over queries and slices each window, as the authors'
public code does; ``sesim.ops.selfsim.self_similarity`` must give the same maps and the same
gradients, on non-square maps, with queries on every border, for local and global windows.
"""

import pytest
import torch

from reference_selfsim import PerQuerySpatialLoss, per_query_maps
from sesim.losses.spatial import SpatialCorrelativeLoss
from sesim.ops.selfsim import self_similarity, window_index

# (H, W, P): non-square maps; P local, covering one side only, covering the map, or None (global)
SHAPES = [(9, 14, 4), (13, 7, 5), (8, 11, 3), (10, 12, 9), (7, 9, 8), (6, 10, 7), (5, 8, None), (6, 4, 16)]
NORMS = ["l2", "centered_l2", "tanh"]


def border_and_interior_queries(h: int, w: int, extra: int = 6, seed: int = 0) -> torch.Tensor:
    """All four corners, every position on the four edges, and a few random interior points."""
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    on_border = (rows == 0) | (rows == h - 1) | (cols == 0) | (cols == w - 1)
    border = (rows * w + cols)[on_border]
    interior = (rows * w + cols)[~on_border]
    g = torch.Generator().manual_seed(seed)
    pick = interior[torch.randperm(interior.numel(), generator=g)[:extra]]
    return torch.cat([border, pick])


def fast_maps(f, queries, patch, norm, tanh_scale=10.0):
    h, w = f.shape[-2:]
    return self_similarity(f, queries, window_index(queries, h, w, patch), norm=norm, tanh_scale=tanh_scale)


TOL = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-5, atol=1e-5)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("h,w,patch", SHAPES)
def test_values_and_gradients_match_reference(h, w, patch, norm, dtype):
    torch.manual_seed(h * 100 + w)
    base = torch.randn(2, 6, h, w, dtype=dtype)
    queries = border_and_interior_queries(h, w)
    f_fast = base.clone().requires_grad_()
    f_ref = base.clone().requires_grad_()
    fast = fast_maps(f_fast, queries, patch, norm, tanh_scale=3.0)
    ref = per_query_maps(f_ref, queries, patch, norm, tanh_scale=3.0)
    n_p = min(patch or max(h, w), h) * min(patch or max(h, w), w)
    assert fast.shape == ref.shape == (2, queries.numel(), n_p)
    torch.testing.assert_close(fast, ref, **TOL[dtype])

    # gradients through a generic downstream function of the maps
    weights = torch.randn(fast.shape, dtype=dtype)
    (fast * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(f_fast.grad, f_ref.grad, **TOL[dtype])


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("h,w,patch", [(9, 14, 4), (13, 7, 5), (6, 10, 7), (5, 8, None)])
def test_bfloat16_values_close(h, w, patch, norm):
    torch.manual_seed(1)
    f64 = torch.randn(2, 16, h, w, dtype=torch.float64)
    queries = border_and_interior_queries(h, w)
    exact = per_query_maps(f64, queries, patch, norm)
    fast = fast_maps(f64.bfloat16(), queries, patch, norm)
    ref = per_query_maps(f64.bfloat16(), queries, patch, norm)
    assert fast.dtype == ref.dtype == torch.bfloat16
    # maps lie in [-1, 1]; bfloat16 keeps 8 significant bits (~0.4 %), normalisation adds a bit more
    torch.testing.assert_close(fast.double(), ref.double(), rtol=0, atol=3e-2)
    torch.testing.assert_close(fast.double(), exact, rtol=0, atol=3e-2)


def test_every_query_on_a_non_square_map():
    """All H*W queries (every border position and corner), local windows, float64."""
    torch.manual_seed(2)
    f = torch.randn(1, 3, 7, 11, dtype=torch.float64)
    queries = torch.arange(7 * 11)
    for patch in (2, 3, 4, 6, 7, 10, None):
        torch.testing.assert_close(fast_maps(f, queries, patch, "l2"), per_query_maps(f, queries, patch, "l2"))


def test_reference_window_is_the_window_index_window():
    """The reference's slices and the fast path's flat indices hold the query at the same place.

    With one-hot features (location p has feature e_p) a query's map is 1 exactly where its own
    location sits in its window and 0 elsewhere.
    """
    h, w, patch = 6, 9, 4
    f = torch.eye(h * w, dtype=torch.float64).view(1, h * w, h, w)
    queries = border_and_interior_queries(h, w)
    idx = window_index(queries, h, w, patch)
    ref = per_query_maps(f, queries, patch, "l2")
    torch.testing.assert_close(ref[0], (idx == queries[:, None]).double())
    for i, q in enumerate(queries.tolist()):
        r, c = divmod(q, w)
        top = min(max(r - patch // 2, 0), h - patch)
        left = min(max(c - patch // 2, 0), w - patch)
        assert idx[i].tolist() == [rr * w + cc for rr in range(top, top + patch) for cc in range(left, left + patch)]


def test_reference_is_differentiable():
    torch.manual_seed(3)
    f = torch.randn(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    queries = torch.tensor([0, 5, 29, 14, 24])
    for norm in NORMS:
        assert torch.autograd.gradcheck(lambda t: per_query_maps(t, queries, 3, norm), (f,))


@pytest.mark.parametrize("patch", [4, None])
@pytest.mark.parametrize("learned", [False, True])
def test_per_query_loss_equals_fast_loss(patch, learned):
    """The bench's per-query variant of the loss computes the same loss and gradient."""
    torch.manual_seed(4)
    fast = SpatialCorrelativeLoss(weights=None, patch_size=patch, num_queries=16, learned=learned).double()
    slow = PerQuerySpatialLoss(weights=None, patch_size=patch, num_queries=16, learned=learned).double()
    slow.load_state_dict(fast.state_dict())
    x = torch.rand(1, 3, 40, 48, dtype=torch.float64) * 2 - 1
    y0 = torch.rand(1, 3, 40, 48, dtype=torch.float64) * 2 - 1
    grads, losses = [], []
    for loss_fn in (fast, slow):
        y = y0.clone().requires_grad_()
        torch.manual_seed(5)  # same query locations for both
        loss = loss_fn(x, y)
        loss.backward()
        losses.append(loss.detach())
        grads.append(y.grad)
    torch.testing.assert_close(losses[0], losses[1])
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("h,w,patch", [(9, 14, 4), (13, 7, 5), (20, 33, 7), (16, 16, 4)])
def test_window_products_match_reference(h, w, patch):
    """The whole-map product + gather gives the reference maps and gradients on maps where windows are much
    smaller than the map (where the removed row-band tiled kernel used to take over)."""
    g = torch.Generator().manual_seed(h * w)
    f = torch.randn(2, 5, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    queries = border_and_interior_queries(h, w)
    fast = fast_maps(f, queries, patch, "centered_l2")
    ref = per_query_maps(f, queries, patch, norm="centered_l2")
    torch.testing.assert_close(fast, ref, **TOL[torch.float64])
    weight = torch.randn(fast.shape, generator=g, dtype=torch.float64)
    (grad_fast,) = torch.autograd.grad((fast * weight).sum(), f)
    (grad_ref,) = torch.autograd.grad((ref * weight).sum(), f)
    torch.testing.assert_close(grad_fast, grad_ref, **TOL[torch.float64])
