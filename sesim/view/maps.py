"""Which structure loss draws a run's maps, and the maps the page shows.

A run trained with the spatially-correlative loss is shown through its *own* loss (its feature
network, its LSeSim heads, normalisation and distance). A run without one (CUT, CycleGAN, GAN
only, perceptual, L1) is shown through :func:`fallback_structure_loss`, and the page says so.

All images are ``(C, H, W)`` tensors in [-1, 1]; features are ``layer -> (1, C_l, h_l, w_l)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..losses.spatial import PAPER_SETTINGS, LayerMaps, SpatialCorrelativeLoss
from ..nets.backbones import describe_backbone
from ..ops.selfsim import map_distance, self_similarity, window_index
from ..explain import describe_run_structure
from ..viz.heatmap import feature_position, query_map


def fallback_structure_loss() -> tuple[SpatialCorrelativeLoss, str]:
    """The structure loss used to draw maps for a run that has none of its own.

    Returns the loss (eval mode) and the words the page shows for it: FSeSim on the default
    pretrained backbone (ImageNet VGG16 if its file is found, else ImageNet EfficientNet-Lite0; see
    ``sesim.nets.backbones``) at its default layers, 32 x 32 windows -- an instrument, not the run's loss.
    """
    loss = SpatialCorrelativeLoss(patch_size=PAPER_SETTINGS["patch_size"]).eval()
    return loss, (f"FSeSim on {describe_backbone(loss.extractor)} (not the run's: it has no spatially-correlative "
                  f"loss), {loss.norm} features")


def run_structure_loss(method: torch.nn.Module, run_dir: Path) -> tuple[SpatialCorrelativeLoss, bool, str]:
    """``(loss, is_the_runs_own, description)`` for the rebuilt ``method`` of the run in ``run_dir``
    (the description of a run's own loss is ``sesim viz``'s, which names its feature network)."""
    structure = getattr(method, "structure", None)
    if isinstance(structure, SpatialCorrelativeLoss):
        return structure.eval(), True, f"the run's own loss: {describe_run_structure(structure, run_dir)}"
    loss, words = fallback_structure_loss()
    return loss, False, words


def local_window(structure: SpatialCorrelativeLoss) -> int:
    """Side of the "local" window in feature positions: the loss's own, or the paper's 32 for a
    loss trained with global maps."""
    return structure.patch_size if structure.patch_size is not None else PAPER_SETTINGS["patch_size"]


@torch.no_grad()
def features(structure: SpatialCorrelativeLoss, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """``(C, H, W)`` image -> the features the loss's maps are made of, ``layer -> (1, C', h, w)``."""
    return {name: f.float() for name, f in structure.structure_features(image[None]).items()}


@dataclass
class QueryResult:
    """One query at one layer: ``map_x`` / ``map_y`` ``(h, w)`` (NaN outside the window), the
    query's feature cell ``(row, col)``, the window side (``None`` = global map) and ``distance``,
    the structure loss's per-query term between the two maps (the run's map distance)."""

    map_x: np.ndarray
    map_y: np.ndarray
    cell: tuple[int, int]
    window: int | None
    distance: float


@torch.no_grad()
def query(structure: SpatialCorrelativeLoss, fx: dict[str, torch.Tensor], fy: dict[str, torch.Tensor], layer: str,
          point: tuple[int, int], image_hw: tuple[int, int], window: int | None) -> QueryResult:
    """The self-similarity maps of the query at image pixel ``point = (x, y)`` in the source
    features ``fx`` and the translation features ``fy`` (from :func:`features`), with a
    ``window x window`` local window (``None``: the global map), and their distance."""
    h, w = fx[layer].shape[-2:]
    r, c = feature_position(point, image_hw, (h, w))
    q = torch.tensor([r * w + c])
    win = window_index(q, h, w, window)
    maps = [self_similarity(f[layer], q, win, norm=structure.norm, tanh_scale=structure.tanh_scale)
            for f in (fx, fy)]
    d = map_distance(maps[0], maps[1], structure.distance, mask_keep=structure.mask_keep,
                     mask_from=structure.mask_from, smooth_l1=structure.smooth_l1)
    pictures = [query_map(LayerMaps(m, q, win, h, w), 0) for m in maps]
    return QueryResult(pictures[0], pictures[1], (r, c), None if win is None else window, float(d[0, 0]))

