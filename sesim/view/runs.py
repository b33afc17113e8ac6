"""A run folder opened for ``sesim view``: its networks, the steps it can be shown at, its styles.

Steps come from two kinds of files in the run folder:

- **generator weights**: every ``*.safetensors`` in the run folder or its ``checkpoints/`` or
  ``snapshots/`` sub-folder whose metadata records an ``AtoB`` generator and a ``step`` (``sesim
  train`` writes ``generator.safetensors`` with the latest step, and ``snapshots/`` with
  ``--snapshot-every``); translations at such a step are computed live;
- **sample snapshots**: ``samples/step_*.png``, the training loop's sample grids (input |
  translation, or one column per style code for multimodal runs). At a step that has only a
  snapshot, the translation of an image is cut out of the grid, which works for the images the
  grid shows (the run's sample inputs), found by comparing pixels with the grid's input column.
"""

from __future__ import annotations

import functools
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..checkpoint import CONFIG_FILE, GENERATOR_FILE, STATE_FILE
from ..data.images import pil_to_tensor, tensor_to_pil
from ..methods.multimodal import SAMPLE_STYLES
from ..snapshots import SNAPSHOT_DIR, weights_step as _weights_step
from ..translate import TranslateError, style_variants, translate_tensor
from ..explain import load_run_method
from ..run import RunError, load_generator
from .maps import run_structure_loss

#: sample grids (sesim/viz/grid.py image_grid, called by the trainer with column titles): layout constants
GRID_PAD, GRID_TITLE = 2, 14
#: a grid row is an image's snapshot when their pixels differ by at most this much on average (0..255)
SNAPSHOT_MATCH = 2.0
#: the largest style index (style k is code k of `sesim translate --samples K --seed 0`)
MAX_STYLE = 9999


class ViewError(ValueError):
    """A run or input that cannot be shown (the message says why and what to do)."""


@dataclass
class Step:
    """Where the translation at ``step`` comes from: generator ``weights`` and/or a sample ``snapshot``."""

    step: int
    weights: Path | None = None
    snapshot: Path | None = None

    @property
    def kind(self) -> str:
        return "weights" if self.weights is not None else "snapshot"


def discover_steps(run_dir: Path) -> dict[int, Step]:
    """``step -> Step`` for every generator weights file and sample snapshot of a run folder."""
    steps: dict[int, Step] = {}
    for path in sorted([*run_dir.glob("*.safetensors"), *run_dir.glob("checkpoints/*.safetensors"),
                        *run_dir.glob(f"{SNAPSHOT_DIR}/*.safetensors")]):
        step = _weights_step(path)
        if step is not None and (step not in steps or path.name == GENERATOR_FILE):
            steps.setdefault(step, Step(step)).weights = path
    for path in sorted((run_dir / "samples").glob("step_*.png")):
        digits = path.stem.removeprefix("step_")
        if digits.isdigit():
            steps.setdefault(int(digits), Step(int(digits))).snapshot = path
    return dict(sorted(steps.items()))


