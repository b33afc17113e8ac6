"""FID/KID against independent computations, precision/recall/density/coverage and segmentation
scores against hand-computed answers, LPIPS and LPIPS diversity with random networks."""

import numpy as np
import pytest
import torch

from sesim.metrics.frechet import frechet_distance, kernel_inception_distance
from sesim.metrics.layout import confusion_matrix, pixel_accuracy, segmentation_scores
from sesim.metrics.prdc import knn_radii, prdc


def _fid_scipy(x, y):
    from scipy import linalg

    mx, my = x.mean(0), y.mean(0)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(sx @ sy)
    covmean = covmean.real
    return float(((mx - my) ** 2).sum() + np.trace(sx) + np.trace(sy) - 2 * np.trace(covmean))


def test_fid_matches_scipy_sqrtm_and_is_zero_for_a_set_with_itself():
    pytest.importorskip("scipy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    y = rng.normal(size=(150, 8)) @ rng.normal(size=(8, 8)) * 0.5 + 0.3
    assert frechet_distance(x, y) == pytest.approx(_fid_scipy(x, y), rel=1e-6)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)


def _kid_direct(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b/d + 1)^3, written with explicit loops over pairs."""
    d, m = x.shape[1], x.shape[0]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return kxx + kyy - 2 * kxy


def test_kid_matches_a_direct_pairwise_computation():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 5)), rng.normal(1.0, 1.0, size=(12, 5))
    mean, std = kernel_inception_distance(x, y, subsets=3, subset_size=12)
    assert mean == pytest.approx(_kid_direct(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)  # whole sets in every subset


def test_kid_is_unbiased_for_two_samples_of_one_distribution():
    rng = np.random.default_rng(2)
    vals = []
    for _ in range(300):
        x, y = rng.normal(size=(20, 4)), rng.normal(size=(20, 4))
        vals.append(kernel_inception_distance(x, y, subsets=1, subset_size=20)[0])
    vals = np.asarray(vals)
    # mean ~ 0 within 3 standard errors; a biased (V-statistic) estimator would sit well above
    assert abs(vals.mean()) < 3 * vals.std() / np.sqrt(len(vals))
    assert (vals < 0).any()
    shifted = [kernel_inception_distance(rng.normal(size=(20, 4)), rng.normal(0.7, 1, size=(20, 4)),
                                         subsets=1, subset_size=20)[0] for _ in range(20)]
    assert np.mean(shifted) > 10 * vals.std() / np.sqrt(len(vals))


def test_prdc_on_a_hand_made_point_set():
    # reals on a line at 0,1,2,3; k=1 -> radius of each real = distance to its nearest other real = 1
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    np.testing.assert_allclose(knn_radii(real, 1), [1, 1, 1, 1])
    np.testing.assert_allclose(knn_radii(real, 2), [2, 1, 1, 2])
    # fakes: 0.5 (inside balls of reals 0 and 1), 2.9 (inside balls of 2 and 3), 10 (far away)
    fake = np.array([[0.5], [2.9], [10.0]])
    # fake radii (k=1): 0.5 -> 2.4, 2.9 -> 2.4, 10 -> 7.1
    out = prdc(real, fake, k=1)
    assert out["precision"] == pytest.approx(2 / 3)
    assert out["density"] == pytest.approx((2 + 2 + 0) / (1 * 3))
    # coverage: nearest fake of real 0 is 0.5 (<1 yes), real 1: 0.5 (yes), real 2: 2.9 (0.9<1 yes), real 3: 2.9 yes
    assert out["coverage"] == pytest.approx(1.0)
    # recall: real r is covered if some fake j has |r - f_j| < s_j; 0->0.5 (0.5<2.4), 1 (0.5<2.4), 2 (0.9<2.4), 3 (0.1)
    assert out["recall"] == pytest.approx(1.0)
    # strict inequality: a fake exactly on a ball's boundary is outside
    out2 = prdc(real, np.array([[4.0], [5.0]]), k=1)
    assert out2["precision"] == 0.0 and out2["density"] == 0.0 and out2["coverage"] == 0.0
    assert out2["recall"] == 0.0  # fake radii are |4 - 5| = 1 and |3 - 4| = 1 is not < 1


def test_prdc_recall_formula_explicitly():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[3.5], [5.0]])  # fake radii k=1: 1.5 each
    out = prdc(real, fake, k=1)
    # reals within 1.5 of 3.5: 2 (1.5, not <), 3 (0.5) -> 1 of 4
    assert out["recall"] == pytest.approx(1 / 4)
    # fake 3.5 is inside the ball of real 3 (0.5 < 1) only
    assert out["precision"] == pytest.approx(1 / 2)
    assert out["density"] == pytest.approx(1 / (1 * 2))
    assert out["coverage"] == pytest.approx(1 / 4)


def test_segmentation_scores_by_hand_with_ignore_label():
    true = np.array([[0, 0, 1, 1], [2, 255, 1, 7]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 9, 7]])
    conf = confusion_matrix(pred, true, 3)  # 255 ignored, label 7 outside 0..2 ignored
    assert conf.sum() == 6
    s = segmentation_scores(conf)
    assert s["pixel_accuracy"] == pytest.approx(3 / 6)  # correct: (0,0), (0,2), (0,3)
    # class acc: c0 1/2, c1 2/3 (the pixel predicted 9 counts as wrong), c2 0/1
    assert s["mean_class_accuracy"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    # IoU: c0 tp1, gt2, pred2 -> 1/3; c1 tp2, gt3, pred3 -> 2/4; c2 tp0 -> 0
    assert s["mean_iou"] == pytest.approx((1 / 3 + 2 / 4 + 0) / 3)
    assert pixel_accuracy(pred, true, ignore_index=255) == pytest.approx(4 / 7)  # 7 == 7 counts here


def test_lpips_with_a_random_backbone_is_a_proper_distance():
    from sesim.nets.lpips import LPIPS, AlexNetTrunk

    torch.manual_seed(0)
    model = LPIPS(AlexNetTrunk(weights=None), (64, 192, 384, 256, 256))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    d_xy, d_yx, d_xx = model(x, y), model(y, x), model(x, x)
    assert d_xy.shape == (2,)
    assert torch.allclose(d_xy, d_yx) and torch.all(d_xy > 0)
    assert torch.allclose(d_xx, torch.zeros(2), atol=1e-6)
    z = (x + 1.0 * torch.randn_like(x)).clamp(-1, 1)
    assert torch.all(model(x, z) > d_xy)  # more noise, larger distance


def test_lpips_loads_the_lpips_package_key_layout():
    from sesim.nets.lpips import LPIPS, VGG16Trunk

    chans = (64, 128, 256, 512, 512)
    state = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(chans)}
    model = LPIPS(VGG16Trunk(weights=None), chans, state)
    for i, lin in enumerate(model.lins):
        assert torch.equal(lin.weight, state[f"lin{i}.model.1.weight"])
    with pytest.raises(ValueError, match="lin2"):
        LPIPS(VGG16Trunk(weights=None), chans, {k: v for k, v in state.items() if "lin2" not in k})


def test_lpips_diversity_groups_samples_and_is_zero_for_identical_samples(tmp_path):
    from sesim.metrics.diversity import group_samples, lpips_diversity
    from sesim.nets.lpips import LPIPS, AlexNetTrunk

    paths = [tmp_path / n for n in ("a_s0.png", "a_s1.png", "a_s2.png", "b_s0.png", "b_s1.png", "c_s0.png",
                                    "notasample.png")]
    groups = group_samples(paths, tmp_path)
    assert {k: [p.name for p in v] for k, v in groups.items()} == {
        "a": ["a_s0.png", "a_s1.png", "a_s2.png"], "b": ["b_s0.png", "b_s1.png"], "c": ["c_s0.png"]}

    torch.manual_seed(0)
    model = LPIPS(AlexNetTrunk(weights=None), (64, 192, 384, 256, 256))
    img = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    same = lpips_diversity(model, {"a": [img, img.clone()]})
    assert same["mean"] == pytest.approx(0.0, abs=1e-6)
    other = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    res = lpips_diversity(model, {"a": [img, other, img], "b": [img], "c": [img, other]})
    d = float(model(img[None].float() / 127.5 - 1, other[None].float() / 127.5 - 1))
    # a: pairs (img,other), (img,img), (other,img) -> 2d/3 ; c: d
    assert res["mean"] == pytest.approx((2 * d / 3 + d) / 2, rel=1e-5)
    assert res["inputs"] == 2 and res["pairs"] == 4 and res["skipped"] == 1
