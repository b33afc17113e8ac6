"""The self-similarity kernel against the per-query reference loop (tests/reference_selfsim.py)."""

import math

import pytest
import torch
import torch.nn.functional as F

from sesim.ops.infonce import patch_infonce
from sesim.ops.selfsim import map_distance, normalize_features, sample_queries, self_similarity, window_index
from reference_selfsim import per_query_maps  # the per-query loop, written independently of sesim


@pytest.mark.parametrize("h,w,patch", [(9, 9, 4), (7, 12, 5), (12, 7, 3), (6, 10, 8), (5, 5, None), (6, 4, 16)])
@pytest.mark.parametrize("norm", ["l2", "centered_l2", "tanh"])
def test_local_windows_match_brute_force(h, w, patch, norm):
    torch.manual_seed(0)
    f = torch.randn(2, 5, h, w, dtype=torch.float64)
    # every position, so border queries (all four edges and corners) are included
    queries = torch.arange(h * w)
    window = window_index(queries, h, w, patch)
    fast = self_similarity(f, queries, window, norm=norm, tanh_scale=3.0)
    slow = per_query_maps(f, queries, patch, norm=norm, tanh_scale=3.0)
    assert fast.shape == slow.shape
    torch.testing.assert_close(fast, slow)


def test_local_window_gradients_match_brute_force():
    torch.manual_seed(1)
    f1 = torch.randn(1, 4, 7, 10, dtype=torch.float64, requires_grad=True)
    f2 = f1.detach().clone().requires_grad_()
    queries = torch.tensor([0, 9, 35, 69, 44, 22])  # corners, edges, interior
    weights = torch.randn(1, 6, 9, dtype=torch.float64)
    (self_similarity(f1, queries, window_index(queries, 7, 10, 3)) * weights).sum().backward()
    (per_query_maps(f2, queries, 3) * weights).sum().backward()
    torch.testing.assert_close(f1.grad, f2.grad)


def test_window_contents_and_border_shift():
    # 6 x 8 map, query at the top-left corner: the 3x3 window is shifted to start at (0, 0)
    win = window_index(torch.tensor([0, 8 * 5 + 7, 8 * 2 + 3]), 6, 8, 3)
    assert win[0].tolist() == [0, 1, 2, 8, 9, 10, 16, 17, 18]
    # bottom-right corner (5, 7): window rows 3..5, cols 5..7
    assert win[1].tolist() == [r * 8 + c for r in (3, 4, 5) for c in (5, 6, 7)]
    # interior (2, 3): centred
    assert win[2].tolist() == [r * 8 + c for r in (1, 2, 3) for c in (2, 3, 4)]
    # the window always contains its query
    q = torch.arange(48)
    assert (window_index(q, 6, 8, 4) == q[:, None]).any(dim=1).all()
    # a window covering the whole map is the global map
    assert window_index(q, 6, 8, 8) is None
    assert window_index(q, 6, 8, None) is None
    # covering one dimension only: full height, P columns
    assert window_index(q, 6, 8, 7).shape == (48, 6 * 7)


