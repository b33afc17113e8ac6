"""``sesim viz``: figures that explain a translation, from image files and (optionally) a run.

- :func:`heatmap_command`: self-similarity maps of chosen query points, source vs. translation,
  per layer (paper Fig. 1 and 3), with FSeSim or a run's trained LSeSim heads.
- :func:`errormap_command`: per-location error of several content losses between an image and one
  or more candidates (paper Fig. 5).
- :func:`correspondence_command`: where an exemplar run's input points look in the exemplar, and
  the exemplar's self-correlation maps (MCL-Net Fig. 5; :mod:`sesim.viz.correspondence`).

A run is rebuilt from its ``config.json`` and ``checkpoint.pt``, with the backbone the run recorded
(its feature network is fixed, so it is not stored in checkpoints; a different weights file is
reported). When the run asked for randomly initialised features, the same random network is rebuilt
by seeding torch with the run's seed before building the method, exactly as the trainer does.
Without ``--run`` the figures use ``--backbone`` / ``--backbone-weights`` (default: the pretrained
automatic choice of :mod:`sesim.nets.backbones`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .config import TrainConfig
from .data.images import ImageError, load_image, pil_to_tensor
from .factory import build_generator, build_patch_heads
from .losses.spatial import PAPER_SETTINGS, SpatialCorrelativeLoss
from .methods import Method
from .nets.backbones import (build_backbone, default_perceptual_layers, describe_backbone, record_mismatch,
                              resolve_backbone)
from .nets.init import init_weights
from .run import Run
from .translate import TranslateError, load_run_generator, translate_tensor
from .translate_exemplar import exemplar_translate_tensor
from .viz.correspondence import correspondence_figure
from .viz.errormap import ErrorMap, l1_error, patchnce_error, perceptual_error, sesim_error
from .viz.grid import figure_grid
from .viz.heatmap import heatmap_figure, overlay, panel

log = logging.getLogger("sesim")


class VizError(ValueError):
    """Bad request for a figure (the message says what to do)."""


# ----------------------------------------------------------------------------------- inputs
def load_run_method(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[Method, TrainConfig]:
    """A run's method (all networks, trained weights from ``checkpoint.pt``) in eval mode, and its config
    (:meth:`sesim.run.Run.method`), with a warning when the structure backbone differs from the run's."""
    run = Run(run_dir)
    method = run.method(device)
    net = method.feature_backbone()
    diff = record_mismatch(run.config.resolved.get("backbone"), net) if net is not None else None
    if diff:
        log.warning("run %s was trained with another structure backbone than the one found now (%s); the figures "
                    "use the one found now", run_dir, diff)
    return method, run.config


