"""Frechet distance, KID and the realism feature extractor on cases with known answers."""

import numpy as np
import pytest

from sesim.metrics.frechet import (
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    kernel_inception_distance,
    mmd2_unbiased,
)


def _exact_samples(mu, cov, n, seed):
    """n samples whose sample mean is exactly ``mu`` and sample covariance (ddof 1) exactly ``cov``."""
    rng = np.random.default_rng(seed)
    d = len(mu)
    z = rng.normal(size=(n, d))
    z -= z.mean(0)
    c = np.cov(z, rowvar=False)
    z = z @ np.linalg.inv(np.linalg.cholesky(c)).T  # whiten: sample covariance = I
    return z @ np.linalg.cholesky(cov).T + mu


def test_fd_of_a_set_with_itself_and_shuffled_is_zero():
    x = np.random.default_rng(0).normal(size=(200, 16)) * np.linspace(0.1, 3, 16)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    shuffled = x[np.random.default_rng(1).permutation(len(x))]
    assert frechet_distance(x, shuffled) == pytest.approx(0.0, abs=1e-8)
    y = x + 1.0
    assert frechet_distance(shuffled, y) == pytest.approx(frechet_distance(x, y), rel=1e-10)


def test_fd_matches_a_direct_numpy_computation():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6))
    y = rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6)) + 0.3
    mx, my = x.mean(0), y.mean(0)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    # tr sqrt(Sx Sy) = sum of square roots of the eigenvalues of the (non-symmetric) product
    tr_sqrt = np.sqrt(np.linalg.eigvals(sx @ sy).real.clip(0)).sum()
    direct = ((mx - my) ** 2).sum() + np.trace(sx) + np.trace(sy) - 2 * tr_sqrt
    assert frechet_distance(x, y) == pytest.approx(direct, rel=1e-8)
    mu, cov = gaussian_stats(x)
    np.testing.assert_allclose(cov, sx, rtol=1e-12)
    np.testing.assert_allclose(mu, mx, rtol=1e-12)


def test_fd_of_gaussians_matches_the_closed_form_diagonal():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    x = _exact_samples(mu1, np.diag(a), 30, 0)
    y = _exact_samples(mu2, np.diag(b), 45, 1)
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()  # = 5 + 4 + 1 = 10
    assert closed == pytest.approx(10.0)
    assert frechet_distance(x, y) == pytest.approx(closed, rel=1e-9)


def test_fd_of_gaussians_matches_the_closed_form_non_commuting():
    # 2 x 2: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for M with non-negative eigenvalues
    s1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    s2 = np.array([[1.0, -0.5], [-0.5, 3.0]])
    mu1, mu2 = np.array([0.5, -1.0]), np.array([0.0, 2.0])
    m = s1 @ s2
    closed = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.trace(m) + 2 * np.sqrt(np.linalg.det(m)))
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(closed, rel=1e-12)
    x, y = _exact_samples(mu1, s1, 20, 2), _exact_samples(mu2, s2, 25, 3)
    assert frechet_distance(x, y) == pytest.approx(closed, rel=1e-9)


def test_fd_handles_fewer_samples_than_dimensions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 32))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(x, rng.normal(size=(12, 32)) + 2) > 100


def test_fd_rejects_bad_input():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError):
        frechet_distance(np.full((5, 2), np.nan), np.zeros((5, 2)))


def _direct_mmd2(x, y):
    m = len(x)
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return sxx + syy - 2 * sxy


def test_kid_matches_a_direct_computation():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 4)) + 0.5
    direct = _direct_mmd2(x, y)
    assert mmd2_unbiased(x, y) == pytest.approx(direct, rel=1e-10)
    # subsets of the whole set: every subset is a permutation of all samples -> the same value, std 0
    mean, std = kernel_inception_distance(x, y, subsets=4, subset_size=100)
    assert mean == pytest.approx(direct, rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)
    # proper subsets: the mean of the subset values, each a direct MMD^2 of the drawn rows
    rs = np.random.default_rng(7)
    vals = []
    for _ in range(3):
        ix, iy = rs.choice(12, 6, replace=False), rs.choice(12, 6, replace=False)
        vals.append(_direct_mmd2(x[ix], y[iy]))
    mean, std = kernel_inception_distance(x, y, subsets=3, subset_size=6, seed=7)
    assert mean == pytest.approx(np.mean(vals), rel=1e-10)
    assert std == pytest.approx(np.std(vals), rel=1e-8)


def test_kid_is_zero_in_expectation_for_one_distribution_and_positive_for_shifted():
    rng = np.random.default_rng(11)
    same, shifted = [], []
    for i in range(20):
        x, y = rng.normal(size=(100, 8)), rng.normal(size=(100, 8))
        same.append(kernel_inception_distance(x, y, subsets=5, subset_size=50, seed=i)[0])
        shifted.append(kernel_inception_distance(x, y + 0.5, subsets=5, subset_size=50, seed=i)[0])
    se = np.std(same) / np.sqrt(len(same))
    assert abs(np.mean(same)) < 3 * se  # unbiased: no systematic offset from 0
    assert min(shifted) > 0
    assert np.mean(shifted) > 20 * se
    # a set against itself (the same samples, not a second draw) is not 0 but slightly negative: the
    # diagonal k(x_i, x_i) is left out of the within-set terms only, 2 (S - T) / (m (m - 1)) - 2 S / m^2
    x = rng.normal(size=(60, 8))
    k = (x @ x.T / 8 + 1) ** 3
    expected = 2 * (k.sum() - np.trace(k)) / (60 * 59) - 2 * k.sum() / 60**2
    assert expected < 0
    assert kernel_inception_distance(x, x, subset_size=60)[0] == pytest.approx(expected, rel=1e-10)


def test_realism_features_are_deterministic_and_trained_on_real_images_only():
    import torch
    from lab.tasks import realism_scores
    from lab.realism import RealismFeatures

    rng = np.random.default_rng(0)
    a = rng.integers(0, 120, size=(8, 16, 16, 3), dtype=np.uint8)
    b = rng.integers(120, 255, size=(8, 16, 16, 3), dtype=np.uint8)
    f1 = RealismFeatures(dim=8, width=4, steps=3, batch_size=8, seed=1).fit(a, b)
    f2 = RealismFeatures(dim=8, width=4, steps=3, batch_size=8, seed=1).fit(a, b)
    out1, out2 = f1.features(b), f2.features(b)
    assert out1.shape == (8, 8) and out1.dtype == np.float64
    np.testing.assert_array_equal(out1, out2)
    assert torch.get_rng_state() is not None  # fitting leaves the global RNG usable
    scores = realism_scores(f1, b, b, kid_subset_size=8)
    assert scores["fd"] == pytest.approx(0.0, abs=1e-6)
    assert abs(scores["kid"]) < 1e-3
    restored = RealismFeatures().load_state_dict(f1.state_dict())
    np.testing.assert_allclose(restored.features(a), f1.features(a), rtol=1e-6)
    with pytest.raises(RuntimeError):
        RealismFeatures().features(a)
