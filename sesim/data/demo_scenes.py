"""Built-in synthetic demo task: flat label maps (domain A) -> photo-like scenes (domain B).

Every scene is a small class-id *layout* (sky, grass, water, buildings, sometimes a sun).
Domain A draws a layout with flat, deliberately "wrong" colours (sky in magenta, grass in
red, ...); domain B renders a layout as a shaded, textured, photo-like picture.  Turning A
into B therefore needs a large appearance change, while the layout (the structure) must
be kept exactly.  The photo rendering is mostly a local function of the class (colour +
texture + smooth shading), so a small ResNet generator can learn it in a few thousand
steps on a CPU.

The training sets are unpaired: ``trainA`` and ``trainB`` show independent layouts.  The
true layouts of ``trainB``/``testA``/``testB`` are stored too, so that
:mod:`sesim.metrics.layout` can score whether a translation kept the layout of its input.

Everything is numpy, deterministic given a seed, and needs no downloads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .generated import finish_dataset, save_png, start_dataset

__all__ = [
    "CLASSES",
    "LABEL_PALETTE",
    "SKY",
    "GRASS",
    "WATER",
    "BUILDING",
    "SUN",
    "random_layout",
    "render_labels",
    "decode_labels",
    "render_photo",
    "make_demo_dataset",
    "load_layouts",
    "load_rgb_folder",
    "DEMO_DESCRIPTION",
]

CLASSES = ("sky", "grass", "water", "building", "sun")
SKY, GRASS, WATER, BUILDING, SUN = range(len(CLASSES))

# Domain-A colours.  Each class is drawn in a flat colour far from its own photo look
# (and, where possible, close to the look of a *different* class), so a do-nothing
# "translator" neither looks like a photo nor gets the classes right.
LABEL_PALETTE = np.array(
    [
        [170, 40, 170],  # sky       -> magenta   (photo: blue gradient)
        [215, 45, 40],  # grass     -> red       (photo: textured green)
        [240, 135, 35],  # water     -> orange    (photo: dark blue ripples)
        [40, 190, 90],  # building  -> green     (photo: grey/beige walls + windows)
        [30, 30, 140],  # sun       -> dark blue (photo: bright yellow-white disk)
    ],
    dtype=np.uint8,
)

DEMO_DESCRIPTION = (
    "Synthetic labels->photo scenes: flat mis-coloured class maps (A) to textured, shaded "
    "photo-like renderings (B) of independent layouts (unpaired)."
)

# Bumped whenever layouts or renderings change, so stale cached datasets are rebuilt.
GENERATOR_VERSION = 1



# ----------------------------------------------------------------------------- helpers
def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled random grid: smooth noise in about [-1, 1], shape (size, size)."""
    grid = rng.uniform(-1.0, 1.0, size=(cells + 1, cells + 1))
    t = (np.arange(size) + 0.5) * (cells / size)
    i0 = np.clip(np.floor(t).astype(np.int64), 0, cells - 1)
    f = t - i0
    f = f * f * (3.0 - 2.0 * f)  # smoothstep
    rows = grid[i0] * (1.0 - f)[:, None] + grid[i0 + 1] * f[:, None]  # (size, cells+1)
    out = rows[:, i0] * (1.0 - f)[None, :] + rows[:, i0 + 1] * f[None, :]
    return out


def _wave(rng: np.random.Generator, x: np.ndarray, size: int, amp: float, nterms: int = 2) -> np.ndarray:
    """A random smooth 1-D curve (sum of a few sines) with total amplitude about ``amp``."""
    out = np.zeros_like(x, dtype=np.float64)
    weights = rng.uniform(0.3, 1.0, size=nterms)
    weights /= weights.sum()
    for k in range(nterms):
        freq = rng.uniform(0.5, 2.0) * (k + 1)
        phase = rng.uniform(0, 2 * np.pi)
        out += weights[k] * np.sin(2 * np.pi * freq * x / size + phase)
    return amp * out


