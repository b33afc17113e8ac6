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


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}".strip()
            if line and draw.textlength(trial, font=font) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def figure_grid(
    cells: Sequence[Sequence[Image.Image | None]],
    *,
    column_titles: Sequence[str] | None = None,
    captions: Sequence[Sequence[str | None]] | None = None,
    title: str | None = None,
    font_size: int = 13,
    pad: int = 6,
) -> Image.Image:
    """A labelled figure: a grid of PIL images with a wrapped ``title`` on top, a title above each
    column and an optional one-line caption under each cell (``None`` cells stay blank).

    All cells are placed in boxes as large as the largest cell; text uses Pillow's default font.
    """
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    present = [im for row in cells for im in row if im is not None]
    if not present:
        raise ValueError("figure_grid needs at least one image")
    cw = max(im.width for im in present)
    ch = max(im.height for im in present)
    ncols = max(len(row) for row in cells)
    width = ncols * (cw + pad) + pad
    line_h = font_size + 4
    title_lines = _wrap(probe, title, font, width - 2 * pad) if title else []
    col_lines = [_wrap(probe, t, font, cw) for t in (column_titles or [])]
    col_h = max((len(x) for x in col_lines), default=0) * line_h
    cap_h = line_h if captions else 0
    top = pad + len(title_lines) * line_h + (pad if title_lines else 0) + col_h
    grid = Image.new("RGB", (width, top + len(cells) * (ch + cap_h + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for i, line in enumerate(title_lines):
        draw.text((pad, pad + i * line_h), line, fill=(0, 0, 0), font=font)
    y0 = pad + len(title_lines) * line_h + (pad if title_lines else 0)
    for c, lines in enumerate(col_lines):
        for i, line in enumerate(lines):
            draw.text((pad + c * (cw + pad), y0 + i * line_h), line, fill=(0, 0, 0), font=font)
    for r, row in enumerate(cells):
        y = top + r * (ch + cap_h + pad)
        for c, im in enumerate(row):
            x = pad + c * (cw + pad)
            if im is not None:
                grid.paste(im.convert("RGB"), (x, y))
            caption = captions[r][c] if captions and c < len(captions[r]) else None
            if caption:
                while len(caption) > 1 and draw.textlength(caption, font=font) > cw:
                    caption = caption[:-2] + "…"
                draw.text((x, y + ch + 1), caption, fill=(60, 60, 60), font=font)
    return grid
