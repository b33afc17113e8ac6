"""Score a run over its history: every snapshot scored, the **last** and the **best** reported, the
selection stated.

``sesim evaluate --run RUN --snapshots all|last|STEPS`` translates the run's test inputs with each
selected snapshot (:mod:`sesim.snapshots`; a run trained without ``--snapshot-every`` has only its
latest generator) and scores the translations with :func:`sesim.evaluate.evaluate_folders`; every
network is built once and the real images' features are computed once. ``--protocol NAME``
(:mod:`sesim.metrics.protocols`) fixes the image sets, size and metrics. Outputs, in ``--out``
(default ``RUN/sweep``)::

    sweep.json   settings, header (FID implementation, KID scale, counts, extractor + SHA-256),
                 per-step scores, the reference rows (e.g. Cityscapes real photos), the selection
    sweep.md     the header, one row per step with the best and last marked, best vs last per metric
    sweep.png    each metric against the step, best and last marked

**Best and last.** *Last* is the snapshot with the highest step. *Best* is, per metric, the step
with the best value (lowest, or highest for accuracies / precision / recall / density / coverage /
diversity; ties go to the earlier step); the *best snapshot* is the best step of ``--select-by``
(default: the first metric listed -- KID when there are fewer than 2048 images), and the table
reports every metric at that step. Picking the best on the test set and reporting the same test
numbers is optimistic (the test set chose the model, as in the papers that report their best
epoch); the outputs say so. ``--select-on DIR`` picks on a validation folder instead
(``DIR/valA`` + ``DIR/valB``, or ``testA``/``testB``; swapped for BtoA runs) and reports the test
scores at the step it chose.

**Resumable.** ``sweep.json`` is rewritten (atomically) after each snapshot; a rerun with the same
settings scores only the snapshots it does not hold yet (a snapshot is recognised by its step and
the SHA-256 of its file). Other settings need ``--overwrite`` or another ``--out``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import math
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from tqdm import tqdm

from . import __version__
from .checkpoint import write_text_atomic
from .config import TrainConfig
from .evaluate import (FEATURE_METRICS, FID_MIN_SAMPLES, EvaluateError, EvaluateOptions, build_feature_extractor,
                       build_structure_metrics, evaluate_folders, feature_names, format_value, header_lines)
from .metrics.features import Extractor
from .metrics.protocols import Protocol, prepare_folder
from .nets.backbones import file_sha256
from .run import Run
from .snapshots import Snapshot, SnapshotError, list_snapshots, select_snapshots

log = logging.getLogger("sesim")

__all__ = ["SWEEP_FILE", "sweep_run", "select_best_last", "higher_is_better", "markdown_sweep", "plot_sweep",
           "OPTIMISM_NOTE"]

SWEEP_FILE = "sweep.json"
OPTIMISM_NOTE = ("the best step was picked on the test set and is reported on the same test set: optimistic (the "
                 "test images chose the model, as when papers report their best epoch); compare it with the last "
                 "step, or pick on held-out images with --select-on DIR")
_HIGHER = ("seg_", "precision_", "recall_", "density_", "coverage_", "lpips_diversity")


def higher_is_better(metric: str) -> bool:
    """True for accuracies, precision/recall/density/coverage and diversity; distances are lower-is-better."""
    return metric.startswith(_HIGHER)


def _best_index(values: list[float | None], higher: bool) -> int | None:
    best = None
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if best is None or (v > values[best] if higher else v < values[best]):
            best = i
    return best


def select_best_last(history: list[dict], metrics: Iterable[str], *, select_on: str = "test",
                     report_on: str = "test", higher: dict[str, bool] | None = None) -> dict[str, dict]:
    """Best and last of each metric over a run's history.

    ``history``: ``[{"step": int, "test": {metric: value}, "val": {...}}, ...]`` (any order; a fold
    or a metric may be missing at a step). For each metric: ``last`` = the ``report_on`` value at
    the highest step; ``best`` = the ``report_on`` value at the step whose ``select_on`` value is
    best (see :func:`higher_is_better`; ties -> earlier step), with that ``selection_value``;
    ``gap`` = best - last (``None`` when either is missing); ``optimistic`` = selected on the
    reported fold. ``higher``: metric -> higher is better, for names :func:`higher_is_better` does not know.
    """
    rows = sorted(history, key=lambda h: h["step"])
    out: dict[str, dict] = {}
    for metric in metrics:
        up = (higher or {}).get(metric, higher_is_better(metric))
        picks = [r.get(select_on, {}).get(metric) for r in rows]
        reported = [r.get(report_on, {}).get(metric) for r in rows]
        i = _best_index(picks, up)
        last = next(((r["step"], v) for r, v in zip(reversed(rows), reversed(reported)) if v is not None), None)
        best = None if i is None else {"step": rows[i]["step"], "value": reported[i], "selection_value": picks[i],
                                       "selected_on": select_on}
        gap = (best["value"] - last[1]) if best and best["value"] is not None and last else None
        out[metric] = {"higher_is_better": up, "optimistic": select_on == report_on,
                       "last": None if last is None else {"step": last[0], "value": last[1]}, "best": best,
                       "gap": gap}
    return out


class _CachedExtractor(Extractor):
    """An :class:`Extractor` that remembers the features of the last few image lists it saw (the real
    sets recur for every snapshot)."""

    def __init__(self, ext: Extractor, size: int = 4) -> None:
        super().__init__(ext.tag, ext.description, ext.fn, ext.batch_size, ext.weights_file, ext.implementation)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._size = size

    def features(self, images: list) -> np.ndarray:
        digest = hashlib.sha1()
        for img in images:
            digest.update(str(tuple(img.shape)).encode())
            digest.update(img.numpy().tobytes())
        key = digest.hexdigest()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        feats = super().features(images)
        self._cache[key] = feats
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return feats


@dataclass
class _Fold:
    """One image set a snapshot is scored on: ``source`` (translated) vs ``real``, optional ``labels``."""

    name: str
    source: Path
    real: Path
    labels: Path | None = None


def _val_dirs(select_on: Path, cfg: TrainConfig) -> tuple[Path, Path]:
    from .data.unpaired import resolve_domain_dirs

    errors = []
    for phase in ("val", "test"):
        try:
            a, b = resolve_domain_dirs(select_on, phase=phase)
            return (b, a) if cfg.data.direction == "BtoA" else (a, b)
        except (FileNotFoundError, NotADirectoryError, ValueError) as err:
            errors.append(str(err).splitlines()[0])
    a, b = select_on / "A", select_on / "B"
    if a.is_dir() and b.is_dir():
        return (b, a) if cfg.data.direction == "BtoA" else (a, b)
    raise EvaluateError(f"--select-on {select_on}: needs valA/ and valB/ (or testA/ and testB/, or A/ and B/) "
                        f"inside ({errors[0]})")


def _folds(run_dir: Path, cfg: TrainConfig, out: Path, proto: Protocol | None, *, real: Path | None,
           labels: Path | None, select_on: Path | None, select_on_labels: Path | None) -> list[_Fold]:
    """The test fold (and the validation fold with ``select_on``), resized to the protocol's size."""
    from .data.unpaired import domain_dirs

    try:
        test_a, test_b = domain_dirs(cfg.data, "test")
    except (FileNotFoundError, ValueError) as err:
        raise EvaluateError(f"the run's data has no test set ({err}); sweep a run whose --data has testA/ and "
                            "testB/") from err
    folds = [_Fold("test", test_a, Path(real) if real else test_b, Path(labels) if labels else None)]
    if select_on is not None:
        va, vb = _val_dirs(Path(select_on), cfg)
        folds.append(_Fold("val", va, vb, Path(select_on_labels) if select_on_labels else None))
    if proto is None:
        return folds
    prepared = []
    for fold in folds:
        base = out / "data" / fold.name
        prepare_folder(fold.source, base / "source", proto.size)
        prepare_folder(fold.real, base / "real", proto.size)
        lab = None
        if fold.labels is not None and proto.segmentation_size is not None:
            lab = base / "labels"
            prepare_folder(fold.labels, lab, proto.segmentation_size, labels=True)
        prepared.append(_Fold(fold.name, base / "source", base / "real", lab or fold.labels))
    return prepared


