"""Precision, recall, density and coverage of generated samples, from k-nearest-neighbour balls.

Given real features ``R`` (``(N, D)``) and fake features ``F`` (``(M, D)``), and the radius
``r_i`` of each real sample = Euclidean distance to its ``k``-th nearest *other* real sample
(``s_j`` likewise among fakes):

* precision (Kynkaenniemi et al. 2019) = ``(1/M) sum_j 1[exists i: |F_j - R_i| < r_i]``
* recall    (Kynkaenniemi et al. 2019) = ``(1/N) sum_i 1[exists j: |R_i - F_j| < s_j]``
* density   (Naeem et al. 2020)        = ``(1/(k M)) sum_j sum_i 1[|F_j - R_i| < r_i]``
  (can exceed 1 when fakes crowd in dense real regions; about 1 for fakes distributed like reals)
* coverage  (Naeem et al. 2020)        = ``(1/N) sum_i 1[min_j |R_i - F_j| < r_i]``

``k = 5`` by default, the value Naeem et al. recommend. Balls use a strict ``<``. All in float64;
pairwise distances are formed in full (``N x M``), fine for the few thousand samples of an
evaluation set. Density and coverage are the more robust pair (outliers in the real set inflate
precision; an outlier fake inflates recall).
"""

from __future__ import annotations

import numpy as np

from .frechet import _feature_pair

__all__ = ["pairwise_distances", "knn_radii", "prdc", "DEFAULT_K"]

DEFAULT_K = 5


def pairwise_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distances ``(n, m)`` between the rows of ``x (n, D)`` and ``y (m, D)``."""
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.sqrt(np.clip(sq, 0.0, None))


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row of ``x`` to its ``k``-th nearest other row, ``(n,)``."""
    if x.shape[0] <= k:
        raise ValueError(f"need more than k={k} samples for k-NN radii, got {x.shape[0]}")
    d = pairwise_distances(x, x)
    np.fill_diagonal(d, np.inf)  # exclude the point itself
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def prdc(real_features, fake_features, *, k: int = DEFAULT_K) -> dict[str, float]:
    """``{"precision", "recall", "density", "coverage"}`` of fakes against reals (see module doc)."""
    r, f = _feature_pair(real_features, fake_features, ("real_features", "fake_features"))
    k = int(k)
    if k < 1:
        raise ValueError("k must be >= 1")
    real_r = knn_radii(r, k)
    fake_r = knn_radii(f, k)
    d_rf = pairwise_distances(r, f)  # (N, M)
    inside_real = d_rf < real_r[:, None]  # fake j inside the ball of real i
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((d_rf < fake_r[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum() / (k * f.shape[0])),
        "coverage": float((d_rf.min(axis=1) < real_r).mean()),
    }
