"""Figures of an exemplar run's correspondence (drawn for ``sesim viz correspondence``, :mod:`sesim.explain`).

Top row: the condition, the exemplar drawn in *coordinate colours* (a smooth colour per position:
red grows to the right, green downwards), the condition's grid in the colour of the exemplar
position each of its points takes its colour from (the ``argmax`` of the correspondence ``T``:
where the input looks in the exemplar), the warped exemplar ``T Z`` and the translation. Bottom
row: the exemplar's self-correlation maps (paper Fig. 5) at the query points (white rings): the
cosine of that point's ``E_Z`` feature with every location, i.e. which region it belongs to.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..nets.correspondence import self_correlation
from .grid import image_grid
from .heatmap import overlay, panel

__all__ = ["coordinate_colours", "correspondence_figure"]


def coordinate_colours(side: int) -> np.ndarray:
    """``(side, side, 3)`` uint8: red = column, green = row, blue = constant 128."""
    t = np.linspace(0, 255, side)
    out = np.empty((side, side, 3), np.uint8)
    out[..., 0], out[..., 1], out[..., 2] = t[None, :], t[:, None], 128
    return out


@torch.no_grad()
def correspondence_figure(translator: torch.nn.Module, condition: torch.Tensor, exemplar: torch.Tensor,
                          translation: torch.Tensor, points: list[tuple[int, int]], side: int = 128) -> Image.Image:
    """The figure (module doc) for one ``(1, C, H, W)`` condition, ``(1, C, H', W')`` exemplar and
    the ``(1, C, H, W)`` translation, in [-1, 1]; ``points``: ``(x, y)`` pixels of the exemplar for
    the self-correlation maps."""
    net = translator.correspondence
    if net is None:
        raise ValueError("this run has no correspondence network (trained with --no-correspondence)")
    corr = net(condition, exemplar)
    g = corr.warped.shape[-1]
    codes = coordinate_colours(g)
    match = corr.similarity.argmax(dim=2).view(g, g).numpy()
    looked_up = codes.reshape(-1, 3)[match]
    size = (side, side)
    top = [panel(condition[0], side), _nearest(codes, size), _nearest(looked_up, size),
           panel(torch.nn.functional.interpolate(corr.warped, size=condition.shape[-2:], mode="bilinear",
                                                 align_corners=False)[0], side),
           panel(translation[0], side)]
    scm = self_correlation(corr.features_z)[0]  # (L, L)
    h_e, w_e = exemplar.shape[-2:]
    bottom = [panel(exemplar[0], side)]
    for x, y in points:
        r, c = min(g - 1, y * g // h_e), min(g - 1, x * g // w_e)
        bottom.append(overlay(net.fit(exemplar)[0], scm[r * g + c].view(g, g).numpy(), size=side, mark=(r, c)))
    return image_grid([top, bottom], titles=["condition | exemplar", "exemplar coords", "where input looks",
                                             "warped exemplar", "translation"])


def _nearest(arr: np.ndarray, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(arr).resize(size, Image.NEAREST)
