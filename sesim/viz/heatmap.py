"""Self-similarity heat maps (paper Fig. 1 and 3): one query's map drawn over its image."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..data.images import tensor_to_pil
from ..losses.spatial import LayerMaps, SpatialCorrelativeLoss

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


def panel(image: torch.Tensor, size: int | None, mark: tuple[int, int] | None = None) -> Image.Image:
    """``(C, H, W)`` image in [-1, 1] as an RGB picture ``size`` pixels wide (bicubic; ``None``: the
    image's own size); ``mark = (x, y)`` in image pixels draws a white ring with a black outline there."""
    out = tensor_to_pil(image).convert("RGB")
    if size:
        out = out.resize((size, round(size * out.height / out.width)), Image.BICUBIC)
    if mark is not None:
        s = out.width / image.shape[-1]
        cx, cy, rad = (mark[0] + 0.5) * s, (mark[1] + 0.5) * s, max(4.0, 3 * s)
        draw = ImageDraw.Draw(out)
        draw.ellipse((cx - rad - 1, cy - rad - 1, cx + rad + 1, cy + rad + 1), outline=(0, 0, 0), width=1)
        draw.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), outline=(255, 255, 255), width=2)
    return out


def overlay(image: torch.Tensor, heat: np.ndarray, *, alpha: float = 0.6, size: int | None = None,
            mark: tuple[int, int] | None = None, vmin: float | None = None, vmax: float | None = None) -> Image.Image:
    """Blend a heat map over an image.

    Args:
        image: ``(C, H, W)`` in [-1, 1].
        heat: ``(h, w)`` values (NaN = not part of the map; shown as the plain image).
        size: output side in pixels (default: the image's).
        mark: ``(row, col)`` of the query in ``heat`` coordinates, drawn as a white ring.
    """
    base = panel(image, size)
    out_w, out_h = base.size
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


def feature_position(point: tuple[int, int], image_hw: tuple[int, int], feature_hw: tuple[int, int]) -> tuple[int, int]:
    """Feature-map ``(row, col)`` covering image pixel ``point = (x, y)`` (x = column, y = row).

    Raises ``ValueError`` if the point lies outside the ``image_hw = (H, W)`` image.
    """
    x, y = point
    (h_img, w_img), (h, w) = image_hw, feature_hw
    if not (0 <= x < w_img and 0 <= y < h_img):
        raise ValueError(f"point x={x}, y={y} lies outside the {w_img}x{h_img} image")
    return min(h - 1, y * h // h_img), min(w - 1, x * w // w_img)


def pair_maps(structure: SpatialCorrelativeLoss, source: torch.Tensor, translation: torch.Tensor, layer: str,
              position: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Self-similarity maps of one query, for a source and its translation.

    Args:
        structure: the loss whose features (VGG16, or its LSeSim heads) and window size are used.
        source, translation: ``(C, H, W)`` images in [-1, 1], same shape.
        layer: one of ``structure.layers``.
        position: ``(row, col)`` of the query in that layer's feature map.

    Returns:
        Two ``(h, w)`` arrays (``h x w`` = the layer's feature map), NaN outside the query's window.
    """
    if source.shape != translation.shape:
        raise ValueError(f"source and translation shapes differ: {tuple(source.shape)} vs {tuple(translation.shape)}")
    batch = torch.stack([source, translation])
    h, w = structure.structure_features(batch[:1])[layer].shape[-2:]
    r, c = position
    maps = structure.maps(batch, {layer: torch.tensor([r * w + c])})[layer]
    return query_map(maps, 0, 0), query_map(maps, 0, 1)


def heatmap_figure(
    structure: SpatialCorrelativeLoss | Mapping[str, SpatialCorrelativeLoss],
    source: torch.Tensor,
    translation: torch.Tensor,
    points: Sequence[tuple[int, int]],
    layers: Sequence[str] | None = None,
    *,
    side: int = 160,
    title: str | None = None,
) -> Image.Image:
    """Paper Fig. 1/3: one row per query point (and per structure loss); columns: source,
    translation, then for every layer the query's self-similarity map over the source and over the
    translation (same colour scale within a pair; dark blue = low, dark red = high; white ring =
    the query). Captions give the pair's value range and the cosine between the two maps.

    Args:
        structure: the loss whose maps are drawn, or ``{name: loss}`` to draw several (e.g.
            ``{"LSeSim": run_loss, "FSeSim": same_features_without_heads}``), one row each per point.
        source, translation: ``(C, H, W)`` in [-1, 1], same shape.
        points: query points ``(x, y)`` in source pixels.
        layers: layers every loss uses (default: the first loss's layers).
        side: width of every panel in pixels.
    """
    from .grid import figure_grid

    variants = dict(structure) if isinstance(structure, Mapping) else {"": structure}
    first = next(iter(variants.values()))
    layers = tuple(layers or first.layers)
    for loss in variants.values():
        unknown = [name for name in layers if name not in loss.layers]
        if unknown:
            raise ValueError(f"layer(s) {unknown} not in the structure loss's layers {list(loss.layers)}")
    if not points:
        raise ValueError("give at least one query point")
    image_hw = tuple(source.shape[-2:])
    rows, captions = [], []
    for x, y in points:
        for name, loss in variants.items():
            feats = loss.structure_features(source[None])
            row = [panel(source, side, (x, y)), panel(translation, side, (x, y))]
            cap = [f"query x={x}, y={y}", f"{name} maps:" if name else ""]
            for layer in layers:
                pos = feature_position((x, y), image_hw, tuple(feats[layer].shape[-2:]))
                hs, ht = pair_maps(loss, source, translation, layer, pos)
                lo, hi = float(np.nanmin([hs, ht])), float(np.nanmax([hs, ht]))
                row += [overlay(source, hs, size=side, mark=pos, vmin=lo, vmax=hi),
                        overlay(translation, ht, size=side, mark=pos, vmin=lo, vmax=hi)]
                cap += [f"range {lo:.2f}..{hi:.2f}", f"cos(maps) = {_nan_cosine(hs, ht):.2f}"]
            rows.append(row)
            captions.append(cap)
    titles = ["source", "translation"] + [f"{layer}: {side_name}" for layer in layers
                                          for side_name in ("source map", "translation map")]
    return figure_grid(rows, column_titles=titles, captions=captions, title=title)


def _nan_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two maps over their finite entries (what FSeSim's distance is 1 minus)."""
    keep = np.isfinite(a) & np.isfinite(b)
    u, v = a[keep].astype(np.float64), b[keep].astype(np.float64)
    return float(u @ v / max(np.linalg.norm(u) * np.linalg.norm(v), 1e-12))