def parse_points(text: str | None, width: int, height: int) -> list[tuple[int, int]]:
    """``"x,y;x,y"`` (pixels of the source) -> ``[(x, y), ...]``; default: the image centre and two
    points on its diagonal (at 1/4 and 3/4)."""
    if not text:
        return [(width // 4, height // 4), (width // 2, height // 2), (3 * width // 4, 3 * height // 4)]
    points = []
    for item in text.replace(" ", "").split(";"):
        if not item:
            continue
        try:
            x, y = (int(v) for v in item.split(","))
        except ValueError:
            raise VizError(f"bad query point {item!r}: write points as x,y;x,y in pixels") from None
        if not (0 <= x < width and 0 <= y < height):
            raise VizError(f"query point x={x}, y={y} lies outside the {width}x{height} source image")
        points.append((x, y))
    if not points:
        raise VizError("--points is empty; write points as x,y;x,y in pixels")
    return points


def _load(path: str | Path, channels: int = 3) -> torch.Tensor:
    return pil_to_tensor(load_image(path, channels))


def _fsesim(backbone: str, weights: str | None, layers: Sequence[str] | None,
            norm: str) -> tuple[SpatialCorrelativeLoss, str]:
    torch.manual_seed(0)  # random-init networks are the same on every call
    choice = resolve_backbone(backbone, weights)
    # auto: mean-centre random features. Random-init ReLU features share a large positive component,
    # so with plain L2 every map is nearly flat and distances are ~100x smaller (tests/test_viz_errormap.py)
    if norm == "auto":
        norm = "centered_l2" if choice.weights == "random" else "l2"
    loss = SpatialCorrelativeLoss(layers, backbone=choice.name, weights=choice.weights,
                                  patch_size=PAPER_SETTINGS["patch_size"], norm=norm)
    return loss.eval(), f"FSeSim, {describe_backbone(loss.extractor)}, {norm} features"


#: the settings of a structure loss that its FSeSim twin (:func:`_without_heads`) keeps
_MAP_SETTINGS = ("num_queries", "sampling", "patch_size", "keys", "norm", "distance", "mask_keep", "mask_from",
                 "smooth_l1", "tanh_scale")


def _without_heads(structure: SpatialCorrelativeLoss) -> SpatialCorrelativeLoss:
    """FSeSim with the same features and settings as a (possibly LSeSim) structure loss."""
    settings = {name: getattr(structure, name) for name in _MAP_SETTINGS}
    return SpatialCorrelativeLoss(structure.layers, extractor=structure.extractor, **settings).eval()


def describe_run_structure(structure: SpatialCorrelativeLoss, run: Path) -> str:
    kind = "LSeSim (trained heads)" if structure.learned else "FSeSim"
    return f"{kind} of run {run.name}, {describe_backbone(structure.extractor)}, {structure.norm} features"


def _check_output(output: str | Path, overwrite: bool) -> Path:
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    if output.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise VizError(f"--output {output}: use a .png (or .jpg/.webp) file name")
    output.parent.mkdir(parents=True, exist_ok=True)
    return output


# ---------------------------------------------------------------------------------- heatmap
def heatmap_command(source: str | Path, output: str | Path, *, translation: str | Path | None = None,
                    run: str | Path | None = None, points: str | None = None, layers: str | None = None,
                    backbone: str = "auto", backbone_weights: str | None = "auto", feature_norm: str = "auto",
                    side: int = 160, overwrite: bool = False) -> Path:
    """Write the self-similarity heat-map figure; returns its path."""
    output = _check_output(output, overwrite)
    if translation is None and run is None:
        raise VizError("give --translation, or --run to translate the source with the run's generator")
    layer_list = [n.strip() for n in layers.split(",") if n.strip()] if layers else None
    if run is not None:
        method, cfg = load_run_method(run)
        structure = getattr(method, "structure", None)
        if not isinstance(structure, SpatialCorrelativeLoss):
            raise VizError(f"run {run} was trained without the spatially-correlative loss "
                           f"(method {cfg.method!r}, structure {cfg.structure.structure!r}); drop --run to use FSeSim")
        title = describe_run_structure(structure, Path(run))
        if structure.learned:  # show what the trained heads change: the same features without them
            structure = {"LSeSim": structure, "FSeSim": _without_heads(structure)}
            title += " (rows: with the trained heads, and FSeSim on the same backbone features)"
        x = _load(source, cfg.data.channels)
        if translation is None:
            y = translate_tensor(method.generators()["AtoB"], x[None])[0]
            title += "; translation by the run's generator"
        else:
            y = _load(translation, cfg.data.channels)
    else:
        x, y = _load(source), _load(translation)
        structure, title = _fsesim(backbone, backbone_weights, layer_list, feature_norm)
    if x.shape != y.shape:
        raise VizError(f"source {tuple(x.shape[-2:])} and translation {tuple(y.shape[-2:])} differ in size")
    if layer_list:
        used = next(iter(structure.values())).layers if isinstance(structure, dict) else structure.layers
        unknown = [n for n in layer_list if n not in used]
        if unknown:
            raise VizError(f"layer(s) {unknown} not used by this structure loss; choose from {list(used)}")
    pts = parse_points(points, x.shape[-1], x.shape[-2])
    fig = heatmap_figure(structure, x, y, pts, layer_list, side=side,
                         title=f"Self-similarity of query points (white rings). {title}. "
                               "Blue = low, red = high similarity to the query.")
    fig.save(output)
    return output


# --------------------------------------------------------------------------------- errormap
@dataclass
class ContentLosses:
    """The losses compared by the error-map figure, in its column order: ``error[name](a, b)`` is the
    ``(H', W')`` error array of two ``(C, H, W)`` images in [-1, 1] (``None``: a skipped loss);
    ``notes`` says how each is computed."""

    error: dict[str, Callable[[torch.Tensor, torch.Tensor], np.ndarray] | None]
    notes: dict[str, str]


def content_losses(run: str | Path | None, backbone: str = "auto", backbone_weights: str | None = "auto",
                   feature_norm: str = "auto", channels: int = 3) -> ContentLosses:
    """The losses of the error-map figure: FSeSim / LSeSim from ``run`` when it has a
    spatially-correlative loss (else FSeSim on ``backbone`` / ``backbone_weights``), a perceptual loss
    on the same backbone, and PatchNCE from a CUT ``run`` (else a random-init encoder and heads);
    ``notes`` says which is which."""
    notes: dict[str, str] = {}
    method = cfg = None
    if run is not None:
        method, cfg = load_run_method(run)
    structure = getattr(method, "structure", None)
    if isinstance(structure, SpatialCorrelativeLoss):
        fsesim = _without_heads(structure)
        lsesim = structure if structure.learned else None
        notes["FSeSim"] = describe_run_structure(fsesim, Path(run))
        notes["LSeSim"] = (f"trained heads of run {Path(run).name} on the same features" if lsesim is not None
                           else f"skipped: run {Path(run).name} has no trained LSeSim heads")
    else:
        fsesim, notes["FSeSim"] = _fsesim(backbone, backbone_weights, None, feature_norm)
        lsesim = None
        notes["LSeSim"] = "skipped: needs --run of an LSeSim run (trained heads)"
    net = fsesim.extractor
    name = getattr(net, "name", "vgg16")
    perceptual = build_backbone(name, default_perceptual_layers(name), getattr(net, "weights_source", "random"))
    notes["perceptual"] = f"{','.join(perceptual.layers)} of {describe_backbone(perceptual)}"
    if method is not None and hasattr(method, "F") and hasattr(method, "nce_layers"):
        encoder, mlp, layers = method.G, method.F, method.nce_layers
        temperature = cfg.nce.nce_temperature
        notes["PatchNCE"] = f"trained encoder and heads of CUT run {Path(run).name}"
    else:
        base = TrainConfig()
        base.data.channels = channels
        encoder = init_weights(build_generator(base.mode, base.data, base.generator), base.generator.init,
                               base.generator.init_gain).eval()
        layers, mlp = build_patch_heads(encoder, base.nce, base.generator)
        temperature = base.nce.nce_temperature
        notes["PatchNCE"] = "RANDOM-INIT encoder and heads (no trained CUT run given)"
    error = {"L1": l1_error,
             "perceptual": partial(perceptual_error, extractor=perceptual.eval(), layers=perceptual.layers),
             "PatchNCE": partial(patchnce_error, encoder=encoder.eval().encode, mlp=mlp.eval(), layers=layers,
                                 temperature=temperature),
             "FSeSim": partial(sesim_error, structure=fsesim),
             "LSeSim": partial(sesim_error, structure=lsesim) if lsesim is not None else None}
    return ContentLosses(error, notes)


def error_maps(a: torch.Tensor, b: torch.Tensor, losses: ContentLosses) -> list[ErrorMap | None]:
    """Error maps of every loss (``None`` for a skipped one), in the figure's column order."""
    notes = {"L1": "pixels", **losses.notes, "LSeSim": "trained heads"}  # an error map's short note
    return [ErrorMap(name, error(a, b), notes[name]) if error is not None else None
            for name, error in losses.error.items()]


def errormap_command(a: str | Path, b: Sequence[str | Path], output: str | Path, *, run: str | Path | None = None,
                     backbone: str = "auto", backbone_weights: str | None = "auto", feature_norm: str = "auto",
                     side: int = 128, overwrite: bool = False) -> tuple[Path, list[list[ErrorMap | None]]]:
    """Write the error-map figure: one row per image in ``b``, compared with ``a``.

    Returns the figure's path and the error maps (rows x losses; ``None`` = skipped loss).
    """
    output = _check_output(output, overwrite)
    if not b:
        raise VizError("give at least one image with --b")
    channels = Run(run).config.data.channels if run is not None else 3
    xa = _load(a, channels)
    xbs = [_load(p, channels) for p in b]
    for p, xb in zip(b, xbs):
        if xb.shape != xa.shape:
            raise VizError(f"{p} is {xb.shape[-1]}x{xb.shape[-2]} but {a} is {xa.shape[-1]}x{xa.shape[-2]}; "
                           "error maps compare images of the same size")
    if xa.shape[-1] % 4 or xa.shape[-2] % 4:
        raise VizError(f"image size {xa.shape[-1]}x{xa.shape[-2]}: width and height must be multiples of 4 "
                       "(PatchNCE runs the images through a generator's encoder)")
    losses = content_losses(run, backbone, backbone_weights, feature_norm, channels)
    maps = [error_maps(xa, xb, losses) for xb in xbs]
    names = list(losses.error)
    # one colour scale per loss (column), shared by all rows: 0 .. the column's largest error
    top = [max((float(row[i].values.max()) for row in maps if row[i] is not None), default=1.0)
           for i in range(len(names))]
    cells, captions = [], []
    for path, xb, row in zip(b, xbs, maps):
        cells.append([panel(xa, side), panel(xb, side)] +
                     [overlay(xb, m.values, alpha=1.0, size=side, vmin=0.0, vmax=top[i]) if m is not None else None
                      for i, m in enumerate(row)])
        captions.append(["a", Path(path).name] + [f"mean {m.mean:.3f}" if m is not None else "(skipped)" for m in row])
    notes = "; ".join(f"{k}: {v}" for k, v in losses.notes.items())
    title = ("Per-location error of content losses between a and b (blue = 0, red = the column's largest error; "
             f"one colour scale per loss). {notes}.")
    fig = figure_grid(cells, column_titles=["a", "b", *names], captions=captions, title=title)
    fig.save(output)
    return output, maps


# --------------------------------------------------------------------------- correspondence
def correspondence_command(run: str | Path, condition: str | Path, exemplar: str | Path, output: str | Path, *,
                           points: str | None = None, side: int = 128, overwrite: bool = False) -> Path:
    """``sesim viz correspondence``: load the run, draw the figure, write ``output``."""
    translator, cfg = load_run_generator(run)
    if cfg.mode != "exemplar":
        raise VizError(f"{run} is a {cfg.mode!r} run; viz correspondence needs a --mode exemplar run")
    out = _check_output(output, overwrite)
    try:
        x, z = _load(condition, cfg.data.channels)[None], _load(exemplar, cfg.data.channels)[None]
    except ImageError as err:
        raise TranslateError(str(err)) from None
    pts = parse_points(points, z.shape[-1], z.shape[-2])
    try:
        fig = correspondence_figure(translator, x, z, exemplar_translate_tensor(translator, x, z), pts, side)
    except ValueError as err:
        raise VizError(str(err)) from None
    fig.save(out)
    return out