def _settings(opts: EvaluateOptions, folds: list[_Fold], extractor: Extractor | None, select_by: str,
              run_dir: Path) -> dict:
    from .data.images import list_images

    fold_info = {f.name: {"source": str(f.source), "real": str(f.real), "labels": str(f.labels) if f.labels else None,
                          "n_source": len(list_images(f.source)), "n_real": len(list_images(f.real))} for f in folds}
    keep = ("fid_impl", "kid_subsets", "kid_subset_size", "k", "seed", "num_classes", "backbone", "backbone_weights",
            "dino_weights", "segmenter", "segmentation_size")
    return {"run": str(run_dir), "metrics": opts.metrics, "protocol": opts.protocol.name if opts.protocol else None,
            "folds": fold_info, "select_by": select_by,
            "extractor": None if extractor is None else {"description": extractor.description,
                                                          "weights_file": extractor.weights_file},
            **{k: _setting(getattr(opts, k)) for k in keep}}


def _setting(value: Any) -> Any:
    """A JSON-able identity of an option (a network object by its weights source, not its repr)."""
    if value is None or isinstance(value, (str, int, float, bool, list, tuple)):
        return value
    return f"{getattr(value, '__name__', type(value).__name__)} weights {getattr(value, 'weights_source', 'given')}"