@dataclass
class SnapshotGrid:
    """A sample grid cut into its cells: ``cells[row][col]`` is ``(H, W, 3)`` uint8; column 0 holds
    the inputs, the others their translations (one per style code for multimodal runs)."""

    cells: list[list[np.ndarray]] = field(default_factory=list)

    @classmethod
    @functools.lru_cache(maxsize=16)
    def read(cls, path: Path, size: int) -> "SnapshotGrid | None":
        """Cut ``path`` (square cells of ``size`` px, enlarged by the trainer's integer scale);
        ``None`` if the picture does not have that layout. The last 16 grids read are kept."""
        scale = max(1, 128 // size)
        side = size * scale
        try:
            with Image.open(path) as im:
                grid = np.asarray(im.convert("RGB"))
        except OSError:
            return None
        height, width = grid.shape[:2]
        ncols, rem_w = divmod(width - GRID_PAD, side + GRID_PAD)
        nrows, rem_h = divmod(height - GRID_TITLE - GRID_PAD, side + GRID_PAD)
        if rem_w or rem_h or ncols < 2 or nrows < 1:
            return None
        tops = [GRID_TITLE + GRID_PAD + r * (side + GRID_PAD) for r in range(nrows)]
        lefts = [GRID_PAD + c * (side + GRID_PAD) for c in range(ncols)]
        cells = [[grid[y:y + side:scale, x:x + side:scale] for x in lefts] for y in tops]
        return cls(cells)

    def row_of(self, image: torch.Tensor) -> int | None:
        """The row whose input cell shows ``image`` (``(C, H, W)`` in [-1, 1]), or None."""
        pixels = np.asarray(tensor_to_pil(image).convert("RGB"), np.float64)
        for r, row in enumerate(self.cells):
            if row[0].shape == pixels.shape and np.abs(row[0] - pixels).mean() <= SNAPSHOT_MATCH:
                return r
        return None


class ViewRun:
    """A run folder rebuilt for viewing (networks in eval mode on the CPU).

    Attributes: ``cfg``, ``structure`` (the loss that draws this run's maps), ``own_loss`` (it is
    the run's own), ``loss_note`` (words for the page), ``steps`` (``step -> Step``), ``latest``
    (the step of the loaded checkpoint), ``style_dim`` (``None`` for single-output runs).
    """

    def __init__(self, run_dir: str | Path, *, style_from: str | Path | None = None) -> None:
        self.dir = Path(run_dir)
        try:
            method, self.cfg = load_run_method(self.dir)
        except RunError as err:
            raise ViewError(f"run {self.dir} could not be loaded: {err}") from None
        except (ValueError, KeyError, TypeError, RuntimeError, EOFError, OSError, pickle.UnpicklingError,
                zipfile.BadZipFile) as err:
            raise ViewError(f"run {self.dir} could not be loaded from {CONFIG_FILE} and {STATE_FILE} "
                            f"({type(err).__name__}: {err})") from None
        if self.cfg.mode == "exemplar":
            raise ViewError(f"{self.dir} is an exemplar run (--mode exemplar), which sesim view does not show; "
                            "use `sesim viz correspondence`")
        self.generator = method.generators()["AtoB"].eval()
        self.structure, self.own_loss, self.loss_note = run_structure_loss(method, self.dir)
        self.steps = discover_steps(self.dir)
        own = _weights_step(self.dir / GENERATOR_FILE)
        self.latest = own if own is not None else max((s for s, st in self.steps.items() if st.weights), default=0)
        self.steps.setdefault(self.latest, Step(self.latest, weights=self.dir / GENERATOR_FILE))
        self.style_dim = getattr(self.generator, "style_dim", None)
        self.reference_style = None
        if style_from is not None and self.style_dim is not None:
            try:
                self.reference_style = style_variants(self.generator, self.cfg, style_from=style_from)[0]
            except TranslateError as err:
                raise ViewError(f"run {self.name}: {err}") from None

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def layers(self) -> tuple[str, ...]:
        return self.structure.layers

    # -- translations ------------------------------------------------------------------------
    def check_variant(self, step: int, style: int | str) -> None:
        """Raise :class:`ViewError` unless this run can translate at ``step`` with ``style``
        (an index ``k`` of the codes of ``sesim translate --samples K --seed 0``, or ``"ref"``
        for ``--style-from``)."""
        if step not in self.steps:
            raise ViewError(f"run {self.name} has no step {step}; it has {list(self.steps)}")
        if self.style_dim is None:
            if style != 0:
                raise ViewError(f"run {self.name} is not multimodal: it has one output per input (style 0)")
        elif style == "ref":
            if self.reference_style is None:
                raise ViewError(f"run {self.name}: no --style-from image was given")
        elif not isinstance(style, int) or not 0 <= style <= MAX_STYLE:
            raise ViewError(f"style must be 0 .. {MAX_STYLE} or ref, got {style!r}")

    def translate(self, image: torch.Tensor, step: int, style: int | str = 0) -> torch.Tensor:
        """``(C, H, W)`` in [-1, 1] -> its translation at ``step`` (same shape), computed with the
        step's generator weights or, at a snapshot-only step, cut out of the sample grid."""
        self.check_variant(step, style)
        source = self.steps[step]
        if source.weights is None:
            return self._from_snapshot(image, source, style)
        net = self.generator if step == self.latest else self._generator_at(source.weights)
        if self.style_dim is not None:
            code = self.reference_style if style == "ref" else style_variants(net, self.cfg, samples=style + 1)[style]
            net = functools.partial(net, style=code)
        return translate_tensor(net, image[None])[0].float()

    @functools.lru_cache(maxsize=3)
    def _generator_at(self, weights: Path) -> torch.nn.Module:
        try:
            return load_generator(weights, self.cfg)
        except RunError as err:
            raise ViewError(f"{weights} could not be loaded ({err})") from None

    def _from_snapshot(self, image: torch.Tensor, source: Step, style: int | str) -> torch.Tensor:
        column = 1 if self.style_dim is None else (1 + style if isinstance(style, int) else None)
        grid = SnapshotGrid.read(source.snapshot, self.cfg.data.size)
        if grid is None:
            raise ViewError(f"{source.snapshot} does not have the layout of a sample grid of this run")
        row = grid.row_of(image)
        if row is None:
            raise ViewError(f"step {source.step} has only a sample snapshot ({source.snapshot.name}), which shows "
                            "the run's own sample images, not this one; choose a step with weights")
        if column is None or column >= len(grid.cells[row]):
            raise ViewError(f"the snapshot of step {source.step} shows styles 0 .. {len(grid.cells[row]) - 2} only")
        return pil_to_tensor(Image.fromarray(np.ascontiguousarray(grid.cells[row][column])))

    def snapshot_inputs(self) -> list[torch.Tensor]:
        """The input column of the newest sample grid (the run's sample images), ``(C, H, W)``."""
        for step in reversed(self.steps.values()):
            grid = SnapshotGrid.read(step.snapshot, self.cfg.data.size) if step.snapshot else None
            if grid is not None:
                return [pil_to_tensor(Image.fromarray(np.ascontiguousarray(row[0]))) for row in grid.cells]
        return []

    def describe(self) -> dict:
        """What the page shows about the run."""
        return {
            "name": self.name, "method": self.cfg.method, "mode": self.cfg.mode,
            "structure": self.cfg.structure.structure, "own_loss": self.own_loss, "loss_note": self.loss_note,
            "layers": list(self.layers), "patch_size": self.structure.patch_size,
            "distance": self.structure.distance,
            "steps": [{"step": s.step, "kind": s.kind} for s in self.steps.values()], "latest": self.latest,
            "multimodal": self.style_dim is not None, "reference_style": self.reference_style is not None,
            "snapshot_styles": SAMPLE_STYLES if self.style_dim is not None else 1,
        }
