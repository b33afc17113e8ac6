"""Built-in real-photo task with a known target: photo crops (A) -> a fixed "negative night" look (B).

The photographs are the colour test images shipped inside the scikit-image wheel
(``skimage.data``: astronaut, chelsea the cat, coffee, rocket, and the left view of the stereo
motorcycle); they load from the installed package, never through a download. scikit-image is
needed only to *build* the task (``pip install scikit-image``). Used by the benchmarks only
(``bench/quality.py``'s *photos* task); not part of the sesim package.

Each photo is cut along its long axis into three disjoint strips: 40 % for domain A, 40 % for
domain B and 20 % held out for testing (the order of the strips differs between photos, so the
test set is not always the centre of the picture)::

    trainA   random square crops of the A strips                                 (n_train)
    trainB   random crops of the B strips, through :func:`appearance_transform`  (n_train)
    testA    random crops of the held-out strips                                 (n_test)
    testB    other random crops of the held-out strips, transformed              (n_test)
    targets/testA   appearance_transform(testA): the known target of each test input

``trainA`` and ``trainB`` never share a pixel (unpaired, different regions), so a translator
only ever sees the look of domain B on other content. Because the transform is a fixed function
of each pixel, the correct translation of a held-out crop is known exactly, and
:func:`target_errors` scores a translation against it (mean absolute error and SSIM): 0 / 1 for
the oracle, large / low for a translator that does nothing.

:func:`appearance_transform` ("negative night") is strong but keeps every edge: the colour
negative with the channels rotated (R <- 1 - B, G <- 1 - R, B <- 1 - G), a darkening tone curve
(power 1.6) and a cool tint. It is smooth and one-to-one on RGB, so the structure of the input
fully determines the target.

Crops take 20-40 % of the photo's short side (clipped to the strip), resized to ``size`` with a
Lanczos filter: at 64 px every crop is downsampled; at much larger sizes they are upsampled and
blurry (the task is meant for 64-128 px). Everything is deterministic given ``seed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sesim.data.generated import finish_dataset, save_png, start_dataset

__all__ = [
    "PHOTOS",
    "TRANSFORM_NAME",
    "load_photos",
    "appearance_transform",
    "strip_boxes",
    "random_crops",
    "make_photo_dataset",
    "l1_error",
    "ssim",
    "target_errors",
    "PHOTO_TASK_DESCRIPTION",
]

#: Photo name -> order of its strips along the long axis (A: trainA, B: trainB, T: held out).
PHOTOS: dict[str, str] = {
    "astronaut": "ATB",
    "chelsea": "BAT",
    "coffee": "TBA",
    "rocket": "ABT",
    "motorcycle": "BTA",
}
_STRIP_FRACTION = {"A": 0.4, "B": 0.4, "T": 0.2}
_CROP_RANGE = (0.2, 0.4)  # crop side as a fraction of the photo's short side

TRANSFORM_NAME = "negative night"
PHOTO_TASK_DESCRIPTION = (
    "Real photos (scikit-image's bundled test images) -> the same kind of photos under a fixed 'negative night' "
    "colour transform; trainA/trainB come from disjoint regions (unpaired); each test input has a known target."
)
GENERATOR_VERSION = 1
_SUBDIRS = ("trainA", "trainB", "testA", "testB", "targets/testA")


# ----------------------------------------------------------------------------- photos
def load_photos() -> dict[str, np.ndarray]:
    """The five colour photographs bundled with scikit-image, ``name -> (H, W, 3) uint8``."""
    try:
        import skimage.data as skd
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the real-photo task needs scikit-image's bundled photos: pip install scikit-image") from err
    loaders = {
        "astronaut": skd.astronaut,
        "chelsea": skd.chelsea,
        "coffee": skd.coffee,
        "rocket": skd.rocket,
        "motorcycle": lambda: skd.stereo_motorcycle()[0],
    }
    out = {}
    for name in PHOTOS:
        img = np.asarray(loaders[name]())
        if img.ndim != 3 or img.shape[-1] < 3:
            raise ValueError(f"skimage.data {name}: unexpected shape {img.shape}")
        out[name] = np.ascontiguousarray(img[..., :3].astype(np.uint8))
    return out


def appearance_transform(images) -> np.ndarray:
    """The task's fixed appearance change, ``(..., 3) uint8 -> (..., 3) uint8`` ("negative night").

    ``y = (1 - x[B, R, G]) ** 1.6 * (0.80, 0.90, 1.00) + (0.02, 0.04, 0.10)`` with ``x`` in [0, 1]:
    colour negative with rotated channels, a darkening tone curve and a cool tint. Per pixel,
    smooth and one-to-one, so edges and layout are exactly those of the input.
    """
    x = np.asarray(images)
    if x.shape[-1] != 3:
        raise ValueError(f"expected RGB images (..., 3), got {x.shape}")
    f = x.astype(np.float64) / 255.0
    y = 1.0 - f[..., [2, 0, 1]]
    y = y ** 1.6
    y = y * np.array([0.80, 0.90, 1.00]) + np.array([0.02, 0.04, 0.10])
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


def strip_boxes(shape: tuple[int, ...], order: str) -> dict[str, tuple[int, int, int, int]]:
    """Disjoint strips of an image of ``shape`` along its long axis: ``{"A"|"B"|"T": (y0, y1, x0, x1)}``."""
    h, w = int(shape[0]), int(shape[1])
    long_ = max(h, w)
    boxes = {}
    start = 0
    for i, key in enumerate(order):
        end = long_ if i == len(order) - 1 else start + int(round(_STRIP_FRACTION[key] * long_))
        boxes[key] = (start, end, 0, w) if h >= w else (0, h, start, end)
        start = end
    return boxes


def random_crops(photos: dict[str, np.ndarray], split: str, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` square crops from strip ``split`` ("A", "B" or "T") of random photos, resized to ``size``."""
    names = list(PHOTOS)
    out = np.empty((int(n), size, size, 3), dtype=np.uint8)
    for i in range(int(n)):
        name = names[int(rng.integers(len(names)))]
        img = photos[name]
        y0, y1, x0, x1 = strip_boxes(img.shape, PHOTOS[name])[split]
        short = min(img.shape[:2])
        side = int(round(rng.uniform(*_CROP_RANGE) * short))
        side = max(8, min(side, y1 - y0, x1 - x0))
        top = int(rng.integers(y0, y1 - side + 1))
        left = int(rng.integers(x0, x1 - side + 1))
        crop = Image.fromarray(img[top : top + side, left : left + side])
        out[i] = np.asarray(crop.resize((size, size), Image.LANCZOS))
    return out