# ----------------------------------------------------------------------------- layouts
def random_layout(rng: np.random.Generator, size: int) -> np.ndarray:
    """Sample one scene layout: a ``(size, size)`` uint8 map of class ids (see ``CLASSES``).

    A slightly wavy horizon at a random height with sky above; the ground below is split
    into grass and water by a random smooth curve (lake in front, river band, side shore
    or pond); 1-3 buildings stand on the horizon (some with a triangular roof); about
    half of the scenes have a sun disk in the sky.  Always contains sky, grass and a
    building.
    """
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    s = float(size)
    x = np.arange(size, dtype=np.float64)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)

    # Horizon: random height, gentle waves.
    h0 = rng.uniform(0.28, 0.68) * s
    horizon = h0 + _wave(rng, x, size, amp=rng.uniform(0.01, 0.05) * s)
    horizon = np.clip(horizon, 0.2 * s, 0.78 * s)
    sky = yy < horizon[None, :]
    ground_depth = s - horizon  # per column

    layout = np.full((size, size), GRASS, dtype=np.uint8)

    # Water in the ground, by one of several smooth shapes.
    mode = rng.choice(["front", "river", "side", "pond", "front"])
    if mode == "front":  # lake in the foreground, shore is a wavy curve
        frac = rng.uniform(0.25, 0.7)
        shore = horizon + frac * ground_depth + _wave(rng, x, size, amp=rng.uniform(0.03, 0.12) * s)
        water = yy > shore[None, :]
    elif mode == "river":  # band crossing the image, slanted and wavy
        c = horizon + rng.uniform(0.15, 0.6) * ground_depth
        c = c + (x - s / 2) * rng.uniform(-0.35, 0.35) + _wave(rng, x, size, amp=rng.uniform(0.02, 0.08) * s)
        width = rng.uniform(0.08, 0.22) * s * (1.0 + 0.3 * np.sin(2 * np.pi * x / s * rng.uniform(0.5, 1.5)))
        water = (yy > c[None, :]) & (yy < (c + width)[None, :])
    elif mode == "side":  # shoreline running from the horizon down to the bottom edge
        x_top = rng.uniform(0.2, 0.8) * s
        x_bot = rng.uniform(0.0, 1.0) * s
        t = (yy - horizon[None, :]) / np.maximum(ground_depth[None, :], 1.0)
        line = x_top + (x_bot - x_top) * t + _wave(rng, yy[:, 0], size, amp=0.05 * s)[:, None]
        water = xx > line if rng.random() < 0.5 else xx < line
    else:  # pond: an ellipse in the ground
        cy = rng.uniform(0.45, 0.85) * s
        cx = rng.uniform(0.15, 0.85) * s
        ry = rng.uniform(0.08, 0.2) * s
        rx = rng.uniform(0.15, 0.4) * s
        wob = 1.0 + 0.15 * _smooth_noise(rng, size, 3)
        water = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < wob
    water &= ~sky
    # Keep some grass: never let water take (almost) all of the ground.
    ground = ~sky
    if water.sum() > 0.8 * ground.sum():
        water &= yy > (horizon[None, :] + 0.3 * ground_depth[None, :])
    layout[water] = WATER
    layout[sky] = SKY

    # Sun (drawn before buildings so they can occlude it).
    hmin = float(horizon.min())
    if rng.random() < 0.55:
        r = rng.uniform(0.045, 0.09) * s
        lo, hi = r + 1.0, hmin - r - 2.0
        if hi > lo:
            cy = rng.uniform(lo, hi)
            cx = rng.uniform(r, s - r)
            sun = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & sky
            layout[sun] = SUN

    # Buildings standing on the horizon.
    n_build = int(rng.integers(1, 4))
    for _ in range(n_build):
        w = rng.uniform(0.1, 0.26) * s
        x0 = rng.uniform(-0.05 * s, s - 0.6 * w)
        x1 = min(x0 + w, s)
        c0, c1 = int(max(np.floor(x0), 0)), int(np.ceil(x1))
        if c1 - c0 < 3:  # keep buildings at least 3 px wide (small images / left edge)
            c0, c1 = min(c0, size - 3), min(c0, size - 3) + 3
        base = float(horizon[c0:c1].max()) + rng.uniform(0.5, 2.5)
        height = rng.uniform(0.12, 0.42) * s
        top = max(base - height - (horizon[c0:c1].max() - horizon[c0:c1].min()), 0.06 * s)
        cols = (xx >= c0) & (xx < c1)
        body = cols & (yy >= top) & (yy < base)
        if rng.random() < 0.4:  # triangular roof
            rh = rng.uniform(0.25, 0.6) * (c1 - c0)
            xc = 0.5 * (c0 + c1 - 1)
            half = 0.5 * (c1 - c0)
            roof_y = top - rh * (1.0 - np.abs(xx - xc) / half)
            body |= cols & (yy >= roof_y) & (yy < top)
        layout[body] = BUILDING
    return layout


