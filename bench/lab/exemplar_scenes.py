"""Built-in tasks for exemplar-guided translation (``--mode exemplar``): paired conditions -> photos,
and test exemplars.

**Scenes** (:func:`make_exemplar_scenes`): the demo's synthetic layouts (:mod:`.demo_scenes`),
drawn as flat label maps (``A``) and *paired* with a photo-like rendering of the same layout
(``B``). Every photo has its own *appearance*: the demo renderer's random colours and textures
(seeded) followed by a global colour style (hue rotation, saturation, brightness), so an exemplar
carries information a label map does not. For each test input there is an exemplar (a photo of
another layout, in its own appearance) and the **second appearance**: the test layout rendered in
the exemplar's appearance — the ground truth of the warped exemplar (warp accuracy: L1 / PSNR /
SSIM, the paper's Table 4) and of a translation that follows the exemplar's style. The renderer
draws its random numbers class by class, so two layouts get identical colours, textures and
noise fields from one seed when they contain the same classes and the same number of building
blocks; the exemplar's layout is drawn until that holds.

**Edges** (:func:`make_edge_photo_dataset`): crops of the real photos bundled with scikit-image
(:mod:`lab.photo_task`'s strips: train from two strips, test from the held-out one), conditions are
their Canny edge maps (white on black); test exemplars are other held-out crops.

Layout of both::

    trainA/ trainB/            conditions and their photos (paired by name)
    testA/ testB/              held-out conditions and their true photos
    exemplars/                 one exemplar per test input (same name)
    second/                    scenes only: testA's layout in the exemplar's appearance
    layouts/{testA,exemplars}  scenes only: class-id maps
    meta.json

Deterministic given ``seed``; a complete dataset with the same parameters is reused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sesim.data.demo_scenes import BUILDING, SUN, WATER, random_layout, render_labels, render_photo
from sesim.data.generated import finish_dataset, save_png, start_dataset

__all__ = ["random_style", "apply_style", "render_styled", "make_exemplar_scenes", "canny_condition",
           "make_edge_photo_dataset"]

GENERATOR_VERSION = 1
_SCENE_DIRS = ("trainA", "trainB", "testA", "testB", "exemplars", "second", "layouts/testA", "layouts/exemplars")
_EDGE_DIRS = ("trainA", "trainB", "testA", "testB", "exemplars")

# RGB <-> YIQ (NTSC); a hue rotation is a rotation of the (I, Q) plane
_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_RGB = np.linalg.inv(_YIQ)


def random_style(rng: np.random.Generator) -> np.ndarray:
    """A global colour style ``[hue (rad), saturation, brightness]``: hue in [-0.7, 0.7], saturation
    in [0.6, 1.3], brightness in [0.75, 1.15]."""
    return np.array([rng.uniform(-0.7, 0.7), rng.uniform(0.6, 1.3), rng.uniform(0.75, 1.15)])


def apply_style(image: np.ndarray, style: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> the same picture with the style applied (in YIQ), uint8."""
    hue, sat, bright = (float(v) for v in style)
    c, s = np.cos(hue), np.sin(hue)
    mix = np.array([[bright, 0, 0], [0, sat * c, -sat * s], [0, sat * s, sat * c]])
    m = _RGB @ mix @ _YIQ
    out = image.astype(np.float64) @ m.T
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render_styled(layout: np.ndarray, appearance_seed: int, style: np.ndarray) -> np.ndarray:
    """A layout as a photo in one appearance: the demo renderer seeded with ``appearance_seed``, then
    :func:`apply_style`. ``(H, W)`` class ids -> ``(H, W, 3)`` uint8."""
    return apply_style(render_photo(layout, np.random.default_rng(appearance_seed)), style)


def _signature(layout: np.ndarray) -> tuple[bool, bool, int]:
    """What decides the renderer's sequence of random draws: sun present, water present, building blocks."""
    cols = (layout == BUILDING).any(axis=0).astype(np.int8)
    blocks = int((np.diff(np.concatenate([[0], cols])) == 1).sum())
    return bool((layout == SUN).any()), bool((layout == WATER).any()), blocks