# ----------------------------------------------------------------------------- dataset
def make_photo_dataset(root, *, size: int = 64, n_train: int = 400, n_test: int = 128, seed: int = 0) -> dict:
    """Write the real-photo task under ``root`` (see the module doc) and return its meta.

    Deterministic given the arguments. A complete dataset with the same parameters in ``root`` is
    reused as is; a previous photo-task dataset with other parameters is replaced; a non-empty
    folder that is not a photo-task dataset raises ``FileExistsError``.
    """
    root = Path(root)
    params = {"size": int(size), "n_train": int(n_train), "n_test": int(n_test), "seed": int(seed),
              "generator_version": GENERATOR_VERSION}
    if min(n_train, n_test) < 1 or size < 8:
        raise ValueError("n_train and n_test must be >= 1 and size >= 8")
    counts = {"trainA": n_train, "trainB": n_train, "testA": n_test, "testB": n_test, "targets/testA": n_test}
    meta = start_dataset(root, "sesim-photo-task", params, counts, photos=PHOTOS, transform=TRANSFORM_NAME,
                         description=PHOTO_TASK_DESCRIPTION)
    if meta["complete"]:
        return meta

    photos = load_photos()
    streams = dict(zip(("trainA", "trainB", "testA", "testB"), np.random.SeedSequence([int(seed), 0xF070]).spawn(4)))
    plan = {"trainA": ("A", n_train), "trainB": ("B", n_train), "testA": ("T", n_test), "testB": ("T", n_test)}
    for split, (strip, n) in plan.items():
        crops = random_crops(photos, strip, n, size, np.random.default_rng(streams[split]))
        if split.endswith("B"):
            crops = appearance_transform(crops)
        for i, crop in enumerate(crops):
            save_png(root / split / f"{i:06d}.png", crop)
            if split == "testA":
                save_png(root / "targets" / "testA" / f"{i:06d}.png", appearance_transform(crop))
    return finish_dataset(root, meta)


# ----------------------------------------------------------------------------- scores
def _images(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"{name}: expected (N, H, W, 3) images, got {arr.shape}")
    return arr


def l1_error(images, targets) -> float:
    """Mean absolute difference in 0..255 units over all pixels and channels."""
    x, y = _images(images, "images"), _images(targets, "targets")
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs {y.shape}")
    return float(np.abs(x.astype(np.float64) - y.astype(np.float64)).mean())


def _gaussian_window(sigma: float = 1.5, radius: int = 5) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(t * t) / (2 * sigma * sigma))
    return g / g.sum()


def ssim(images, targets, *, data_range: float = 255.0) -> float:
    """Mean SSIM (Wang et al. 2004) of RGB images against targets, averaged over channels and images.

    Gaussian window sigma 1.5 (11 taps), K1 = 0.01, K2 = 0.03, population (not sample) statistics,
    averaged over the positions where the window fits inside the image -- the same numbers as
    ``skimage.metrics.structural_similarity(x, y, channel_axis=-1, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255)`` per image. 1 only for identical images.
    """
    x, y = _images(images, "images"), _images(targets, "targets")
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs {y.shape}")
    if min(x.shape[1:3]) < 11:
        raise ValueError(f"images must be at least 11 x 11 pixels for SSIM, got {x.shape[1:3]}")
    g = _gaussian_window()
    kh, kw = g.view(1, 1, -1, 1), g.view(1, 1, 1, -1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # (M, 1, H, W) -> valid region (M, 1, H - 10, W - 10)
        return F.conv2d(F.conv2d(t, kh), kw)

    values = []
    for i in range(0, x.shape[0], 64):
        a = torch.from_numpy(x[i : i + 64].astype(np.float64)).permute(0, 3, 1, 2).reshape(-1, 1, *x.shape[1:3])
        b = torch.from_numpy(y[i : i + 64].astype(np.float64)).permute(0, 3, 1, 2).reshape(-1, 1, *y.shape[1:3])
        mx, my = blur(a), blur(b)
        vx = blur(a * a) - mx * mx
        vy = blur(b * b) - my * my
        cxy = blur(a * b) - mx * my
        c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        values.append(s.reshape(-1, 3, s.shape[-2] * s.shape[-1]).mean(dim=(1, 2)))
    return float(torch.cat(values).mean())


def target_errors(translations, targets) -> dict[str, float]:
    """``{"target_l1": mean |translation - target| (0..255), "target_ssim": mean SSIM}``."""
    return {"target_l1": l1_error(translations, targets), "target_ssim": ssim(translations, targets)}
