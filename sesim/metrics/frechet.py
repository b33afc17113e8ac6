"""Distribution distances between two sets of feature vectors: Frechet distance and KID.

Both take two arrays of shape ``(N, D)`` (numpy arrays or tensors; anything ``np.asarray``
accepts) and work in float64 with numpy only (no scipy).

* :func:`frechet_distance` -- the Frechet (2-Wasserstein) distance between the Gaussians fitted
  to the two sets (the formula behind FID)::

      FD = |mu_x - mu_y|^2 + tr(S_x) + tr(S_y) - 2 tr((S_x S_y)^(1/2))

  with ``S`` the unbiased sample covariance (``ddof = 1``, as ``np.cov`` and pytorch-fid). The
  matrix square root is never formed from the non-symmetric product ``S_x S_y``: since
  ``S_x S_y`` is similar to the symmetric PSD matrix ``M = S_x^(1/2) S_y S_x^(1/2)``, the two have
  the same eigenvalues, so ``tr((S_x S_y)^(1/2)) = sum_i sqrt(lambda_i(M))``. ``S_x^(1/2)`` comes
  from ``np.linalg.eigh`` of ``S_x`` (eigenvalues clipped at 0), ``M`` is symmetrised
  (``(M + M^T) / 2``) against round-off, and its eigenvalues (again clipped at 0, so a singular
  covariance -- fewer samples than dimensions -- is fine) come from ``np.linalg.eigvalsh``.
  Exact up to round-off; no iterative ``sqrtm`` and no complex parts to discard.

* :func:`kernel_inception_distance` -- KID (Binkowski et al., "Demystifying MMD GANs", 2018):
  the unbiased estimator of the squared maximum mean discrepancy with the cubic polynomial
  kernel ``k(x, y) = (x . y / D + 1)^3``, averaged over ``subsets`` random subsets of
  ``subset_size`` samples drawn (without replacement within a subset) from each set::

      MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
                - 2 sum_{i, j} k(x_i, y_j) / m^2

  It is unbiased, so its expectation is 0 for two samples of one distribution (single values can
  be slightly negative) and it needs far fewer samples than FD.

Neither number is comparable to published FID/KID values unless the features are the same
(Inception-v3 pool3 on 299 px images, 50k samples); sesim's benchmark uses its own small
feature extractor (``bench/lab/realism.py``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["frechet_distance", "frechet_distance_from_stats", "gaussian_stats", "kernel_inception_distance",
           "polynomial_kernel", "mmd2_unbiased", "KID_SCALE"]

#: sesim reports KID (and every KD) multiplied by this, everywhere (papers use x100 or x1000; the
#: functions here return the raw MMD^2)
KID_SCALE = 100


def _as_features(feats, name: str) -> np.ndarray:
    if hasattr(feats, "detach"):  # torch tensor
        feats = feats.detach().cpu().numpy()
    arr = np.asarray(feats, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected features of shape (N, D), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: features contain NaN or inf")
    return arr


def _feature_pair(a, b, names: tuple[str, str] = ("feats_x", "feats_y")) -> tuple[np.ndarray, np.ndarray]:
    """Two feature sets checked by :func:`_as_features` and for equal dimensions."""
    x, y = _as_features(a, names[0]), _as_features(b, names[1])
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    return x, y


def gaussian_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` (``ddof = 1``) of ``(N, D)`` features, float64."""
    x = _as_features(feats, "feats")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {x.shape[0]}")
    mu = x.mean(axis=0)
    xc = x - mu
    cov = xc.T @ xc / (x.shape[0] - 1)
    return mu, cov


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix via its eigen-decomposition."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_stats(mu_x, cov_x, mu_y, cov_y) -> float:
    """``|mu_x - mu_y|^2 + tr(S_x + S_y - 2 (S_x S_y)^(1/2))`` for given means and covariances."""
    mu_x, mu_y = np.asarray(mu_x, np.float64), np.asarray(mu_y, np.float64)
    cov_x, cov_y = np.asarray(cov_x, np.float64), np.asarray(cov_y, np.float64)
    if mu_x.shape != mu_y.shape or cov_x.shape != cov_y.shape or cov_x.shape != (mu_x.size, mu_x.size):
        raise ValueError(f"shape mismatch: means {mu_x.shape}, {mu_y.shape}; covariances {cov_x.shape}, {cov_y.shape}")
    sx = _sqrtm_psd(cov_x)
    m = sx @ cov_y @ sx
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu_x - mu_y
    fd = float(diff @ diff + np.trace(cov_x) + np.trace(cov_y) - 2.0 * tr_sqrt)
    return max(fd, 0.0)  # exact value is >= 0; clip round-off


def frechet_distance(feats_x, feats_y) -> float:
    """Frechet distance between Gaussians fitted to two ``(N, D)`` feature sets (see module doc).

    0 for a set with itself (up to round-off), invariant to the order of the samples.
    """
    x, y = _feature_pair(feats_x, feats_y)
    return frechet_distance_from_stats(*gaussian_stats(x), *gaussian_stats(y))


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """``(x . y / D + coef0) ** degree`` for all pairs of rows, ``(n, m)``."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between two equally sized samples with the cubic polynomial kernel."""
    m = x.shape[0]
    if m < 2 or y.shape[0] != m:
        raise ValueError("mmd2_unbiased needs two samples of the same size >= 2")
    kxx = polynomial_kernel(x, x)
    kyy = polynomial_kernel(y, y)
    kxy = polynomial_kernel(x, y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kernel_inception_distance(feats_x, feats_y, *, subsets: int = 10, subset_size: int = 100,
                              seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation over ``subsets`` of the unbiased MMD^2 (cubic kernel).

    Each subset draws ``min(subset_size, len(x), len(y))`` samples without replacement from each
    set (independently per subset, with a generator seeded by ``seed``). The standard deviation
    (``ddof = 0``, as in the reference code) describes the spread over subsets, not an error bar of
    the mean. When the subset size equals both set sizes every subset is the whole set and the
    standard deviation is 0.
    """
    x, y = _feature_pair(feats_x, feats_y)
    if subsets < 1:
        raise ValueError("subsets must be >= 1")
    m = min(int(subset_size), x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(f"need at least 2 samples per set, got {x.shape[0]} and {y.shape[0]}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(int(subsets)):
        ix = rng.choice(x.shape[0], size=m, replace=False)
        iy = rng.choice(y.shape[0], size=m, replace=False)
        values.append(mmd2_unbiased(x[ix], y[iy]))
    v = np.asarray(values)
    return float(v.mean()), float(v.std())
