"""Scores for "did the translation keep the layout and change the appearance?".

Used by the built-in demo (:mod:`sesim.data.demo_scenes`), where the true class layout
of every input is known.

* **Structure kept** -- :class:`PixelClassifier` is a per-pixel class predictor trained
  only on *real* domain-B photos with their true layouts (never on generator output).  It
  sees appearance only (local colour at two blur scales and local texture strength; no
  pixel position), so it can recognise "grass-looking" or "water-looking" pixels but
  cannot guess the layout.  Running it on a translation and comparing with the layout of
  the *input* gives :func:`pixel_accuracy` / :func:`mean_iou`: high only if the
  translation both looks like real photos *and* puts each class where the input had it.
* **Appearance moved** -- :func:`appearance_distance` is a sliced Wasserstein-1 distance
  between the pixel-colour distributions of two image sets (0..255 units): small when a
  translation's colours are distributed like real photos, large for the raw label maps.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "pixel_features",
    "PixelClassifier",
    "pixel_accuracy",
    "mean_iou",
    "confusion_matrix",
    "segmentation_scores",
    "appearance_distance",
    "structure_appearance_report",
]


# ----------------------------------------------------------------------------- features
def _batch(images, ndim: int = 4) -> np.ndarray:
    """``images`` as an array with ``ndim`` axes, the first the batch: a single image (one axis
    fewer, e.g. (H, W, 3)) becomes a batch of one."""
    arr = np.asarray(images)
    return arr[None] if arr.ndim == ndim - 1 else arr


def _to_tensor(images) -> torch.Tensor:
    """(N, H, W, 3) uint8 (or a single (H, W, 3)) -> (N, 3, H, W) float32 in [0, 1]."""
    arr = _batch(images)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected images of shape (N, H, W, 3), got {arr.shape}")
    t = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32) / 255.0
    return t.permute(0, 3, 1, 2).contiguous()


def _box(x: torch.Tensor, k: int) -> torch.Tensor:
    """k x k box mean with replicate padding (keeps the size); separable, so O(k) per pixel."""
    p = k // 2
    x = F.avg_pool2d(F.pad(x, (p, p, 0, 0), mode="replicate"), (1, k), stride=1)
    return F.avg_pool2d(F.pad(x, (0, 0, p, p), mode="replicate"), (k, 1), stride=1)


@torch.no_grad()
def pixel_features(images, *, batch: int = 64) -> torch.Tensor:
    """Appearance-only per-pixel features, (N, H, W, 12) float32.

    Per pixel: RGB box-blurred over 3x3 and 7x7, and the local standard deviation of each
    channel over 3x3 and 7x7 (texture).  No position information on purpose, so that the
    classifier cannot fall back on layout priors (e.g. "sky is at the top").
    """
    x = _to_tensor(images)
    outs = []
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch]
        feats = []
        for k in (3, 7):
            m = _box(xb, k)
            var = (_box(xb * xb, k) - m * m).clamp_min(0.0)
            feats += [m, var.add(1e-6).sqrt()]
        f = torch.cat([feats[0], feats[2], feats[1], feats[3]], dim=1)  # mean3, mean7, std3, std7
        outs.append(f.permute(0, 2, 3, 1).contiguous())
    return torch.cat(outs, dim=0)


def _expand(f: torch.Tensor) -> torch.Tensor:
    """Linear + quadratic terms of standardized features, (..., d) -> (..., d + d(d+1)/2)."""
    d = f.shape[-1]
    iu = torch.triu_indices(d, d)
    quad = f[..., iu[0]] * f[..., iu[1]]
    return torch.cat([f, quad], dim=-1)


# ----------------------------------------------------------------------------- classifier
class PixelClassifier:
    """Per-pixel class predictor trained only on real domain-B images and their layouts.

    A multinomial logistic regression on quadratic expansions of :func:`pixel_features`
    (appearance only), fitted with full-batch L-BFGS on a fixed random subsample of pixels
    with class-balanced weights.  Deterministic given ``seed``; fitting takes about a
    second on a CPU.
    """

    def __init__(self, num_classes: int, *, max_pixels: int = 40_000, steps: int = 80,
                 l2: float = 1e-4, seed: int = 0):
        self.num_classes = int(num_classes)
        self.max_pixels = int(max_pixels)
        self.steps = int(steps)
        self.l2 = float(l2)
        self.seed = int(seed)
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self.weight: torch.Tensor | None = None  # (D, C)
        self.bias: torch.Tensor | None = None  # (C,)

    # -- fitting
    def fit(self, images, layouts) -> "PixelClassifier":
        """Fit on real photos ``images`` (N, H, W, 3) uint8 with true ``layouts`` (N, H, W)."""
        lay = torch.from_numpy(np.asarray(layouts).astype(np.int64))
        feats = pixel_features(images)
        if lay.shape != feats.shape[:3]:
            raise ValueError(f"layouts {tuple(lay.shape)} do not match images {tuple(feats.shape[:3])}")
        if lay.min() < 0 or lay.max() >= self.num_classes:
            raise ValueError("layout class ids out of range")
        f = feats.reshape(-1, feats.shape[-1])
        y = lay.reshape(-1)
        g = torch.Generator().manual_seed(self.seed)
        if f.shape[0] > self.max_pixels:
            idx = torch.randperm(f.shape[0], generator=g)[: self.max_pixels]
            f, y = f[idx], y[idx]
        self.mean = f.mean(0)
        self.std = f.std(0).clamp_min(1e-4)
        z = _expand((f - self.mean) / self.std).to(torch.float64)

        counts = torch.bincount(y, minlength=self.num_classes).to(torch.float64)
        cw = torch.where(counts > 0, counts.sum() / (self.num_classes * counts.clamp_min(1)), torch.zeros_like(counts))
        cw = cw.sqrt()  # soften the balancing: rare classes matter, but not overwhelmingly
        sw = cw[y]
        sw = sw / sw.mean()

        # Full-batch L-BFGS with an analytic gradient (cheaper than autograd here).
        n, d = z.shape
        onehot = F.one_hot(y, self.num_classes).to(torch.float64)
        zt = z.t().contiguous()
        swn = (sw / n)[:, None]
        w = torch.zeros(d, self.num_classes, dtype=torch.float64)
        b = torch.zeros(self.num_classes, dtype=torch.float64)
        w.grad = torch.zeros_like(w)
        b.grad = torch.zeros_like(b)
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=self.steps, history_size=20,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

        def closure():
            logp = torch.log_softmax(z @ w + b, dim=-1)
            loss = -((logp * onehot).sum(1, keepdim=True) * swn).sum() + self.l2 * (w * w).sum()
            r = (logp.exp() - onehot) * swn
            w.grad.copy_(zt @ r + 2.0 * self.l2 * w)
            b.grad.copy_(r.sum(0))
            return loss

        with torch.no_grad():
            opt.step(closure)
        self.weight = w.detach().to(torch.float32)
        self.bias = b.detach().to(torch.float32)
        return self

    # -- inference
    def _check(self) -> None:
        if self.weight is None:
            raise RuntimeError("PixelClassifier is not fitted; call fit() or load_state_dict() first")

    @torch.no_grad()
    def _logits(self, images, batch: int = 32):
        self._check()
        arr = _batch(images)
        for i in range(0, arr.shape[0], batch):  # batched: the expanded features are large
            feats = pixel_features(arr[i : i + batch])
            yield _expand((feats - self.mean) / self.std) @ self.weight + self.bias

    def predict_proba(self, images) -> np.ndarray:
        """Class probabilities, (N, H, W, C) float32."""
        return torch.cat([torch.softmax(z, dim=-1) for z in self._logits(images)]).numpy()

    def predict(self, images) -> np.ndarray:
        """Predicted class ids, (N, H, W) int64."""
        return torch.cat([z.argmax(-1) for z in self._logits(images)]).numpy().astype(np.int64)

    # -- persistence
    _FITTED = ("mean", "std", "weight", "bias")  # the fitted tensors, as stored in a state dict

    def state_dict(self) -> dict:
        self._check()
        return {"num_classes": torch.tensor(self.num_classes), **{k: getattr(self, k).clone() for k in self._FITTED}}

    def load_state_dict(self, state: dict) -> "PixelClassifier":
        nc = int(state["num_classes"])
        if nc != self.num_classes:
            raise ValueError(f"state has {nc} classes, classifier has {self.num_classes}")
        for k in self._FITTED:
            setattr(self, k, state[k].to(torch.float32).clone())
        return self


# ----------------------------------------------------------------------------- scores
def pixel_accuracy(pred, true, *, ignore_index: int | None = None) -> float:
    """Fraction of pixels whose predicted class equals the true class (pixels whose true label is
    ``ignore_index`` are left out)."""
    p, t = np.asarray(pred), np.asarray(true)
    if p.shape != t.shape:
        raise ValueError(f"shape mismatch: {p.shape} vs {t.shape}")
    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    if p.size == 0:
        raise ValueError("empty arrays (or every pixel ignored)")
    return float((p == t).mean())


def confusion_matrix(pred, true, num_classes: int, *, ignore_index: int | None = 255) -> np.ndarray:
    """``(K, K + 1)`` int64 counts: row = true class, column = predicted class, the last column
    counts predictions outside ``0..K-1`` (always wrong). Pixels whose true label is
    ``ignore_index`` or outside ``0..K-1`` are not counted (Cityscapes: 255 = void)."""
    p = np.asarray(pred).astype(np.int64).ravel()
    t = np.asarray(true).astype(np.int64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"shape mismatch: {np.shape(pred)} vs {np.shape(true)}")
    k = int(num_classes)
    keep = (t >= 0) & (t < k)
    if ignore_index is not None:
        keep &= t != ignore_index
    p, t = p[keep], t[keep]
    p = np.where((p >= 0) & (p < k), p, k)
    return np.bincount(t * (k + 1) + p, minlength=k * (k + 1)).reshape(k, k + 1)


def segmentation_scores(conf: np.ndarray) -> dict[str, float]:
    """FCN-score style numbers from a :func:`confusion_matrix` ``(K, K + 1)``.

    ``pixel_accuracy`` = correct / counted pixels; ``mean_class_accuracy`` = mean over classes
    present in the labels of correct / labelled-as-that-class; ``mean_iou`` = mean over classes
    present in labels or predictions of ``TP / (TP + FP + FN)``. Also ``class_iou`` (list, NaN for
    classes absent from both) and ``pixels`` (number counted).
    """
    conf = np.asarray(conf, dtype=np.float64)
    k = conf.shape[0]
    if conf.ndim != 2 or conf.shape[1] != k + 1:
        raise ValueError(f"expected a (K, K+1) confusion matrix, got {conf.shape}")
    total = conf.sum()
    if total == 0:
        raise ValueError("no labelled pixels (every pixel ignored?)")
    tp = np.diag(conf[:, :k])
    gt = conf.sum(1)
    predicted = conf[:, :k].sum(0)
    union = gt + predicted - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        class_acc = np.where(gt > 0, tp / gt, np.nan)
        iou = np.where(union > 0, tp / union, np.nan)
    return {
        "pixel_accuracy": float(tp.sum() / total),
        "mean_class_accuracy": float(np.nanmean(class_acc)),
        "mean_iou": float(np.nanmean(iou)),
        "class_iou": [None if np.isnan(v) else float(v) for v in iou],
        "pixels": int(total),
    }


def mean_iou(pred, true, num_classes: int) -> float:
    """Mean over classes of |pred==c & true==c| / |pred==c | true==c|.

    Classes absent from both ``pred`` and ``true`` are ignored, and so are pixels whose predicted or
    true class is outside ``0..num_classes-1``.
    """
    conf = confusion_matrix(pred, true, num_classes, ignore_index=None)[:, :-1]  # drop out-of-range predictions
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - np.diag(conf)
    present = union > 0
    if not present.any():
        raise ValueError("no classes present")
    return float((inter[present] / union[present]).mean())


def _pixels(images, n: int, rng: np.random.Generator) -> np.ndarray:
    arr = _batch(images)
    if arr.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) images, got {arr.shape}")
    px = arr.reshape(-1, 3)
    if px.shape[0] > n:
        px = px[rng.choice(px.shape[0], size=n, replace=False)]
    return px.astype(np.float64)


def appearance_distance(images_x, images_y, *, seed: int = 0, n_projections: int = 64,
                        max_pixels: int = 50_000) -> float:
    """Sliced Wasserstein-1 distance between the pixel-colour distributions of two image sets.

    All pixels of each set (a fixed random subsample of at most ``max_pixels``) are seen as
    points in RGB space (0..255).  They are projected onto ``n_projections`` random unit
    directions (fixed ``seed``); for each direction the 1-D Wasserstein-1 distance between
    the two projected distributions is the mean absolute difference of their quantiles; the
    result is the average over directions, in 0..255 units.  It is 0 for a set with itself,
    small for two sets of real photos (even of different layouts) and large for flat label
    maps vs photos.  It ignores where the colours are, i.e. it measures appearance only.
    """
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(3, int(n_projections)))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    px = _pixels(images_x, max_pixels, np.random.default_rng([seed, 1]))
    py = _pixels(images_y, max_pixels, np.random.default_rng([seed, 1]))
    m = max(px.shape[0], py.shape[0])
    qs = (np.arange(m) + 0.5) / m

    def quantiles(pixels: np.ndarray) -> np.ndarray:
        """``(m, n_projections)``: the sorted projections, or their ``m`` quantiles for the smaller set."""
        proj = np.sort(pixels @ dirs, axis=0)
        return proj if proj.shape[0] == m else np.quantile(proj, qs, axis=0, method="inverted_cdf")

    return float(np.abs(quantiles(px) - quantiles(py)).mean())


def structure_appearance_report(translations, input_layouts, classifier: PixelClassifier, real_b) -> dict:
    """Score translated images against the true layouts of their inputs.

    Returns ``{"pixel_accuracy", "mean_iou", "appearance_distance"}``: the first two compare
    ``classifier``'s per-pixel prediction on ``translations`` (N, H, W, 3) uint8 with
    ``input_layouts`` (N, H, W) -- structure kept *and* rendered like real photos; the
    last is :func:`appearance_distance` between ``translations`` and real domain-B images
    ``real_b`` -- lower means the appearance moved closer to real photos.
    """
    trans, lay = _batch(translations), _batch(input_layouts, ndim=3)
    if trans.shape[:3] != lay.shape:
        raise ValueError(f"translations {trans.shape} do not match layouts {lay.shape}")
    pred = classifier.predict(trans)
    return {
        "pixel_accuracy": pixel_accuracy(pred, lay),
        "mean_iou": mean_iou(pred, lay, classifier.num_classes),
        "appearance_distance": appearance_distance(trans, real_b),
    }
