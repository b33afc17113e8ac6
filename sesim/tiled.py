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
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from .memory import WHOLE_IMAGE_MARGIN, available_memory, current_rss, format_size, whole_image_bytes

__all__ = ["tile_starts", "axis_weights", "translate_tiled", "plan_inference", "InferencePlan", "DEFAULT_TILE"]

#: largest tile side of the blended tiler under ``--tile auto``
DEFAULT_TILE = 512


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
    def ramp(distance: Tensor, overlap: int) -> Tensor:  # by the distance to a shared edge
        return ((distance - margin + 1) / max(overlap - 2 * margin, 1)).clamp(0, 1)

    out = []
    for k, s in enumerate(starts):
        w = torch.ones(min(tile, length))
        pos = torch.arange(w.numel(), dtype=torch.float32)
        if k > 0:  # shares its left edge with the previous tile
            w = torch.minimum(w, ramp(pos, starts[k - 1] + tile - s))
        if k < len(starts) - 1:  # shares its right edge with the next tile
            w = torch.minimum(w, ramp(w.numel() - 1 - pos, s + tile - starts[k + 1]))
        out.append(w)
    return out


@torch.inference_mode()
def translate_tiled(generator: nn.Module, x: Tensor, *, tile: int, overlap: int | None = None,
                    margin: int | None = None, stride: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> Tensor:
    """Translate ``(N, C, H, W)`` (H, W multiples of the stride) tile by tile; returns the same shape.

    Args:
        tile: tile side in pixels (rounded down to a multiple of ``stride``).
        margin: pixels ignored at shared tile edges; default the generator's ``receptive_radius``.
        overlap: tile overlap; default ``2 * margin + 2 * stride`` rounded up to the stride.
        stride: default the generator's ``stride`` attribute (or 1).
        progress: called as ``progress(done, total)`` after each tile.

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
    weights = torch.zeros(1, 1, h, w, device=x.device)
    done, total = 0, len(ys) * len(xs)
    for y0, wy_k in zip(ys, wy):
        for x0, wx_k in zip(xs, wx):
            y1, x1 = y0 + wy_k.numel(), x0 + wx_k.numel()
            pred = generator(x[..., y0:y1, x0:x1]).float()
            if out is None:
                out = torch.zeros(x.shape[0], pred.shape[1], h, w, device=x.device)
            weight = (wy_k[:, None] * wx_k[None, :]).to(x.device)
            out[..., y0:y1, x0:x1] += pred * weight
            weights[..., y0:y1, x0:x1] += weight
            done += 1
            if progress is not None:
                progress(done, total)
    return out / weights.clamp_min(1e-12)


@dataclass
class InferencePlan:
    """How one batch is translated.

    ``kind``: ``"whole"`` (one forward pass), ``"blend"`` (overlapping tiles blended, for generators
    without image-wide statistics) or ``"layerwise"`` (exact tiling of normalised generators,
    :mod:`sesim.layerwise`). ``whole_bytes``: estimated peak of whole-image inference beyond the
    input; ``tiled_bytes``: that of the tiled path (None for whole); ``limit``: the memory limit
    of the whole process (``--max-memory``, or a share of the available memory);
    ``tile``: tile side in pixels (None: the largest that fits); ``spill``: layerwise activations in
    temporary files."""

    kind: str
    whole_bytes: int
    limit: int
    tile: int | None = None
    tiled_bytes: int | None = None
    spill: bool = False
    work_bytes: int | None = None  # what the tiled path may use: the limit minus what is in use

    def describe(self, height: int, width: int) -> str:
        base = f"{width}x{height} px: whole-image inference needs about {format_size(self.whole_bytes)}"
        if self.kind == "whole":
            return f"{base} (limit {format_size(self.limit)})"
        how = "exact layer-by-layer tiles" if self.kind == "layerwise" else "blended tiles"
        where = ", activations in temporary files" if self.spill else ""
        return (f"{base}, more than the {format_size(self.limit)} limit: translating in {how} "
                f"(about {format_size(self.tiled_bytes or 0)}{where})")


#: share of the available memory ``--max-memory auto`` allows
AUTO_MEMORY_SHARE = 0.7


def plan_inference(generator: nn.Module, shape: tuple[int, int, int, int], *, tile: int | str | None = "auto",
                   max_memory: int | None = None, style: Tensor | None = None) -> InferencePlan:
    """Choose whole-image or tiled inference for an input of ``shape`` ``(N, C, H, W)`` (padded to
    the stride).

    ``tile``: ``"auto"`` tiles when the estimated whole-image peak exceeds the memory limit;
    ``None``/``"none"``/``"off"``/0 never tiles; a side in pixels always tiles (tiles of at most
    that side). ``max_memory``: the limit in bytes for the whole process (default: what it uses
    now plus :data:`AUTO_MEMORY_SHARE` of the available memory); what the process holds already
    and the output image are subtracted before planning.

    Raises:
        ValueError: a bad ``tile``; whole-image inference asked for (``tile="none"``) that cannot
            fit in the available memory; or a generator that cannot be tiled and does not fit.
    """
    from .layerwise import NotTileableError, plan_memory, program_for

    n, c, h, w = shape
    kwargs = {} if style is None else {"style": style}
    whole = int(WHOLE_IMAGE_MARGIN * whole_image_bytes(generator, shape, **kwargs))
    # the limit covers the whole process: what it holds already and the output image are not free
    in_use = current_rss()
    limit = max_memory if max_memory is not None else int(AUTO_MEMORY_SHARE * available_memory()) + in_use
    budget = max(limit - in_use - n * c * h * w * 4, 0)
    side = _tile_side(tile)
    if side == 0:  # never tile
        if whole > available_memory():
            raise ValueError(f"whole-image inference of {w}x{h} px needs about {format_size(whole)}, more than the "
                             f"{format_size(available_memory())} this machine has available; use --tile auto")
        return InferencePlan("whole", whole, limit)
    if side is None and whole <= budget:
        return InferencePlan("whole", whole, limit)
    if getattr(generator, "receptive_radius", None) is not None:
        stride = int(getattr(generator, "stride", 1))
        per_px = max(whole / max(n * h * w, 1), 1.0)
        if side:
            chosen = side
        else:  # the largest tile that fits, at most DEFAULT_TILE, and larger than the overlap
            fit = int(math.sqrt(max(budget, 1) / (per_px * n))) // stride * stride
            overlap = 2 * generator.receptive_radius + 2 * stride
            chosen = max(min(DEFAULT_TILE, fit), (overlap // stride + 2) * stride)
        accumulators = (c * n + 1) * h * w * 4  # the blended output and its weights
        return InferencePlan("blend", whole, limit, chosen, int(per_px * n * chosen * chosen) + accumulators)
    try:
        program = program_for(generator, style=style, batch=n)
    except NotTileableError as err:
        if side is None:
            raise ValueError(f"{w}x{h} px needs about {format_size(whole)}, more than the {format_size(limit)} "
                             f"limit, and this generator cannot be tiled ({err})") from None
        raise ValueError(f"--tile: {err}") from None
    mem = plan_memory(program, shape, budget, side)
    if mem.tile_bytes > budget:
        raise ValueError(f"{w}x{h} px cannot be translated within {format_size(limit)}: even the smallest tiles "
                         f"need about {format_size(mem.tile_bytes)} more than the "
                         f"{format_size(in_use)} in use; raise --max-memory")
    return InferencePlan("layerwise", whole, limit, side, mem.ram_bytes, mem.spill, budget)


def _tile_side(tile: int | str | None) -> int | None:
    """``tile`` -> 0 (never), None (auto) or a side > 0."""
    if tile is None:
        return 0
    if isinstance(tile, str):
        t = tile.strip().lower()
        if t in ("none", "off", "0"):
            return 0
        if t == "auto":
            return None
        try:
            tile = int(t)
        except ValueError:
            raise ValueError(f"--tile expects auto, none or a tile side in pixels, got {tile!r}") from None
    if tile < 0:
        raise ValueError(f"--tile must be auto, none or a positive side in pixels, got {tile}")
    return int(tile)
