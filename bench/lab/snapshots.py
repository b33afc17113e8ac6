"""Best and last of every benchmark run over its snapshots, with the task's own scorers.

``python bench/quality.py --snapshot-every N`` trains each run with ``sesim train --snapshot-every N``
(generator weights every N steps and at the last step, :mod:`sesim.snapshots`) and calls
:func:`score_history` for each finished run: every snapshot translates the task's held-out inputs
(``sesim.translate.translate_paths``, the path of the run's final translations) and the task's
``score`` gives its structure and realism numbers. *Last* is the last snapshot -- the final
generator, so its test scores equal the run's row of the main table. *Best* is, per metric, the
snapshot with the best value, **picked on a validation split** when the task has one and reported
on the test split; without one it is picked on the test split itself and marked optimistic.

Validation splits (:func:`validation_task`), held out from training like the test split:

* ``scenes`` -- another set of synthetic layouts (the demo generator with seed 1), scored with a
  pixel classifier fitted exactly as the test scorer (same real photos, same seed);
* ``photos`` -- other random crops (seed 1) of the same held-out photo strips as the test split
  (held out from training, but not independent of the test crops);
* ``custom`` -- ``valA/`` + ``valB/`` of ``--data`` when they exist (realism only), else none.

Each run's history is cached next to its translations (``history.json``, keyed by snapshot step
and file hash), so a rerun of the benchmark rescores nothing it has scored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from .stats import mean_std
from .tasks import REALISM_COLUMNS, Task, layout_scorer

__all__ = ["validation_task", "score_history", "markdown"]


def validation_task(task: Task, root: Path, *, size: int, n_val: int,
                    load_custom: Callable[[Path], np.ndarray] | None = None) -> Task | None:
    """A copy of the fitted ``task`` on its validation split, sharing its
    realism features; ``None`` when the task has no validation split (module doc). ``load_custom``:
    the benchmark's image loader for custom data (folder -> ``(N, H, W, 3)`` uint8)."""
    from sesim.data.demo_scenes import load_rgb_folder

    root = Path(root)
    if task.name == "scenes":
        from sesim.data.demo_scenes import load_layouts, make_demo_dataset

        make_demo_dataset(root, size=size, n_train=1, n_test=n_val, seed=1)
        structure, targets = layout_scorer(task.data, load_layouts(root / "layouts" / "testA")), None
    elif task.name == "photos":
        from .photo_task import make_photo_dataset, target_errors

        make_photo_dataset(root, size=size, n_train=1, n_test=n_val, seed=1)
        targets = load_rgb_folder(root / "targets" / "testA")

        def structure(images: np.ndarray) -> dict:
            return target_errors(images, targets)
    elif load_custom is not None and (Path(task.data) / "valA").is_dir() and (Path(task.data) / "valB").is_dir():
        root, structure, targets = Path(task.data) / "val_as_test", None, None
        for split in ("A", "B"):  # the Task layout reads testA/testB
            dst = root / f"test{split}"
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to((Path(task.data) / f"val{split}").resolve(), target_is_directory=True)
    else:
        return None
    loader = load_rgb_folder if task.name in ("scenes", "photos") else None
    loader = loader or load_custom
    inputs, reference = loader(root / "testA"), loader(root / "testB")
    return dataclasses.replace(task, name=f"{task.name}-val", data=root, inputs=inputs, reference=reference,
                               targets=targets, structure=structure,
                               reference_features=task.extractor.features(reference))


def score_history(task: Task, run_dir: Path, *, work_dir: Path, load: Callable[[Path], np.ndarray],
                  val_task: Task | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Score every snapshot of ``run_dir`` with ``task`` (and ``val_task``); returns
    ``{"steps", "selected_on", "optimistic", "history", "selection"}`` (selection as
    :func:`sesim.sweep.select_best_last`, directions from the task's columns)."""
    from sesim.nets.backbones import file_sha256
    from sesim.snapshots import list_snapshots
    from sesim.sweep import select_best_last
    from sesim.translate import translate_paths

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    cache_path = work_dir / "history.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    snaps = list_snapshots(run_dir)
    folds = [("test", task)] + ([("val", val_task)] if val_task is not None else [])
    history = []
    for snap in snaps:
        key = f"{snap.step}:{file_sha256(snap.path)}"
        if key not in cache or any(f not in cache[key] for f, _ in folds):
            record = {}
            for fold, t in folds:
                fake = work_dir / f"step_{snap.step:07d}_{fold}"
                translate_paths(run_dir, Path(t.data) / "testA", fake, weights=snap.path, overwrite=True,
                                progress=False)
                record[fold] = _plain(t.score(load(fake)[: len(t.inputs)]))
                shutil.rmtree(fake)
            cache[key] = record
            cache_path.write_text(json.dumps(cache, indent=1) + "\n")
            if log is not None:
                log(f"  [{task.name}] {Path(run_dir).name} step {snap.step}: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in record["test"].items() if not k.startswith("kid_std")))
        history.append({"step": snap.step, **cache[key]})
    higher = {k: hi for k, _, hi in [*task.structure_columns, *REALISM_COLUMNS]}
    select_on = "val" if val_task is not None else "test"
    selection = select_best_last(history, list(higher), select_on=select_on, report_on="test", higher=higher)
    return {"steps": [s.step for s in snaps], "selected_on": select_on, "optimistic": select_on == "test",
            "history": history, "selection": selection}


def _plain(scores: dict) -> dict:
    return {k: float(v) for k, v in scores.items() if isinstance(v, (int, float, np.floating))}


def markdown(result: dict, task: str, cols: list) -> list[str]:
    """Lines for ``quality.md``: per method, last and best of each metric (mean over seeds; the mean step
    of the best), with where the best was picked."""
    rows = [r for r in result["rows"] if r["task"] == task and r.get("snapshots")]
    if not rows:
        return []
    keys = [*cols, *REALISM_COLUMNS]
    picked = {r["snapshots"]["selected_on"] for r in rows}
    where = ("on the validation split, reported on the test split" if picked == {"val"} else
             "on the test split itself: optimistic (the test images chose the snapshot)")
    steps = rows[0]["snapshots"]["steps"]
    lines = [f"Best and last snapshot ({len(steps)} snapshots per run, every "
             f"{result['settings'].get('snapshot_every')} steps; best picked per metric {where}; mean over seeds, "
             "best step in brackets; a best picked on validation images can be worse on the test split than the "
             "last):", "",
             "| method | " + " | ".join(f"{h} last / best" for _, h, _ in keys) + " |", "|---|" + "---|" * len(keys)]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    for label in labels:
        group = [r for r in rows if r["label"] == label]
        cells = []
        for k, _, _ in keys:
            sel = [r["snapshots"]["selection"].get(k) or {} for r in group]
            last = mean_std([(s.get("last") or {}).get("value") for s in sel])[0]
            best = mean_std([(s.get("best") or {}).get("value") for s in sel])[0]
            step = mean_std([(s.get("best") or {}).get("step") for s in sel])[0]
            digits = 3 if abs(last) < 10 else 1
            cells.append(f"{last:.{digits}f} / {best:.{digits}f} ({step:.0f})" if not math.isnan(best) else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + [""]
