"""Real photos and a layout-keeping restyle: does a structure loss see layout, not appearance?

Used by ``tests/test_real_photos.py`` (the pretrained default must pass, random features must not)
and by ``bench/backbones.py`` (every backbone / layer / normalisation choice, more crops).

Protocol. Square crops of scikit-image's bundled photographs (real photos that install with the
package, no download) at their native resolution, at two crop sizes. Each crop ``x_i`` is redrawn
with a layout-keeping restyle ``s(x_i)``:

- :func:`pencil_sketch`: a *tinted pencil sketch* -- luminance only, a colour-dodge line drawing (the
  photo divided by its blurred negative), dark blue ink on cream paper. It keeps every edge in place
  and changes colour, texture and shading completely.
- :func:`charcoal_sketch`: the same drawing rubbed soft (Gaussian blur, sigma 2 px): the layout is
  still all there, but the crisp edges that untrained filters respond to are gone.

For a loss ``d(source, candidate)``:

- ``auc_other``: over all ordered pairs ``i != j`` of crops of one size, how often
  ``d(x_i, s(x_i)) < d(x_i, s(x_j))`` (own sketch vs another photo's sketch);
- ``auc_shift``: over all ``i``, how often ``d(x_i, s(x_i)) < d(x_i, s(x_i shifted))``, the sketch of
  the crop taken 1/16 of its width further right in the same photo (same content, moved layout).

Ties count one half. 1.0 = the loss always prefers the same layout; 0.5 = chance. Where every
choice reaches 1.0, the *margins* still rank them: ``margin_other`` / ``margin_shift`` = the median
over sources of ``(d_candidate - d_same) / d_same`` (how much larger the wrong candidate's distance
is, relative to the right one's; 0 = no separation). The random
query locations of the loss are seeded per source, so the three candidates of a source are compared
on the same queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")


def load_photo(name: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 photo from ``skimage.data`` (``motorcycle``: the left stereo view)."""
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float in [-1, 1]."""
    return torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1.0


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(x.shape[1], 1, 1, -1), groups=x.shape[1])
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(x.shape[1], 1, -1, 1), groups=x.shape[1])


PAPER = (0.95, 0.90, 0.78)  # cream
INK = (0.10, 0.16, 0.42)    # dark blue


def _line_drawing(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` in [-1, 1] -> ``(N, 1, H, W)`` in [0, 1] (0 = ink): luminance divided by its
    blurred negative (a colour dodge), strokes darkened."""
    rgb = (images + 1) / 2
    gray = 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]
    blurred_negative = _gaussian_blur(1 - gray, sigma=max(1.0, images.shape[-1] / 64))
    return (gray / (1 - blurred_negative).clamp_min(1e-3)).clamp(0, 1) ** 3


def _tint(drawing: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` in [0, 1] (0 = ink) -> dark blue ink on cream paper, ``(N, 3, H, W)`` in [-1, 1]."""
    paper = torch.tensor(PAPER).view(1, 3, 1, 1)
    ink = torch.tensor(INK).view(1, 3, 1, 1)
    return (ink + (paper - ink) * drawing) * 2 - 1


def pencil_sketch(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` in [-1, 1] -> tinted pencil sketches, same shape and range."""
    return _tint(_line_drawing(images))


def charcoal_sketch(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` in [-1, 1] -> soft tinted charcoal drawings (the pencil sketch, blurred)."""
    return _tint(_gaussian_blur(_line_drawing(images), sigma=2.0))


RESTYLES = {"pencil": pencil_sketch, "charcoal": charcoal_sketch}


@dataclass
class CropSet:
    """Crops of one size: ``x`` ``(N, 3, S, S)``, ``shifted`` (the same boxes moved right by S/16), and
    the photo each came from."""

    size: int
    x: torch.Tensor
    shifted: torch.Tensor
    photo: list[str]


def crop_sets(sizes=(128, 256), per_photo: int = 3, photos=PHOTOS, seed: int = 0) -> list[CropSet]:
    """``per_photo`` random square crops of each photo at each size (native resolution, no resizing)."""
    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        shift = size // 16
        xs, shifted, names = [], [], []
        for name in photos:
            img = load_photo(name)
            h, w = img.shape[:2]
            for _ in range(per_photo):
                top = int(rng.integers(0, h - size + 1))
                left = int(rng.integers(0, w - size - shift + 1))
                xs.append(to_tensor(img[top:top + size, left:left + size]))
                shifted.append(to_tensor(img[top:top + size, left + shift:left + shift + size]))
                names.append(name)
        out.append(CropSet(size, torch.stack(xs), torch.stack(shifted), names))
    return out


def _auc(better: torch.Tensor, worse: torch.Tensor) -> float:
    """Fraction of pairs with ``better < worse`` (ties count one half)."""
    return float(((better < worse).float() + 0.5 * (better == worse).float()).mean())


def per_image_distance(loss):
    """``(x, y) -> (N,)`` per-image distances of a :class:`~sesim.SpatialCorrelativeLoss` (mean over
    queries and layers, the same query locations for the whole batch)."""
    def distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = loss(x, y, return_details=True)
        return torch.stack([d.mean(dim=1) for d in out.per_query.values()]).mean(dim=0)
    return distance


@torch.no_grad()
def layout_aucs(distance, sets: list[CropSet], restyle=pencil_sketch) -> dict[str, float]:
    """``auc_other`` and ``auc_shift`` (see module doc) of ``distance(sources, candidates) -> (N,)``
    (e.g. :func:`per_image_distance`) over all crop sets, and the mean same / other distances."""
    same_all, other_all, shift_all = [], [], []
    for cs in sets:
        sketches, sketches_shifted = restyle(cs.x), restyle(cs.shifted)
        n = len(cs.x)
        for i in range(n):
            torch.manual_seed(1000 + i)  # reproducible query locations, shared by all candidates of source i
            candidates = torch.cat([sketches, sketches_shifted[i:i + 1]])
            d = distance(cs.x[i:i + 1].expand(n + 1, -1, -1, -1), candidates)
            others = torch.cat([d[:i], d[i + 1:n]])
            same_all.append(d[i].expand(n - 1))
            other_all.append(others)
            shift_all.append(d[[i, n]])
    same_vs_shift = torch.stack(shift_all)
    same, other = torch.cat(same_all), torch.cat(other_all)
    return {
        "auc_other": _auc(same, other),
        "auc_shift": _auc(same_vs_shift[:, 0], same_vs_shift[:, 1]),
        "margin_other": float(((other - same) / same.clamp_min(1e-12)).median()),
        "margin_shift": float(((same_vs_shift[:, 1] - same_vs_shift[:, 0]) / same_vs_shift[:, 0].clamp_min(1e-12))
                              .median()),
        "mean_same": float(same_vs_shift[:, 0].mean()),
        "mean_other": float(other.mean()),
    }