def _load_existing(path: Path, settings: dict, overwrite: bool) -> dict:
    if not path.is_file() or overwrite:
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        raise EvaluateError(f"{path} is damaged (not JSON); pass --overwrite to score the run again") from None
    old = json.loads(json.dumps(data.get("settings", {})))
    new = json.loads(json.dumps(settings))
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise EvaluateError(f"{path} was made with other settings ({', '.join(diff)}); pass --overwrite to replace it "
                            "or choose another --out")
    return data


def _values(report: dict) -> dict[str, float]:
    return {name: e["value"] for name, e in report["metrics"].items() if isinstance(e.get("value"), (int, float))}


def sweep_run(run_dir: str | Path, out_dir: str | Path | None = None, options: EvaluateOptions | None = None, *,
              snapshots: str | Iterable[int] = "all", select_on: str | Path | None = None,
              select_on_labels: str | Path | None = None, select_by: str | None = None, real: str | Path | None = None,
              keep_translations: bool = False, overwrite: bool = False, progress: bool = True,
              evaluate: Callable[..., dict] = evaluate_folders, **changes: Any) -> dict:
    """Score the selected snapshots of ``run_dir`` (module doc); returns the sweep dict written to
    ``out_dir/sweep.json``. ``options`` with ``changes`` (:class:`~sesim.evaluate.EvaluateOptions`
    fields by name: ``metrics``, ``protocol``, ``labels`` of the test inputs, ``fid_impl``,
    ``kid_subsets``, ``backbone``, ``segmenter``, ``device``, ...) say how each snapshot is scored
    by ``evaluate``; ``extractor`` may be a built :class:`Extractor` (tests pass a small random one)."""
    from .translate import translate_paths

    run_dir = Path(run_dir)
    cfg = Run(run_dir).config
    opts = dataclasses.replace(options or EvaluateOptions(), **changes).resolve(cfg)
    proto = opts.protocol
    out = Path(out_dir) if out_dir is not None else run_dir / "sweep"
    try:
        chosen = select_snapshots(list_snapshots(run_dir), snapshots)
    except SnapshotError as err:
        raise EvaluateError(f"{run_dir}: {err}") from None
    folds = _folds(run_dir, cfg, out, proto, real=real, labels=opts.labels, select_on=select_on,
                   select_on_labels=select_on_labels)

    # networks, built once (the real images' features are cached)
    ext = None
    if any(m in FEATURE_METRICS for m in opts.metrics):
        ext = _CachedExtractor(build_feature_extractor(opts))
        opts.extractor = ext
    opts = build_structure_metrics(opts)
    if "segmentation" in opts.metrics:
        if folds[0].labels is None:
            raise EvaluateError("segmentation needs --labels DIR (class-id maps named like the test inputs)")
        if opts.segmenter is None:
            from .nets.drn import DRNSegmenter

            opts.segmenter = DRNSegmenter(opts.drn_weights or "auto", classes=opts.num_classes)
    order = _metric_order(opts, folds[0], ext)
    select_by = select_by or order[0]
    settings = _settings(opts, folds, ext, select_by, run_dir)
    path = out / SWEEP_FILE
    data = _load_existing(path, settings, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    data.update({"sesim_version": __version__, "run": str(run_dir), "settings": settings})
    data.setdefault("snapshots", {})
    data.setdefault("entries", {})

    def save() -> None:
        data["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")

    if "segmentation" in opts.metrics and "reference" not in data and proto is not None and proto.segmentation_size:
        reference = EvaluateOptions(metrics=["segmentation"], labels=folds[0].labels, device=opts.device,
                                    segmenter=opts.segmenter, segmentation_size=opts.segmentation_size,
                                    num_classes=opts.num_classes)
        data["reference"] = {"real photos": _values(evaluate(None, folds[0].real, reference))}

    pending = [s for s in chosen if _needs_scoring(data["snapshots"].get(str(s.step)), s, [f.name for f in folds])]
    bar = tqdm(total=len(chosen), initial=len(chosen) - len(pending), disable=not progress, unit="snapshot",
               desc="scoring snapshots", dynamic_ncols=True)
    try:
        for snap in pending:
            record = {"file": str(snap.path), "sha256": file_sha256(snap.path), "latest": snap.latest}
            step_dir = out / "translations" / f"step_{snap.step:07d}"
            for fold in folds:
                fake = step_dir / fold.name
                translate_paths(run_dir, fold.source, fake, weights=snap.path, overwrite=True, progress=False,
                                device=opts.device)
                # the real photos' upper bound is segmented once, above
                report = evaluate(fold.real, fake, dataclasses.replace(opts, source=fold.source, labels=fold.labels,
                                                                       segment_real=False))
                record[fold.name] = _values(report)
                if fold.name == "test":
                    data["header"] = report["header"]
                    data["entries"] = {k: {kk: vv for kk, vv in e.items() if kk != "value"}
                                       for k, e in report["metrics"].items()}
            if not keep_translations:
                shutil.rmtree(step_dir)
            data["snapshots"][str(snap.step)] = record
            save()
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(record["test"].items())[:3]})
    finally:
        bar.close()
    if not keep_translations and (out / "translations").is_dir() and not any((out / "translations").iterdir()):
        (out / "translations").rmdir()

    data["steps"] = [s.step for s in chosen]
    history = [{"step": s.step, **{f.name: data["snapshots"][str(s.step)].get(f.name, {}) for f in folds}}
               for s in chosen]
    fold_pick = "val" if select_on is not None else "test"
    data["metric_order"] = _resolve_order(order, history)
    data["selection"] = select_best_last(history, data["metric_order"], select_on=fold_pick, report_on="test")
    by = data["selection"].get(select_by)
    if by is None:
        raise EvaluateError(f"--select-by {select_by}: not among the scores ({', '.join(data['metric_order'])})")
    data["best_step"] = by["best"]["step"] if by["best"] else None
    data["last_step"] = max(h["step"] for h in history)
    data["selected_on"] = fold_pick
    data["optimistic"] = fold_pick == "test"
    data["note"] = (OPTIMISM_NOTE if data["optimistic"] else
                    f"the best step was picked on the validation images ({settings['folds']['val']['source']}) by "
                    f"{select_by} and is reported on the test set")
    save()
    (out / "sweep.md").write_text(markdown_sweep(data))
    plot_sweep(data, out / "sweep.png")
    return data


