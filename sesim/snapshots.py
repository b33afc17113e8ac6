"""Generator snapshots: a run's inference weights at chosen steps, kept to score its history.

``sesim train --snapshot-every N`` writes, every N steps and at the run's last step, besides the
resumable ``checkpoint.pt`` (which is replaced at every checkpoint)::

    RUN/snapshots/generator_step0001000.safetensors        the AtoB generator at step 1000
    RUN/snapshots/generator_BtoA_step0001000.safetensors   the reverse generator (two-sided methods)

Each file holds only the generator's weights (what ``sesim translate --weights`` and ``sesim
evaluate --snapshots`` need; a few MB to ~45 MB for the paper's 256 px ResNet generator, a fraction
of ``checkpoint.pt`` with its discriminators and optimiser states) with the same metadata as
``generator.safetensors`` (``step``, ``direction``, the run's config). Files are written atomically
(temporary name + rename) and never replaced: a resumed run redoes the steps after its last
checkpoint, and with sesim's exact resume it recomputes the same weights, so a snapshot that
exists already is kept as it is (not rewritten, not duplicated), and a score computed from it stays
valid. ``sesim view`` finds the AtoB snapshots (its step slider shows them).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from torch import nn

from .checkpoint import GENERATOR_FILE, generator_file, generator_metadata, save_generator

log = logging.getLogger("sesim")

__all__ = ["SNAPSHOT_DIR", "Snapshot", "snapshot_file", "write_snapshot", "weights_step", "list_snapshots",
           "select_snapshots", "SnapshotError"]

SNAPSHOT_DIR = "snapshots"
_NAME = re.compile(r"^generator(?:_(?P<direction>BtoA))?_step(?P<step>\d+)\.safetensors$")


class SnapshotError(ValueError):
    """A snapshot request that cannot be met (the message lists what exists)."""


@dataclass(frozen=True)
class Snapshot:
    """An AtoB generator weights file of a run at ``step`` (``latest``: the run's own ``generator.safetensors``)."""

    step: int
    path: Path
    latest: bool = False


def snapshot_file(step: int, direction: str = "AtoB") -> str:
    """``generator_step0001000.safetensors`` (AtoB) or ``generator_BtoA_step0001000.safetensors``."""
    name = generator_file(direction)  # checks the direction
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return name.removesuffix(".safetensors") + f"_step{step:07d}.safetensors"


def write_snapshot(run_dir: str | Path, step: int, generators: dict[str, nn.Module],
                   metadata: dict[str, Any]) -> list[Path]:
    """Write one snapshot file per generator (``{"AtoB": G, "BtoA": F}``) for ``step``; returns the
    files written. A file that exists already is left untouched (see the module doc)."""
    folder = Path(run_dir) / SNAPSHOT_DIR
    folder.mkdir(exist_ok=True)
    written = []
    for direction, generator in generators.items():
        path = folder / snapshot_file(step, direction)
        if path.exists():
            log.debug("snapshot %s exists (written before this run was resumed); kept", path)
            continue
        save_generator(path, generator, {**metadata, "step": step, "direction": direction})
        written.append(path)
    return written


def weights_step(path: str | Path, direction: str = "AtoB") -> int | None:
    """The ``step`` recorded in a generator weights file for ``direction``; ``None`` if the file is not one."""
    meta = generator_metadata(path)
    if meta.get("direction", "AtoB") != direction:
        return None
    try:
        return int(meta["step"])
    except (KeyError, ValueError, TypeError):
        return None


def list_snapshots(run_dir: str | Path, *, include_latest: bool = True) -> list[Snapshot]:
    """The run's AtoB snapshots sorted by step; with ``include_latest``, also ``generator.safetensors``
    when no snapshot has its step (a run trained without ``--snapshot-every`` has just that one)."""
    run_dir = Path(run_dir)
    found: dict[int, Snapshot] = {}
    for path in sorted((run_dir / SNAPSHOT_DIR).glob("generator_step*.safetensors")):
        if not _NAME.match(path.name):
            continue
        step = weights_step(path)
        if step is None:
            log.warning("%s is not a readable AtoB generator snapshot; skipped", path)
            continue
        found.setdefault(step, Snapshot(step, path))
    latest = run_dir / GENERATOR_FILE
    if include_latest and latest.is_file():
        step = weights_step(latest)
        if step is not None and step not in found:
            found[step] = Snapshot(step, latest, latest=True)
    return [found[s] for s in sorted(found)]


def select_snapshots(snapshots: list[Snapshot], spec: str | Iterable[int] = "all") -> list[Snapshot]:
    """``"all"``, ``"last"``, or steps (``"1000,2000"`` or integers) -> the matching snapshots, by step.

    Raises :class:`SnapshotError` naming the available steps when there is none or a step is missing.
    """
    if not snapshots:
        raise SnapshotError("the run has no generator weights yet (no snapshots/ and no generator.safetensors)")
    available = ", ".join(str(s.step) for s in snapshots)
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return list(snapshots)
        if text == "last":
            return [snapshots[-1]]
        try:
            steps = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise SnapshotError(f"--snapshots {spec!r}: give all, last or comma-separated steps "
                                f"(this run has {available})") from None
    else:
        steps = [int(x) for x in spec]
    by_step = {s.step: s for s in snapshots}
    missing = [s for s in steps if s not in by_step]
    if missing or not steps:
        raise SnapshotError(f"no snapshot at step(s) {missing or '(none given)'}; this run has {available}")
    return [by_step[s] for s in sorted(set(steps))]
