"""Sample grids: rows of images pasted side by side, optional column titles."""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image, ImageDraw

from ..data.images import tensor_to_pil


def _as_rgb(img: torch.Tensor | Image.Image) -> Image.Image:
    pil = tensor_to_pil(img) if isinstance(img, torch.Tensor) else img
    return pil.convert("RGB")


def image_grid(
    rows: Sequence[Sequence[torch.Tensor | Image.Image]],
    *,
    titles: Sequence[str] | None = None,
    pad: int = 2,
    scale: int = 1,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Paste ``rows`` of images (``(C, H, W)`` tensors in [-1, 1] or PIL images) into one picture.

    Cells are as large as the largest image; ``scale`` enlarges every image (nearest neighbour,
    so small pictures stay crisp); ``titles`` label the columns.
    """
    cells = [[_as_rgb(im) for im in row] for row in rows]
    if scale != 1:
        cells = [[im.resize((im.width * scale, im.height * scale), Image.NEAREST) for im in row] for row in cells]
    cw = max(im.width for row in cells for im in row)
    ch = max(im.height for row in cells for im in row)
    ncols = max(len(row) for row in cells)
    top = 14 if titles else 0
    grid = Image.new("RGB", (ncols * (cw + pad) + pad, top + len(cells) * (ch + pad) + pad), background)
    draw = ImageDraw.Draw(grid)
    for c, title in enumerate(titles or []):
        draw.text((pad + c * (cw + pad) + 2, 1), title, fill=(0, 0, 0))
    for r, row in enumerate(cells):
        for c, im in enumerate(row):
            grid.paste(im, (pad + c * (cw + pad), top + pad + r * (ch + pad)))
    return grid