def _resolve_order(order: list[str], history: list[dict]) -> list[str]:
    """The metric names actually scored, in ``order``, then any other."""
    scored = list(dict.fromkeys(k for h in history for k in h.get("test", {})))
    return list(dict.fromkeys([m for m in order if m in scored] + scored))


def _needs_scoring(record: dict | None, snap: Snapshot, folds: list[str]) -> bool:
    if not record or any(f not in record for f in folds):
        return True
    if record.get("sha256") != file_sha256(snap.path):
        log.info("snapshot of step %d changed since it was scored (%s); scoring it again", snap.step, snap.path)
        return True
    return False


def _metric_order(opts: EvaluateOptions, fold: _Fold, ext: Extractor | None) -> list[str]:
    """Output names in report order (KID before FID under 2048 images; mIoU first of the
    segmentation scores), for the table and --select-by."""
    from .data.images import list_images

    names: list[str] = []
    if ext is not None:
        few = min(len(list_images(fold.source)), len(list_images(fold.real))) < FID_MIN_SAMPLES
        names += feature_names(opts.metrics, ext, few)
    for m in opts.metrics:
        if m == "segmentation":
            names += ["seg_mean_iou", "seg_pixel_accuracy", "seg_mean_class_accuracy"]
        elif m == "prdc":
            names += [f"{x}_{ext.tag}" for x in ("precision", "recall", "density", "coverage")]
        elif m == "struct":
            names.append(opts.struct_metric.name)  # struct_<backbone tag>
        elif m not in ("fid", "kid"):
            names.append(m)
    return names


def _json_default(value: Any) -> Any:
    """numpy numbers as numbers; anything else JSON does not know (paths, ...) as its text."""
    return value.item() if isinstance(value, (np.floating, np.integer)) else str(value)


