"""Self-similarity heat maps (paper Fig. 1 and 3): one query's map drawn over its image."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..data.images import tensor_to_pil
from ..losses.spatial import LayerMaps

# A perceptually ordered dark-blue -> teal -> yellow ramp (control points, linearly interpolated).
_RAMP = np.array([[48, 18, 59], [65, 69, 171], [57, 129, 227], [30, 188, 190],
                  [88, 227, 115], [185, 238, 56], [250, 186, 57], [231, 88, 14], [122, 4, 3]], np.float64)


def colorize(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Map an ``(H, W)`` array to ``(H, W, 3)`` uint8 colours (low = dark blue, high = dark red)."""
    v = np.asarray(values, np.float64)
    lo = v.min() if vmin is None else vmin
    hi = v.max() if vmax is None else vmax
    t = np.clip((v - lo) / max(hi - lo, 1e-12), 0, 1) * (len(_RAMP) - 1)
    i = np.minimum(t.astype(int), len(_RAMP) - 2)
    frac = (t - i)[..., None]
    return np.round(_RAMP[i] * (1 - frac) + _RAMP[i + 1] * frac).astype(np.uint8)


def query_map(layer: LayerMaps, query: int, image_index: int = 0) -> np.ndarray:
    """The ``height x width`` picture of one query's self-similarity (NaN outside its window)."""
    full = torch.full((layer.height * layer.width,), float("nan"))
    values = layer.maps[image_index, query].detach().float().cpu()
    positions = torch.arange(layer.height * layer.width) if layer.window is None else layer.window[query].cpu()
    full[positions] = values
    return full.view(layer.height, layer.width).numpy()


def overlay(image: torch.Tensor, heat: np.ndarray, *, alpha: float = 0.6, size: int | None = None,
            mark: tuple[int, int] | None = None, vmin: float | None = None, vmax: float | None = None) -> Image.Image:
    """Blend a heat map over an image.

    Args:
        image: ``(C, H, W)`` in [-1, 1].
        heat: ``(h, w)`` values (NaN = not part of the map; shown as the plain image).
        size: output side in pixels (default: the image's).
        mark: ``(row, col)`` of the query in ``heat`` coordinates, drawn as a white ring.
    """
    base = tensor_to_pil(image).convert("RGB")
    out_w, out_h = (size, round(size * base.height / base.width)) if size else base.size
    base = base.resize((out_w, out_h), Image.BICUBIC)
    finite = np.isfinite(heat)
    lo = np.nanmin(heat) if vmin is None else vmin
    hi = np.nanmax(heat) if vmax is None else vmax
    colours = colorize(np.where(finite, heat, lo), lo, hi)
    heat_t = torch.from_numpy(colours).permute(2, 0, 1)[None].float()
    mask_t = torch.from_numpy(finite.astype(np.float32))[None, None]
    heat_up = F.interpolate(heat_t, size=(out_h, out_w), mode="bilinear", align_corners=False)[0]
    mask_up = F.interpolate(mask_t, size=(out_h, out_w), mode="nearest")[0, 0]
    base_np = np.asarray(base, np.float64)
    a = alpha * mask_up.numpy()[..., None]
    blended = base_np * (1 - a) + heat_up.permute(1, 2, 0).numpy() * a
    result = Image.fromarray(np.clip(np.round(blended), 0, 255).astype(np.uint8))
    if mark is not None:
        r, c = mark
        sy, sx = out_h / heat.shape[0], out_w / heat.shape[1]
        cy, cx, rad = (r + 0.5) * sy, (c + 0.5) * sx, max(3.0, 0.6 * max(sx, sy))
        ImageDraw.Draw(result).ellipse((cx - rad, cy - rad, cx + rad, cy + rad), outline=(255, 255, 255), width=2)
    return result