def test_sample_queries_random_and_grid():
    torch.manual_seed(0)
    q = sample_queries(16, 12, 50)
    assert q.shape == (50,) and q.unique().numel() == 50 and q.min() >= 0 and q.max() < 16 * 12
    assert torch.equal(sample_queries(4, 4, 256), torch.arange(16))  # more queries than positions
    assert torch.equal(sample_queries(4, 4, 0), torch.arange(16))
    g = sample_queries(16, 16, 64, "grid")
    assert g.numel() == 64 and g.unique().numel() == 64
    rows, cols = g // 16, g % 16
    assert sorted(rows.unique().tolist()) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sorted(cols.unique().tolist()) == [1, 3, 5, 7, 9, 11, 13, 15]
    # grids follow the aspect ratio of non-square maps
    g = sample_queries(8, 32, 64, "grid")
    assert (g // 32).unique().numel() == 4 and (g % 32).unique().numel() == 16
    with pytest.raises(ValueError):
        sample_queries(4, 4, 2, "spiral")


def test_normalisations():
    f = torch.rand(2, 6, 5, 4) + 0.5
    assert torch.allclose(normalize_features(f, "l2").norm(dim=1), torch.ones(2, 5, 4))
    c = normalize_features(f, "centered_l2")
    assert torch.allclose(c.norm(dim=1), torch.ones(2, 5, 4), atol=1e-5)
    t = normalize_features(f, "tanh")
    assert torch.allclose(t.mean(dim=(2, 3)), torch.zeros(2, 6), atol=1e-6)
    with pytest.raises(ValueError):
        normalize_features(f, "softmax")


def test_map_distances():
    sx = torch.tensor([[[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0]]])
    sy = torch.tensor([[[2.0, 4.0, 6.0, 8.0], [1.0, 0.0, 1.0, 0.0]]])
    cos = map_distance(sx, sy, "cos")
    assert torch.allclose(cos, torch.tensor([[0.0, 1.0]]), atol=1e-6)  # scale-invariant; orthogonal
    l1 = map_distance(sx, sy, "l1")
    assert torch.allclose(l1, torch.tensor([[2.5, 1.0]]))
    # masked, as the public code: k = floor(4 * 0.5) = 2; keep the entries of the source map that are
    # at least its value of descending rank k (0-based), i.e. the top k + 1 = 3, zero the rest in both
    masked = map_distance(sx, sy, "l1", mask_keep=0.5)
    # row 0 keeps entries 1, 2, 3 (values 2, 3, 4 vs 4, 6, 8), both scaled by N_p / k = 2: mean |diff| = 2 * 9 / 4
    assert torch.allclose(masked[0, 0], torch.tensor(4.5))
    # the mask from the translation's map instead (the public code's choice)
    masked_t = map_distance(sx, sy, "l1", mask_keep=0.5, mask_from="target")
    # row 1: sy's rank-2 value is 0, so every entry is kept: mean |diff| = 1, scaled by 2
    assert torch.allclose(masked_t[0, 1], torch.tensor(2.0))
    # SmoothL1 (beta 1) of 1 - cos: 0.5 d^2 below 1
    smooth = map_distance(sx, sy, "cos", smooth_l1=True)
    assert torch.allclose(smooth, 0.5 * cos ** 2, atol=1e-6)
    assert torch.allclose(map_distance(sx, sy, "cos", mask_keep=1.0), cos)
    with pytest.raises(ValueError):
        map_distance(sx, sy, "l2")


def test_infonce_matches_direct_computation():
    torch.manual_seed(0)
    n, ns, npos, m, tau = 2, 5, 7, 4, 0.07
    q, p, o = torch.randn(n, ns, npos), torch.randn(n, ns, npos), torch.randn(n, m, npos)
    got = patch_infonce(q, p, o, temperature=tau)
    got_public = patch_infonce(q, p, o, temperature=tau, positive_vs_other=True)
    got_no_other = patch_infonce(q, p, None, temperature=tau)
    cos = lambda a, b: float(torch.dot(a, b) / (a.norm() * b.norm()))
    for b in range(n):
        for i in range(ns):
            pos = math.exp(cos(q[b, i], p[b, i]) / tau)
            neg_aug = sum(math.exp(cos(q[b, i], p[b, j]) / tau) for j in range(ns) if j != i)
            neg_other = sum(math.exp(cos(q[b, i], o[b, k]) / tau) for k in range(m))
            neg_public = sum(math.exp(cos(p[b, i], o[b, k]) / tau) for k in range(m))
            assert got[b, i].item() == pytest.approx(-math.log(pos / (pos + neg_aug + neg_other)), rel=1e-4)
            assert got_no_other[b, i].item() == pytest.approx(-math.log(pos / (pos + neg_aug)), rel=1e-4)
            assert got_public[b, i].item() == pytest.approx(
                -math.log(pos / (pos + neg_aug + neg_other + neg_public)), rel=1e-4)


def test_infonce_is_low_when_positives_match():
    torch.manual_seed(0)
    q = torch.randn(1, 64, 32)
    matched = patch_infonce(q, q + 0.01 * torch.randn_like(q)).mean()
    shuffled = patch_infonce(q, q[:, torch.randperm(64)]).mean()
    assert matched < 0.1 < math.log(64) * 0.5 < shuffled


@pytest.mark.parametrize("patch", [3, None])
def test_kernel_backward_passes_gradcheck(patch):
    """The hand-written backward of the query product (map and query gradients, window scatter)."""
    torch.manual_seed(0)
    f = torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    q = torch.tensor([0, 7, 13, 29])
    win = window_index(q, 5, 6, patch)
    assert torch.autograd.gradcheck(lambda t: self_similarity(t, q, win), (f,))


def test_kernel_keys_may_be_the_sampled_queries_themselves():
    """The 'sampled' keys (STROTSS-like ablation): every query against the other sampled locations."""
    torch.manual_seed(0)
    f = torch.randn(1, 6, 5, 5, dtype=torch.float64, requires_grad=True)
    q = torch.tensor([1, 8, 12, 24])
    keys = q.unsqueeze(0).expand(4, -1)
    sim = self_similarity(f, q, keys)
    g = F.normalize(f, dim=1).flatten(2)[:, :, q]
    torch.testing.assert_close(sim, g.transpose(1, 2) @ g)
    assert torch.autograd.gradcheck(lambda t: self_similarity(t, q, keys), (f,))


def test_unit_length_matches_normalize_and_survives_zero_vectors():
    torch.manual_seed(0)
    f = torch.randn(2, 8, 4, 4)
    f[0, :, 1, 2] = 0  # a location with no activation at all
    torch.testing.assert_close(normalize_features(f, "l2"), F.normalize(f, dim=1, eps=1e-8))
    for dtype in (torch.bfloat16, torch.float16):
        g = normalize_features(f.to(dtype), "l2")
        assert torch.isfinite(g.float()).all() and (g[0, :, 1, 2] == 0).all()
