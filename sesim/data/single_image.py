"""Single-image translation data (``--mode single-image``): random zoomed patches of one image pair.

Each stream position yields one patch of the source image and one of the target image, drawn
independently (the pair is unpaired). A patch is sampled as in the public SinCUT code's
``zoom_and_patch``: pick a zoom factor ``z`` (log-uniform in ``[zoom_min, zoom_max]``, the same
zoom for every patch of a minibatch, as SinCUT does), i.e. the image is conceptually resized by
``z``, then cut a ``size x size`` patch at a uniformly random position of the resized image. It is
computed without resizing the whole image: the equivalent box of side ``size / z`` is cut from the
original and resized to ``size``. The zoom is clipped so the box always fits in the image (an image
smaller than ``size`` is upsampled). Optional random horizontal flips.

Like :class:`sesim.data.unpaired.UnpairedImageDataset`, every sample is a pure function of
``(seed, position)``, so resumed runs see the same data as uninterrupted ones.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .images import IMAGE_EXTENSIONS, list_images, load_image, pil_to_tensor

__all__ = ["SingleImageError", "PatchBox", "resolve_single_image", "sample_box", "SingleImagePairDataset",
           "single_image_dataset", "single_image_samples"]

#: stream positions per "epoch" (the length the sampler permutes; only the position matters)
_VIRTUAL_LENGTH = 100_000


class SingleImageError(ValueError):
    """The single-image mode did not get exactly one readable image per domain."""


def resolve_single_image(path: str | Path | None, domain: str) -> Path:
    """An image file, or a folder holding exactly one image -> that image's path."""
    flag = f"--dir-{domain.lower()}"
    if path is None:
        raise SingleImageError(f"--mode single-image needs {flag} SOURCE.png/TARGET.png (one image per domain)")
    p = Path(path)
    if not p.exists():
        raise SingleImageError(f"domain {domain} image {p} does not exist ({flag})")
    if p.is_file():
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise SingleImageError(f"domain {domain}: {p} does not have an image extension "
                                   f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return p
    files = list_images(p)
    if len(files) != 1:
        raise SingleImageError(f"--mode single-image trains on exactly one image per domain, but folder {p} "
                               f"({flag}) holds {len(files)} images; pass the image file itself")
    return files[0]


@dataclass(frozen=True)
class PatchBox:
    """A square crop ``[top, top + side) x [left, left + side)`` of the original image."""

    top: int
    left: int
    side: int


def sample_box(height: int, width: int, size: int, zoom: float, rng: random.Random) -> PatchBox:
    """The box of the original image that becomes a ``size``-pixel patch at zoom ``zoom``.

    ``side = round(size / zoom)``, clipped to ``[1, min(height, width)]``; the position is uniform
    over all boxes inside the image. Always ``0 <= top``, ``top + side <= height`` (same for x).
    """
    side = int(min(max(1, round(size / zoom)), height, width))
    top = rng.randint(0, height - side)
    left = rng.randint(0, width - side)
    return PatchBox(top, left, side)


def _resize(t: torch.Tensor, size: tuple[int, int], antialias: bool = False) -> torch.Tensor:
    """``(C, H, W)`` in [-1, 1] -> ``(C, *size)`` in [-1, 1], bilinear."""
    return F.interpolate(t[None], size=size, mode="bilinear", align_corners=False, antialias=antialias)[0].clamp(-1, 1)


def _resize_long_side(t: torch.Tensor, long_side: int | None) -> torch.Tensor:
    if long_side is None or max(t.shape[-2:]) <= long_side:
        return t
    scale = long_side / max(t.shape[-2:])
    return _resize(t, (max(1, round(t.shape[-2] * scale)), max(1, round(t.shape[-1] * scale))), antialias=True)


class SingleImagePairDataset(Dataset):
    """Random zoomed patches of one source and one target image.

    Args:
        image_a, image_b: the two image files.
        size: patch side in pixels.
        zoom_min, zoom_max: zoom range relative to the (loaded) image; ``zoom_max = 1`` means
            patches at full resolution, ``zoom_min = 0.25`` patches covering 4x as many pixels.
        batch_size: patches per minibatch; consecutive positions ``[k * batch_size, (k+1) * batch_size)``
            share one zoom (per domain).
        load_size: if set, images are first downscaled so their long side is at most this.
        flip: random horizontal flips.

    ``dataset[position]`` (or ``dataset[(position, index)]``, index ignored) returns
    ``{"A": (C, size, size), "B": (C, size, size), "A_path": str, "B_path": str}`` in [-1, 1].
    """

    def __init__(self, image_a: str | Path, image_b: str | Path, *, size: int, zoom_min: float = 0.25,
                 zoom_max: float = 1.0, batch_size: int = 1, load_size: int | None = None, flip: bool = True,
                 channels: int = 3, seed: int = 0) -> None:
        if size < 1:
            raise ValueError(f"patch size must be >= 1, got {size}")
        if not 0 < zoom_min <= zoom_max:
            raise ValueError(f"need 0 < zoom_min <= zoom_max, got {zoom_min}, {zoom_max}")
        self.paths = (Path(image_a), Path(image_b))
        self.images = tuple(_resize_long_side(pil_to_tensor(load_image(p, channels)), load_size) for p in self.paths)
        self.size, self.zoom_min, self.zoom_max = size, zoom_min, zoom_max
        self.batch_size, self.flip, self.seed = max(1, batch_size), flip, seed

    def __len__(self) -> int:
        return _VIRTUAL_LENGTH

    def _rng(self, *key: int) -> random.Random:
        return random.Random(int(np.random.SeedSequence([0x51C7, self.seed & (2**63 - 1), *key]).generate_state(1)[0]))

    def zoom(self, position: int, domain: int) -> float:
        """The zoom of ``position``'s minibatch for domain 0 (A) or 1 (B), log-uniform in the range."""
        u = self._rng(1, domain, position // self.batch_size).random()
        return math.exp(math.log(self.zoom_min) + u * (math.log(self.zoom_max) - math.log(self.zoom_min)))

    def patch(self, position: int, domain: int) -> tuple[torch.Tensor, PatchBox]:
        img = self.images[domain]
        rng = self._rng(2, domain, position)
        box = sample_box(img.shape[-2], img.shape[-1], self.size, self.zoom(position, domain), rng)
        crop = img[:, box.top:box.top + box.side, box.left:box.left + box.side]
        if box.side != self.size:
            crop = _resize(crop, (self.size, self.size), antialias=box.side > self.size)
        if self.flip and rng.random() < 0.5:
            crop = crop.flip(-1)
        return crop.contiguous(), box

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        position = int(key[0]) if isinstance(key, tuple) else int(key)
        if position < 0:
            raise IndexError(f"position must be >= 0, got {position}")
        return {"A": self.patch(position, 0)[0], "B": self.patch(position, 1)[0],
                "A_path": str(self.paths[0]), "B_path": str(self.paths[1])}


def _image_pair(cfg) -> tuple[Path, Path]:
    a = resolve_single_image(cfg.data.dir_a, "A")
    b = resolve_single_image(cfg.data.dir_b, "B")
    return (b, a) if cfg.data.direction == "BtoA" else (a, b)


def single_image_dataset(cfg) -> SingleImagePairDataset:
    """The training dataset of a ``--mode single-image`` run (``cfg`` a :class:`sesim.config.TrainConfig`)."""
    a, b = _image_pair(cfg)
    d, si = cfg.data, cfg.single_image
    return SingleImagePairDataset(a, b, size=d.size, zoom_min=si.zoom_min, zoom_max=si.zoom_max,
                                  batch_size=cfg.run.batch_size, load_size=d.load_size, flip=d.flip,
                                  channels=d.channels, seed=cfg.run.seed)


def single_image_samples(cfg, *, long_side: int = 256) -> list[torch.Tensor]:
    """The source image, downscaled (long side <= ``long_side``, sides multiples of the generator stride),
    for sample grids."""
    a, _ = _image_pair(cfg)
    stride = 2 ** cfg.generator.n_downsampling
    t = _resize_long_side(pil_to_tensor(load_image(a, cfg.data.channels)), long_side)
    h, w = max(stride, t.shape[-2] // stride * stride), max(stride, t.shape[-1] // stride * stride)
    return [_resize(t, (h, w))]