def _fmt(value: Any) -> str:
    """A table cell: a missing value (None or NaN) as a dash."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format_value(value)


def _rows(data: dict) -> list[tuple[int, dict]]:
    """``(step, record)`` of the steps of this sweep, in step order."""
    return [(step, data["snapshots"][str(step)]) for step in sorted(data["steps"])]


def _label(name: str, data: dict) -> str:
    scale = (data.get("entries", {}).get(name, {}).get("details") or {}).get("scale")
    arrow = "↑" if higher_is_better(name) else "↓"
    return f"{name}{f' ×{scale}' if scale else ''} {arrow}"


def markdown_sweep(data: dict) -> str:
    """``sweep.md``: header, one row per step (best per metric in bold; best and last marked), best vs last."""
    st = data["settings"]
    cols = data["metric_order"]
    lines = [f"# sesim evaluate: the history of `{data['run']}`", ""]
    lines += header_lines({"header": data.get("header", {})})
    for name, fold in st["folds"].items():
        lines.append(f"- {name} images: {fold['n_source']} translated from `{fold['source']}`, {fold['n_real']} real "
                     f"in `{fold['real']}`" + (f", labels `{fold['labels']}`" if fold.get("labels") else ""))
    lines += [f"- snapshots scored: {len(data['steps'])}; best by **{st['select_by']}**, picked on the "
              f"**{data['selected_on']}** set", f"- **note**: {data['note']}", ""]
    sel = data["selection"]
    rows = _rows(data)
    lines += ["| step | " + " | ".join(_label(c, data) for c in cols) + " | |", "|---|" + "---|" * (len(cols) + 1)]
    for step_i, rec in rows:
        cells = []
        for c in cols:
            text = _fmt(rec.get("test", {}).get(c))
            best = (sel.get(c) or {}).get("best") or {}
            cells.append(f"**{text}**" if best.get("step") == step_i else text)
        marks = [m for m, on in (("best", step_i == data.get("best_step")), ("last", step_i == data.get("last_step")))
                 if on]
        lines.append(f"| {step_i} | " + " | ".join(cells) + f" | {' + '.join(marks)} |")
    for ref, values in (data.get("reference") or {}).items():
        lines.append(f"| {ref} (upper bound) | " + " | ".join(_fmt(values.get(c)) for c in cols) + " | |")
    if data["selected_on"] == "val":
        lines += ["", "Validation scores (used to pick the best step):", "",
                  "| step | " + " | ".join(_label(c, data) for c in cols) + " |", "|---|" + "---|" * len(cols)]
        lines += [f"| {step} | " + " | ".join(_fmt(rec.get("val", {}).get(c)) for c in cols) + " |" for step, rec in rows]
    lines += ["", f"Best vs last (test set; best of each metric picked on the {data['selected_on']} set):", "",
              "| metric | last (step) | best (step) | best − last |", "|---|---|---|---|"]
    for c in cols:
        s = sel.get(c)
        if not s:
            continue
        last, best = s["last"] or {}, s["best"] or {}
        lines.append(f"| {_label(c, data)} | {_fmt(last.get('value'))} ({last.get('step', '–')}) | "
                     f"{_fmt(best.get('value'))} ({best.get('step', '–')}) | {_fmt(s['gap'])} |")
    lines += ["", "Bold: the best step of each metric. *best*: the best step of "
              f"{st['select_by']}, where every metric of that row is reported.", ""]
    return "\n".join(lines)


def plot_sweep(data: dict, path: Path) -> None:
    """``sweep.png``: one panel per metric, value against step (test; validation dashed), best and last marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = data["metric_order"]
    rows = _rows(data)
    steps = [step for step, _ in rows]
    n = max(1, len(cols))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.0), squeeze=False)
    for ax, c in zip(axes[0], cols):
        for fold, style in (("test", "-o"), ("val", "--s")):
            ys = [rec.get(fold, {}).get(c, np.nan) for _, rec in rows]
            if not all(isinstance(y, float) and math.isnan(y) for y in ys):
                ax.plot(steps, ys, style, ms=3, lw=1.2, label=fold)
        s = data["selection"].get(c) or {}
        if s.get("best"):
            ax.plot([s["best"]["step"]], [s["best"]["value"]], "*", ms=13, color="tab:red",
                    label=f"best ({data['selected_on']})")
        if s.get("last"):
            ax.plot([s["last"]["step"]], [s["last"]["value"]], "o", ms=8, mfc="none", color="black", label="last")
        ax.set_title(_label(c, data), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{Path(data['run']).name}: scores by snapshot"
                 + (" (best picked on the test set: optimistic)" if data.get("optimistic") else ""), fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