def _matching_layout(rng: np.random.Generator, size: int, target: np.ndarray, tries: int = 500) -> np.ndarray:
    want = _signature(target)
    for _ in range(tries):
        lay = random_layout(rng, size)
        if _signature(lay) == want:
            return lay
    raise RuntimeError(f"no layout with signature {want} in {tries} draws")  # pragma: no cover


def make_exemplar_scenes(root, *, size: int = 64, n_train: int = 400, n_test: int = 24, seed: int = 0) -> dict:
    """Write the paired scenes task with test exemplars and second appearances (module doc); returns meta."""
    root = Path(root)
    meta = _start(root, "sesim-exemplar-scenes", _SCENE_DIRS, size, n_train, n_test, seed,
                  "paired label maps -> photos of the same layouts, each photo in its own appearance; test "
                  "exemplars and the test layouts in the exemplars' appearance (second/)")
    if meta["complete"]:
        return meta
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 0xE8E1]).spawn(2))
    for i in range(n_train):
        lay = random_layout(train_rng, size)
        stem = f"{i:06d}.png"
        save_png(root / "trainA" / stem, render_labels(lay))
        save_png(root / "trainB" / stem, render_styled(lay, int(train_rng.integers(2**62)), random_style(train_rng)))
    for i in range(n_test):
        stem = f"{i:06d}.png"
        lay = random_layout(test_rng, size)
        save_png(root / "testA" / stem, render_labels(lay))
        save_png(root / "testB" / stem, render_styled(lay, int(test_rng.integers(2**62)), random_style(test_rng)))
        other = _matching_layout(test_rng, size, lay)
        appearance, style = int(test_rng.integers(2**62)), random_style(test_rng)
        save_png(root / "exemplars" / stem, render_styled(other, appearance, style))
        save_png(root / "second" / stem, render_styled(lay, appearance, style))
        save_png(root / "layouts" / "testA" / stem, lay)
        save_png(root / "layouts" / "exemplars" / stem, other)
    return finish_dataset(root, meta)


def canny_condition(photo: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """``(H, W, 3)`` uint8 photo -> its Canny edges as a white-on-black ``(H, W, 3)`` uint8 picture."""
    from skimage.color import rgb2gray
    from skimage.feature import canny

    edges = canny(rgb2gray(photo), sigma=sigma)
    return np.repeat((edges * 255).astype(np.uint8)[..., None], 3, axis=2)


def make_edge_photo_dataset(root, *, size: int = 64, n_train: int = 400, n_test: int = 32, seed: int = 0) -> dict:
    """Write the real-photo edges -> photo task (module doc; needs scikit-image); returns meta."""
    from .photo_task import load_photos, random_crops

    root = Path(root)
    meta = _start(root, "sesim-exemplar-edges", _EDGE_DIRS, size, n_train, n_test, seed,
                  "Canny edge maps of crops of scikit-image's photos -> the photos; test exemplars are other "
                  "held-out crops")
    if meta["complete"]:
        return meta
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xED6E]))
    photos = load_photos()
    train = np.concatenate([random_crops(photos, "A", (n_train + 1) // 2, size, rng),
                            random_crops(photos, "B", n_train // 2, size, rng)])
    test = random_crops(photos, "T", 2 * n_test, size, rng)
    for i, img in enumerate(train):
        save_png(root / "trainA" / f"{i:06d}.png", canny_condition(img))
        save_png(root / "trainB" / f"{i:06d}.png", img)
    for i in range(n_test):
        save_png(root / "testA" / f"{i:06d}.png", canny_condition(test[i]))
        save_png(root / "testB" / f"{i:06d}.png", test[i])
        save_png(root / "exemplars" / f"{i:06d}.png", test[n_test + i])
    return finish_dataset(root, meta)


def _start(root: Path, kind: str, subdirs: tuple[str, ...], size: int, n_train: int, n_test: int, seed: int,
           description: str) -> dict:
    """:func:`~sesim.data.generated.start_dataset` with this module's parameters and counts."""
    if min(n_train, n_test) < 1:
        raise ValueError("n_train and n_test must be >= 1")
    params = {"size": int(size), "n_train": int(n_train), "n_test": int(n_test), "seed": int(seed),
              "generator_version": GENERATOR_VERSION}
    counts = {d: (n_train if d.startswith("train") else n_test) for d in subdirs}
    return start_dataset(root, kind, params, counts, description=description)
