"""Loss and metric curves of a run, drawn from its ``log.jsonl`` with matplotlib (Agg, no pyplot).

``log.jsonl`` holds one JSON object per line with a ``step`` and numeric values: training losses
(``D``, ``G_gan``, ...), ``lr``, ``images_per_s``, and evaluation metrics whose keys start with
``eval/`` (written by ``--eval-every``; they may sit on lines of their own). Torn or non-JSON lines
(a run killed mid-write) are skipped.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

SCHEDULE_KEYS = ("lr", "images_per_s")
METRIC_PREFIX = "eval/"


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``log.jsonl`` that have a numeric ``step`` (others are skipped)."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), (int, float)):
            records.append(rec)
    return records


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def series(records: Sequence[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    """``key -> (steps, values)`` for every numeric key except ``step``, in first-seen order."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for rec in records:
        for k, v in rec.items():
            if k != "step" and _numeric(v):
                steps, values = out.setdefault(k, ([], []))
                steps.append(float(rec["step"]))
                values.append(float(v))
    return out


def split_keys(keys: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(loss keys, schedule/speed keys, metric keys) of a run's log."""
    metrics = [k for k in keys if k.startswith(METRIC_PREFIX)]
    schedule = [k for k in keys if k in SCHEDULE_KEYS]
    losses = [k for k in keys if k not in metrics and k not in schedule]
    return losses, schedule, metrics


def _ema(values: Sequence[float], weight: float) -> list[float]:
    out, acc = [], None
    for v in values:
        acc = v if acc is None else weight * acc + (1 - weight) * v
        out.append(acc)
    return out


def plot_series(data: dict[str, tuple[list[float], list[float]]], keys: Sequence[str], path: str | Path, *,
                title: str, smooth: float = 0.0, raw_keys: Sequence[str] = (), columns: int = 3) -> Path:
    """One small panel per key (value against step), saved as a PNG (written atomically).

    ``smooth`` > 0 draws the raw values faintly and an exponential moving average on top (weight at
    most ``smooth``, less for short series; never for ``raw_keys``).
    """
    from matplotlib.figure import Figure  # lazy: only when a page is written; Figure needs no pyplot/backend

    if not keys:
        raise ValueError("nothing to plot")
    cols = min(columns, len(keys))
    rows = math.ceil(len(keys) / cols)
    width, height = 3.6 * cols, 2.5 * rows + 0.5
    fig = Figure(figsize=(width, height), dpi=90)  # a fixed layout: constrained layout doubles the drawing time
    fig.suptitle(title, y=1 - 0.12 / height)
    axes = fig.subplots(rows, cols, squeeze=False, gridspec_kw=dict(
        left=0.75 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - 0.75 / height,
        wspace=0.75 / 3.6 * cols / max(cols - 1, 1) if cols > 1 else 0.2, hspace=0.75 / 2.5 * rows / max(rows - 1, 1)))
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        steps, values = data[key]
        marker = "o" if len(values) < 30 else None
        weight = min(smooth, 1 - 8 / len(values)) if key not in raw_keys else 0.0  # ~ n/8-point window
        if weight > 0:
            ax.plot(steps, values, color="tab:blue", alpha=0.3, linewidth=0.8)
            ax.plot(steps, _ema(values, weight), color="tab:blue", linewidth=1.6)
        else:
            ax.plot(steps, values, color="tab:blue", linewidth=1.4, marker=marker, markersize=3)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.locator_params(nbins=4)  # fewer ticks: tick layout is most of matplotlib's drawing time
        ax.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    return path


# run folder -> (time.monotonic() when its last drawing ended, seconds that drawing took)
_LAST_DRAWING: dict[Path, tuple[float, float]] = {}


def write_run_curves(run_dir: str | Path, *, budget: float | None = 0.05) -> dict[str, Path]:
    """Draw ``plots/losses.png`` (losses, learning rate, speed) and ``plots/metrics.png`` (``eval/*``)
    from the run's ``log.jsonl``; returns the files by kind (nothing when the log is empty).

    Cost: about 0.3 s of CPU per drawing (matplotlib), plus its import once per process. Nothing is
    redrawn when the plots are newer than the log, nor, with ``budget``, when this process drew them
    so recently that redrawing would spend more than that fraction of the time since on drawing
    (pages written every few seconds, as in tests; a training page written every minute is always
    redrawn). ``budget=None`` always redraws a changed log.
    """
    run_dir = Path(run_dir)
    log_file, plots = run_dir / "log.jsonl", run_dir / "plots"
    existing = {name: plots / f"{name}.png" for name in ("losses", "metrics") if (plots / f"{name}.png").is_file()}
    if existing and log_file.is_file() and all(p.stat().st_mtime_ns > log_file.stat().st_mtime_ns
                                               for p in existing.values()):
        return existing  # nothing was logged since the last drawing
    last = _LAST_DRAWING.get(run_dir.resolve())
    if existing and budget is not None and last is not None and time.monotonic() - last[0] < last[1] / budget:
        return existing
    started = time.monotonic()
    data = series(read_log(log_file))
    losses, schedule, metrics = split_keys(list(data))
    written = {}
    if losses or schedule:
        written["losses"] = plot_series(data, losses + schedule, run_dir / "plots" / "losses.png",
                                        title="training (faint: logged values, bold: moving average)",
                                        smooth=0.9, raw_keys=schedule, columns=4)
    if metrics:
        written["metrics"] = plot_series(data, metrics, run_dir / "plots" / "metrics.png",
                                         title="evaluation metrics", columns=3)
    _LAST_DRAWING[run_dir.resolve()] = (time.monotonic(), time.monotonic() - started)
    return written
