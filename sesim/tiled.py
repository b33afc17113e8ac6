"""Tiled full-resolution inference: translate an image in overlapping tiles and blend them.

For generators without image-wide statistics (no instance/batch norm; see
:class:`sesim.nets.stylegan2.StyleGAN2Generator`), an output pixel depends only on the input within
``receptive_radius`` pixels. Tiles are placed at multiples of the generator's stride (so every
tile sees the same down/upsampling grid as the whole image) and overlap by ``overlap`` pixels.
Each tile's blending weight along an axis is

- 0 within ``margin`` pixels of an edge it shares with a neighbouring tile (where its output is
  corrupted by the tile border's padding),
- then a linear ramp up to 1 across the rest of the overlap,
- 1 elsewhere and at the image's own borders.

Weights are normalised by their sum. If ``margin >= receptive_radius``, every pixel is blended
only from tiles whose output there equals whole-image inference, so the result matches untiled
inference up to float rounding and has no seams. Memory is that of one tile (times the batch).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["tile_starts", "axis_weights", "translate_tiled", "DEFAULT_TILE", "AUTO_TILE_PIXELS"]

#: tile side used by ``--tile auto`` when an image is too large to translate whole
DEFAULT_TILE = 512
#: ``--tile auto`` tiles images with more pixels than this (about 1.5k x 1.5k)
AUTO_TILE_PIXELS = 1536 * 1536


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``[0, length)`` with at least ``overlap`` overlap.

    The first tile starts at 0, the last ends at ``length``; if ``tile`` and ``overlap`` and
    ``length`` are multiples of some stride, so are all starts.
    """
    if tile >= length:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    step = tile - overlap
    n = math.ceil((length - tile) / step) + 1
    starts = [i * step for i in range(n - 1)] + [length - tile]
    return sorted(set(starts))


def axis_weights(length: int, starts: list[int], tile: int, margin: int) -> list[Tensor]:
    """Per-tile 1-D blending weights (``(tile,)`` float tensors) along one axis; see the module doc."""
    out = []
    for k, s in enumerate(starts):
        w = torch.ones(min(tile, length))
        pos = torch.arange(w.numel(), dtype=torch.float32)
        if k > 0:  # shares its left edge with the previous tile
            ov = starts[k - 1] + tile - s
            w = torch.minimum(w, ((pos - margin + 1) / max(ov - 2 * margin, 1)).clamp(0, 1))
        if k < len(starts) - 1:  # shares its right edge with the next tile
            ov = s + tile - starts[k + 1]
            rev = w.numel() - 1 - pos
            w = torch.minimum(w, ((rev - margin + 1) / max(ov - 2 * margin, 1)).clamp(0, 1))
        out.append(w)
    return out


@torch.inference_mode()
def translate_tiled(generator: nn.Module, x: Tensor, *, tile: int, overlap: int | None = None,
                    margin: int | None = None, stride: int | None = None) -> Tensor:
    """Translate ``(N, C, H, W)`` (H, W multiples of the stride) tile by tile; returns the same shape.

    Args:
        tile: tile side in pixels (rounded down to a multiple of ``stride``).
        margin: pixels ignored at shared tile edges; default the generator's ``receptive_radius``.
        overlap: tile overlap; default ``2 * margin + 2 * stride`` rounded up to the stride.
        stride: default the generator's ``stride`` attribute (or 1).

    Raises:
        ValueError: the generator has no ``receptive_radius`` and ``margin`` is not given, or the
            tile is too small for the overlap.
    """
    stride = stride or getattr(generator, "stride", 1)
    if margin is None:
        margin = getattr(generator, "receptive_radius", None)
        if margin is None:
            raise ValueError("this generator does not declare a receptive_radius (it may use image-wide "
                             "normalisation statistics, which tiling would change); pass margin explicitly")
    if overlap is None:
        overlap = 2 * margin + 2 * stride
    overlap = math.ceil(overlap / stride) * stride
    tile = (tile // stride) * stride
    h, w = x.shape[-2:]
    if h % stride or w % stride:
        raise ValueError(f"image size {(h, w)} must be a multiple of the stride {stride} (pad it first)")
    if tile < max(h, w) and tile <= overlap:
        raise ValueError(f"--tile {tile} is too small: it must exceed the overlap of {overlap} px "
                         f"(twice the generator's receptive radius {margin} px plus {2 * stride})")
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    wy, wx = axis_weights(h, ys, tile, margin), axis_weights(w, xs, tile, margin)
    out = None
    total = torch.zeros(1, 1, h, w, device=x.device)
    for y0, wy_k in zip(ys, wy):
        for x0, wx_k in zip(xs, wx):
            y1, x1 = y0 + wy_k.numel(), x0 + wx_k.numel()
            pred = generator(x[..., y0:y1, x0:x1]).float()
            if out is None:
                out = torch.zeros(x.shape[0], pred.shape[1], h, w, device=x.device)
            weight = (wy_k[:, None] * wx_k[None, :]).to(x.device)
            out[..., y0:y1, x0:x1] += pred * weight
            total[..., y0:y1, x0:x1] += weight
    return out / total.clamp_min(1e-12)


def resolve_tile(tile: int | str | None, generator: object, height: int, width: int) -> int | None:
    """The tile side to use, or None for whole-image inference.

    ``tile``: ``"auto"`` (tile with :data:`DEFAULT_TILE` when the image has more than
    :data:`AUTO_TILE_PIXELS` pixels and the generator declares a ``receptive_radius``), ``None`` /
    ``"none"`` / 0 (never), or a side in pixels (needs a generator with a ``receptive_radius``:
    generators with instance normalisation compute image-wide statistics that tiling would change).
    """
    if tile is None or (isinstance(tile, str) and tile.lower() in ("none", "0", "off")):
        return None
    tileable = getattr(generator, "receptive_radius", None) is not None
    if isinstance(tile, str) and tile.lower() == "auto":
        return DEFAULT_TILE if tileable and height * width > AUTO_TILE_PIXELS else None
    try:
        side = int(tile)
    except (TypeError, ValueError):
        raise ValueError(f"--tile expects auto, none or a tile side in pixels, got {tile!r}") from None
    if side <= 0:
        return None
    if not tileable:
        raise ValueError("--tile: this run's generator uses image-wide normalisation statistics (instance norm), "
                         "so tiled output would differ from whole-image output; only --mode single-image runs "
                         "(StyleGAN2-style generator) support tiling. Use --tile none")
    return side