# ----------------------------------------------------------------------------- domain A
def render_labels(layout: np.ndarray) -> np.ndarray:
    """Domain A: the layout drawn with the flat ``LABEL_PALETTE`` colours, (H, W, 3) uint8."""
    layout = np.asarray(layout)
    return LABEL_PALETTE[layout.astype(np.int64)]


def decode_labels(images: np.ndarray) -> np.ndarray:
    """Inverse of :func:`render_labels`: (..., H, W, 3) palette images -> (..., H, W) uint8 ids.

    Raises ``ValueError`` if a pixel is not exactly one of the ``LABEL_PALETTE`` colours.
    """
    arr = np.asarray(images)
    if arr.shape[-1] != 3:
        raise ValueError(f"expected (..., H, W, 3) images, got {arr.shape}")
    key = (arr[..., 0].astype(np.int64) << 16) | (arr[..., 1].astype(np.int64) << 8) | arr[..., 2].astype(np.int64)
    pal = LABEL_PALETTE.astype(np.int64)
    pal_key = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    order = np.argsort(pal_key)
    pos = np.clip(np.searchsorted(pal_key[order], key), 0, len(pal_key) - 1)
    ids = order[pos]
    if not np.array_equal(pal_key[ids], key):
        raise ValueError("image contains colours that are not in LABEL_PALETTE")
    return ids.astype(np.uint8)


# ----------------------------------------------------------------------------- domain B
def _jitter(rng: np.random.Generator, colour, amount: float) -> np.ndarray:
    return np.asarray(colour, dtype=np.float64) * (1.0 + rng.uniform(-amount, amount, size=3))


def render_photo(layout: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Domain B: render a layout as a photo-like (H, W, 3) uint8 image.

    Per class: sky is a blue vertical gradient (lighter near the horizon) with soft
    clouds; the sun is a bright warm disk with a glow into the sky; grass is green with
    fine and blotchy noise; water is dark blue with horizontal ripples; buildings are
    grey/beige/brick walls with a grid of dark or lit windows.  Per image: random
    illumination, tint and base-colour variation, plus mild sensor noise.
    """
    lay = np.asarray(layout).astype(np.int64)
    if lay.ndim != 2:
        raise ValueError(f"layout must be 2-D, got shape {lay.shape}")
    h, w = lay.shape
    s = float(max(h, w))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3), dtype=np.float64)

    sky_m = lay == SKY
    sun_m = lay == SUN
    grass_m = lay == GRASS
    water_m = lay == WATER
    build_m = lay == BUILDING

    # Per-column horizon estimate: first non-sky/sun row that is not a building.
    upper = sky_m | sun_m | build_m
    horizon = np.where(upper.all(axis=0), h, np.argmin(upper, axis=0)).astype(np.float64)
    horizon = np.maximum(horizon, 1.0)
    hz = np.clip(float(np.median(horizon)), 1.0, h)

    # --- sky: gradient top -> horizon, soft clouds.
    top = _jitter(rng, (60, 110, 205), 0.12)
    bottom = _jitter(rng, (165, 200, 240), 0.06)
    t = np.clip(yy / hz, 0.0, 1.0)[..., None] ** rng.uniform(0.8, 1.4)
    sky = top * (1.0 - t) + bottom * t
    clouds = np.clip(_smooth_noise(rng, max(h, w), int(rng.integers(3, 6)))[:h, :w], 0.0, 1.0)
    clouds = clouds * rng.uniform(0.15, 0.5)
    sky = sky * (1.0 - clouds[..., None]) + 235.0 * clouds[..., None]
    img[sky_m] = sky[sky_m]

    # --- sun: warm disk plus glow into the surrounding sky.
    if sun_m.any():
        cy, cx = yy[sun_m].mean(), xx[sun_m].mean()
        r = max(np.sqrt(sun_m.sum() / np.pi), 1.0)
        d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        core = _jitter(rng, (255, 248, 215), 0.02)
        edge = _jitter(rng, (255, 215, 120), 0.05)
        u = np.clip(d / r, 0.0, 1.0)[..., None] ** 2
        img[sun_m] = (core * (1.0 - u) + edge * u)[sun_m]
        glow = (np.exp(-np.maximum(d - r, 0.0) / (1.2 * r)) * rng.uniform(0.35, 0.6))[..., None]
        warm = np.array([255.0, 225.0, 160.0])
        img[sky_m] = (img * (1.0 - glow) + warm * glow)[sky_m]

    # --- grass: green, fine noise + blotches, lighter in the foreground.
    if grass_m.any():
        base = _jitter(rng, (70, 135, 45), 0.15)
        depth = np.clip((yy - horizon[None, :]) / max(h - hz, 1.0), 0.0, 1.0)
        shade = 0.8 + 0.3 * depth
        blotch = 1.0 + 0.15 * _smooth_noise(rng, max(h, w), 8)[:h, :w]
        fine = rng.normal(0.0, 1.0, size=(h, w))
        grass = base * (shade * blotch)[..., None] + (fine * 16.0)[..., None] * np.array([0.6, 1.0, 0.4])
        img[grass_m] = grass[grass_m]

    # --- water: dark blue with horizontal ripples, lighter near the shore/horizon.
    if water_m.any():
        base = _jitter(rng, (30, 80, 140), 0.15)
        period = rng.uniform(2.5, 4.0)
        phase = 2 * np.pi * yy / period + 0.8 * np.sin(2 * np.pi * xx / (0.6 * s) + rng.uniform(0, 6.3))
        ripple = np.sin(phase + rng.uniform(0, 2 * np.pi))
        sparkle = np.clip(ripple, 0.0, 1.0) ** 4
        water = base[None, None, :] * (1.0 + 0.22 * ripple)[..., None]
        water = water + (sparkle * 45.0)[..., None] * np.array([0.8, 0.9, 1.0])
        water = water + rng.normal(0.0, 4.0, size=(h, w))[..., None]
        img[water_m] = water[water_m]

    # --- buildings: walls with a window grid; one wall colour per contiguous block.
    if build_m.any():
        wall_choices = np.array([[150, 150, 155], [195, 175, 135], [160, 95, 70], [120, 115, 125]], dtype=np.float64)
        cols = build_m.any(axis=0).astype(np.int8)
        starts = np.flatnonzero(np.diff(np.concatenate([[0], cols])) == 1)
        block = np.cumsum(np.diff(np.concatenate([[0], cols])) == 1) - 1  # block index per column
        colours = wall_choices[rng.integers(0, len(wall_choices), size=max(len(starts), 1))]
        colours = colours * (1.0 + rng.uniform(-0.12, 0.12, size=colours.shape))
        wall = colours[np.clip(block, 0, None)][None, :, :] * np.ones((h, 1, 1))
        side = 0.9 + 0.2 * (xx / max(w - 1, 1))  # light from the right
        wall = wall * side[..., None]
        px, py = int(rng.integers(5, 7)), int(rng.integers(5, 7))
        ox, oy = int(rng.integers(0, px)), int(rng.integers(0, py))
        win = (((xx.astype(np.int64) + ox) % px) < 3) & (((yy.astype(np.int64) + oy) % py) < 3)
        cell = ((xx.astype(np.int64) + ox) // px) * 7919 + ((yy.astype(np.int64) + oy) // py) * 104729
        lit_cells = rng.random(size=1024) < rng.uniform(0.15, 0.45)
        lit = lit_cells[cell % 1024]
        dark_c = _jitter(rng, (45, 55, 75), 0.15)
        lit_c = _jitter(rng, (235, 210, 120), 0.05)
        win_col = np.where(lit[..., None], lit_c, dark_c)
        bld = np.where(win[..., None], win_col, wall) + rng.normal(0.0, 5.0, size=(h, w))[..., None]
        img[build_m] = bld[build_m]

    # --- global illumination / tint and mild noise.
    img = img * rng.uniform(0.85, 1.12) * (1.0 + rng.normal(0.0, 0.04, size=3))
    img = img + rng.normal(0.0, 3.0, size=(h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- dataset
_SPLITS = ("trainA", "trainB", "testA", "testB")
_SUBDIRS = (*_SPLITS, "layouts/trainB", "layouts/testA", "layouts/testB")


def make_demo_dataset(root, *, size: int = 64, n_train: int = 400, n_test: int = 24, seed: int = 0) -> dict:
    """Write the unpaired labels->photo demo dataset under ``root`` and return its meta.

    Layout of ``root``::

        trainA/000000.png ...          labels of layouts L1          (n_train)
        trainB/000000.png ...          photos of independent layouts L2 (n_train)
        testA/000000.png ...           labels of held-out layouts L3 (n_test)
        testB/000000.png ...           photos of other held-out layouts L4 (n_test)
        layouts/{trainB,testA,testB}/  8-bit class-id maps, same stems
        meta.json                      classes, palette, size, seed, counts, description

    Deterministic given ``seed``.  If ``root`` already holds a complete demo dataset with
    the same parameters it is reused as is (nothing is rewritten).  A previous demo
    dataset with other parameters is replaced.  A non-empty folder that is not a demo
    dataset (no ``meta.json``) raises ``FileExistsError``.
    """
    root = Path(root)
    n_train, n_test = int(n_train), int(n_test)
    params = {"size": int(size), "n_train": n_train, "n_test": n_test, "seed": int(seed),
              "generator_version": GENERATOR_VERSION}
    if min(n_train, n_test) < 1:
        raise ValueError("n_train and n_test must be >= 1")
    counts = {sub: n_train if "train" in sub else n_test for sub in _SUBDIRS}
    meta = start_dataset(root, "sesim-demo-scenes", params, counts, classes=list(CLASSES),
                         palette=LABEL_PALETTE.tolist(), description=DEMO_DESCRIPTION)
    if meta["complete"]:
        return meta

    # Independent streams per split: L1, L2, L3, L4 never share layouts.
    ss = np.random.SeedSequence([int(seed), 0x5E51])
    for split, stream in zip(_SPLITS, ss.spawn(len(_SPLITS))):
        rng = np.random.default_rng(stream)
        for i in range(counts[split]):
            stem = f"{i:06d}.png"
            lay = random_layout(rng, params["size"])
            if split.endswith("A"):
                save_png(root / split / stem, render_labels(lay))
            else:
                save_png(root / split / stem, render_photo(lay, rng))
            if split != "trainA":
                save_png(root / "layouts" / split / stem, lay)
    return finish_dataset(root, meta)


def _sorted_pngs(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise FileNotFoundError(f"no .png files in {folder}")
    return files


def load_layouts(folder) -> np.ndarray:
    """Load the 8-bit class-id maps of a folder as an (N, H, W) uint8 array, sorted by name."""
    arrs = []
    for p in _sorted_pngs(folder):
        with Image.open(p) as im:
            a = np.asarray(im)
        if a.ndim != 2:
            raise ValueError(f"{p} is not a single-channel class-id map")
        arrs.append(a.astype(np.uint8))
    return np.stack(arrs)


def load_rgb_folder(folder) -> np.ndarray:
    """Load the PNG images of a folder as an (N, H, W, 3) uint8 RGB array, sorted by name."""
    arrs = []
    for p in _sorted_pngs(folder):
        with Image.open(p) as im:
            arrs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    return np.stack(arrs)
