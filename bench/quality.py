"""Translation quality of sesim and its baselines: same data, networks, steps and seeds for every method.

Trains each method (CycleGAN, CUT, FastCUT, GAN-only, FSeSim, LSeSim; ``lab.methods``) on each task
with the same ResNet generator and 70x70 PatchGAN, image size, batch size, number of steps and seeds,
translates the held-out inputs and scores them (``lab.tasks``):

* **scenes** -- the demo's labels -> photo task (the true layout of every input is known).
  Structure kept: pixel accuracy and mean IoU of a per-pixel classifier trained only on real
  domain-B photos against the input's layout.
* **photos** -- real photographs bundled with scikit-image -> a fixed "negative night" look
  (``lab.photo_task``; the correct translation of every test input is known). Structure kept:
  mean absolute error (0..255) and SSIM against the known target.
* **custom** (``--data DIR`` with trainA/trainB[/testA/testB]) -- no ground truth, so only
  realism and the do-nothing row.

Realism, on every task: Frechet distance and KID (x100) between the translations and held-out
real domain-B images, in the feature space of a small CNN trained only on real images
(``bench/lab/realism.py``; fitted once per task, seed 0, shared by all methods and seeds). These
are not comparable to published FID/KID numbers. Each task also gets a do-nothing row (output =
input) and, where the truth is known, an oracle row (the true target of each input).

Each training run is a subprocess (``lab.runner``); its peak memory is the ``VmHWM`` of that
subprocess, next to the baseline of a process that only imported torch and sesim. Wall time is
measured inside the subprocess around ``sesim.train.train`` (network construction, training and
the final checkpoint; not the translation or scoring).

    python bench/quality.py --quick      # regression check: 40 steps, 1 seed, 6 methods, into bench/work/results-quick
    python bench/quality.py              # the full table: 400 steps, seeds 0,1,2, 6 methods; about an hour on 2 cores
    python bench/quality.py --size 256 --data DIR --steps 20000 --device cuda   # your data, on a GPU
    python bench/quality.py --snapshot-every 50  # also the best and the last snapshot of every run (lab.snapshots)
    python bench/quality.py --render     # rewrite bench/results/quality.md from quality.json

(The ranges are this machine idle and shared with 2-3 other busy processes; ``--quick`` prints an
estimate of the full run's duration at the speed it measured.) Runs go 2 at a time with one torch
thread each on a 2-core CPU (``--jobs``, ``--threads``): several multi-threaded runs on a busy
machine slow each other down many times over.

Only the generator weights, config and log of each run are kept (``--keep-checkpoints`` keeps the
resumable ``checkpoint.pt`` too).

Writes ``bench/results/quality[-<data>].md`` (``--quick``: ``bench/work/results-quick/quality-quick.md``), ``.csv`` (one row per task, method and seed,
plus the aggregated rows), ``.json`` (what the report is rendered from) and ``.png`` (one panel per task: input and
target rows, then one row per method for the first seed, the first held-out inputs as columns). Work files (datasets,
runs, translations, logs) go to ``--out`` (``bench/work/quality``); finished runs found there with the same settings
are reused (``--fresh`` retrains them).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageDraw

from lab import paths, report, runner, snapshots, stats
from lab.methods import METHODS, Method, build_config, option, unavailable
from lab.tasks import BUILT_IN, Task, custom_task, load_folder
from lab.timing import loadavg


@dataclass(frozen=True)
class Mode:
    steps: int
    seeds: tuple[int, ...]
    methods: tuple[str, ...]
    n_train: int
    n_test: int
    feature_steps: int
    suffix: str


# --quick must finish in < 5 min and the full run in < 90 min on 2 CPU cores (see the timings in the report of a
# --quick run: seconds per step of each method with 2 runs at a time, 1 thread each).
ALL_METHODS = ("cyclegan", "cut", "fastcut", "gan-only", "fsesim", "lsesim")
QUICK = Mode(steps=40, seeds=(0,), methods=ALL_METHODS, n_train=200, n_test=64, feature_steps=200, suffix="-quick")
FULL = Mode(steps=400, seeds=(0, 1, 2), methods=ALL_METHODS, n_train=400, n_test=128, feature_steps=1500, suffix="")
METRIC_FORMAT = {"pixel_accuracy": 3, "mean_iou": 3, "target_l1": 1, "target_ssim": 3, "fd": 2, "kid_x100": 2}
# Rough relative cost per step (CycleGAN trains two G and two D); the longest runs start first.
_COST = {"cyclegan": 3.0, "cut": 2.0, "lsesim": 1.5, "fastcut": 1.3, "fsesim": 1.1, "gan-only": 0.7}


def base_settings(size: int, *, small: bool) -> dict[str, Any]:
    """On top of the ``demo`` preset, shared by every method: its data pipeline, networks and loss options.

    64 px networks (ngf = ndf = 32, 6 blocks, nearest-neighbour upsampling in G), lr 2e-4, no pool, workers 0.
    Every method trains this same generator and discriminator. The upsampling matters: with CycleGAN's transposed
    convs (or the public code's blur), checkerboard / colour-noise artefacts dominated the translations at this budget
    (docs/benchmarks.md). Above 128 px, the paper's networks (for a GPU)."""
    big = {} if small else {"ngf": 64, "n_blocks": 9, "ndf": 64, "workers": -1}
    return {**big, "size": size, "load_size": size, "preprocess": "crop"}


def method_config(spec: Method, *, data: Path, size: int, steps: int, seed: int, runs: Path, name: str,
                  device: str, small: bool, custom: bool, overrides: dict[str, str] | None = None,
                  snapshot_every: int = 0):
    """The demo preset + :func:`base_settings` + the method + ``--set`` overrides + this run's data and schedule."""
    run = dict(overrides or {})  # --set: the same change for every method
    if custom:  # arbitrary image sizes: the usual resize-and-crop
        run.update({"preprocess": "resize_and_crop", "load_size": None})
    run.update({"data": str(data), "steps": steps, "seed": seed, "runs": str(runs), "name": name, "device": device,
                "checkpoint_every": steps, "sample_every": 10**9, "log_every": max(1, min(25, steps)), "num_samples": 4})
    if snapshot_every:
        run["snapshot_every"] = snapshot_every
    return build_config(spec, presets=("demo",), base=base_settings(size, small=small), run=run)


def demo_loss_words() -> str:
    """The loss settings of the ``demo`` preset, in words."""
    cfg = build_config(presets=("demo",))
    pool, patch = option(cfg, "pool_size"), option(cfg, "patch_size")
    return (f"lr {option(cfg, 'lr'):g}, {'no image pool' if not pool else f'pool {pool}'}, backbone "
            f"`{option(cfg, 'backbone')}` with its default layers, {option(cfg, 'num_queries')} queries, "
            f"{patch}×{patch} windows, `{option(cfg, 'feature_norm')}` features, λ {option(cfg, 'lambda_structure'):g}")


# ----------------------------------------------------------------------------- the benchmark
def run_benchmark(*, out: Path, tasks: list[str], methods: list[str], seeds: list[int], steps: int, size: int = 64,
                  n_train: int = 400, n_test: int = 128, feature_steps: int = 400, data: Path | None = None,
                  device: str = "cpu", jobs: int = 1, threads: int = 1, isolate: bool = True, fresh: bool = False,
                  keep_checkpoints: bool = False, overrides: dict[str, str] | None = None, snapshot_every: int = 0,
                  log: Callable[[str], None] = print) -> dict:
    """Run every (task, method, seed); returns ``{"rows": [...], "tasks": {...}, "settings": {...}}``.

    Rows (one per task, method and seed, plus the do-nothing and oracle rows with ``seed=None``)
    hold the metrics, ``steps``, ``train_seconds``, ``seconds_per_step`` and ``peak_rss_mb``.
    Training runs go to ``jobs`` subprocesses at a time (``threads`` torch threads each) while this
    process fits the scorers. Methods not registered in ``sesim.methods.METHODS`` are skipped
    (listed in ``settings["skipped"]``). ``snapshot_every`` > 0: every run keeps generator snapshots and
    its row gets ``"snapshots"``, the best and last of each metric (:mod:`lab.snapshots`).
    """
    import torch

    from sesim.data.demo_scenes import load_rgb_folder

    t_start, load_start = time.perf_counter(), loadavg()
    torch.set_num_threads(max(1, threads))
    out = Path(out)
    small = size <= 128
    why_not = {k: unavailable(k) for k in methods}
    skipped = [why for why in why_not.values() if why]
    runnable = [METHODS[k] for k, why in why_not.items() if not why]
    if skipped:
        log("skipping: " + "; ".join(skipped))

    # 1. data
    task_objs: dict[str, Task] = {}
    for name in tasks:
        task_objs[name] = (custom_task(Path(data), size=size) if name == "custom" else
                           BUILT_IN[name](out / name / "data", size=size, n_train=n_train, n_test=n_test))
    log(f"data ready ({time.perf_counter() - t_start:.0f} s)")

    # 2. training runs in subprocesses, longest first
    planned = []
    for task_name, task in task_objs.items():
        for spec in runnable:
            for seed in seeds:
                name = f"{task.name}-{spec.key}-s{seed}-{steps}"
                cfg = method_config(spec, data=task.data, size=size, steps=steps, seed=seed,
                                    runs=out / task.name / "runs", name=name, device=device, small=small,
                                    custom=task_name == "custom", overrides=overrides, snapshot_every=snapshot_every)
                inputs = task.data / "testA" if (task.data / "testA").is_dir() else task.data / "trainA"
                if fresh:
                    (out / task.name / "logs" / f"{name}.result.json").unlink(missing_ok=True)
                planned.append((task_name, spec, seed, cfg, inputs, out / task.name / "fake" / name,
                                out / task.name / "logs" / f"{name}.log"))
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    futures = {}
    for task_name, spec, seed, cfg, inputs, fake, log_path in sorted(planned, key=lambda it: -_COST.get(it[1].key, 1.0)):
        futures[(task_name, spec.key, seed)] = pool.submit(runner.run_one, cfg, inputs=inputs, fake=fake,
                                                           log_path=log_path, isolate=isolate, threads=threads,
                                                           keep_checkpoints=keep_checkpoints)

    # 3. scorers (from real images only), meanwhile
    rows: list[dict] = []
    val_tasks: dict[str, Task | None] = {}
    for task in task_objs.values():
        task.fit(size=size, feature_steps=feature_steps, device=device)
        log(f"[{task.name}] scorers ready ({task.fit_seconds:.0f} s; held-out real A/B domain accuracy of the "
            f"realism CNN {task.extractor.domain_accuracy(task.inputs, task.reference):.2f})")
        if snapshot_every:
            val_tasks[task.name] = snapshots.validation_task(
                task, out / task.name / "val-data", size=size, n_val=n_test, load_custom=lambda d: load_folder(d, size))
        rows.append({"task": task.name, "method": "do-nothing", "label": "do-nothing (output = input)", "seed": None,
                     **task.score(task.inputs)})
        if task.targets is not None:
            rows.append({"task": task.name, "method": "oracle", "label": "oracle (true target)", "seed": None,
                         **task.score(task.targets)})

    # 4. collect and score the runs, in table order
    task_fakes: dict[str, dict[str, str]] = {t: {} for t in task_objs}
    backbones: dict[str, dict] = {}
    for task_name, spec, seed, cfg, inputs, fake, log_path in planned:
        task = task_objs[task_name]
        base = {"task": task.name, "method": spec.key, "label": spec.label, "seed": seed}
        try:
            timing = futures[(task_name, spec.key, seed)].result()
        except Exception as err:  # a failed run is reported, the others go on
            log(f"[{task.name}] {spec.label} seed {seed} FAILED: {err}")
            rows.append({**base, "error": str(err)[:300]})
            continue
        load = (lambda d: load_folder(d, size)) if task_name == "custom" else load_rgb_folder
        scores = task.score(load(fake)[: len(task.inputs)])
        row = {**base, **scores, "steps": steps, "train_seconds": timing["train_seconds"],
               "seconds_per_step": timing.get("step_seconds") or timing["train_seconds"] / max(steps, 1),
               "process_seconds": timing.get("process_seconds", timing["train_seconds"]), "peak_rss_mb": timing["peak_rss_mb"],
               "reused": bool(timing.get("reused", False))}
        if "cuda_peak_mb" in timing:
            row["cuda_peak_mb"] = timing["cuda_peak_mb"]
        run_dir = Path(option(cfg, "runs")) / option(cfg, "name")
        if snapshot_every:
            row["snapshots"] = snapshots.score_history(task, run_dir, val_task=val_tasks.get(task.name),
                                                       work_dir=out / task.name / "snapshots" / run_dir.name,
                                                       load=load, log=log)
        record = runner.backbone_record(run_dir)
        if record and spec.key not in backbones:
            backbones[spec.key] = {k: record.get(k) for k in ("description", "file", "sha256")}
        rows.append(row)
        task_fakes[task_name].setdefault(spec.key, str(fake))
        log(f"[{task.name}] {spec.label} seed {seed}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if not k.startswith("kid_std"))
            + f"; {timing['train_seconds']:.0f} s train, {row['peak_rss_mb']:.0f} MB peak" + (" (reused)" if row["reused"] else ""))
    pool.shutdown()

    task_info = {task.name: {
        "title": task.title, "notes": task.notes, "structure_columns": task.structure_columns,
        "fakes": task_fakes[name], "inputs": task.inputs, "targets": task.targets,
        "n_test": int(len(task.inputs)), "n_reference": int(len(task.reference)), "fit_seconds": task.fit_seconds,
        "feature_history": task.extractor.history[-1] if task.extractor.history else {},
    } for name, task in task_objs.items()}
    settings = {"overrides": dict(overrides or {}),
                "antialias": str((overrides or {}).get("antialias", "false")).lower() in ("1", "true", "yes"),
                "upsample": (overrides or {}).get("upsample", "nearest"),
                "baseline_rss_mb": runner.baseline_rss_mb(), "size": size, "steps": steps, "seeds": list(seeds),
                "methods": [m.key for m in runnable], "skipped": skipped, "n_train": n_train, "n_test": n_test,
                "feature_steps": feature_steps, "device": device, "jobs": jobs, "threads": threads,
                "total_seconds": time.perf_counter() - t_start, "snapshot_every": snapshot_every,
                "backbones": backbones, "demo_loss": demo_loss_words(), "cpu_count": os.cpu_count(),
                "load_average_start": load_start, "load_average": loadavg()}
    return {"rows": rows, "tasks": task_info, "settings": settings}


# ----------------------------------------------------------------------------- statistics
def summarize(result: dict) -> list[dict]:
    """One row per (task, method): mean and sample std (ddof 1) over seeds of every metric."""
    return stats.summarize(result["rows"], [*METRIC_FORMAT, "train_seconds", "seconds_per_step", "process_seconds"],
                           maximum=("peak_rss_mb",), first=("steps",))


def estimate_minutes(result: dict, mode: Mode, jobs: int) -> float | None:
    """Wall time of a run with ``mode``'s steps, seeds and methods on the same tasks, at the speed measured in
    ``result``: per run, steady-state seconds per step x steps + the measured per-run overhead (process
    start, network construction, checkpoint, translation), spread over ``jobs`` parallel runs; plus the
    scorers (realism CNN scaled to ``mode.feature_steps``) and the data."""
    st = result["settings"]
    summary = {(s["task"], s["method"]): s for s in summarize(result) if s.get("n_seeds") and "seconds_per_step" in s}
    total = 0.0
    for task, info in result["tasks"].items():
        for method in mode.methods:
            s = summary.get((task, method))
            if s is None:
                return None
            overhead = max(0.0, s["process_seconds"] - s["seconds_per_step"] * st["steps"])
            total += (s["seconds_per_step"] * mode.steps + overhead) * len(mode.seeds) / max(1, jobs)
        total += info["fit_seconds"] * mode.feature_steps / max(1, st["feature_steps"])
    return total / 60


# ----------------------------------------------------------------------------- outputs
def write_outputs(result: dict, results_dir: Path, stem: str) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` (rendered from the JSON), ``<stem>.csv`` and ``<stem>.png`` into ``results_dir``."""
    summary = summarize(result)
    tasks_json = {k: {kk: vv for kk, vv in v.items() if kk not in ("inputs", "targets")} for k, v in result["tasks"].items()}
    written = report.write(Path(results_dir), stem, {"settings": result["settings"], "summary": summary,
                                                     "rows": result["rows"], "tasks": tasks_json}, render, default=_csv)
    written.update(csv=Path(results_dir) / f"{stem}.csv", png=Path(results_dir) / f"{stem}.png")
    columns = ["kind", "task", "method", "label", "seed", "n_seeds", "steps",
               *(c for k in METRIC_FORMAT for c in (k, k + "_std")),
               "kid_std_x100", "train_seconds", "train_seconds_std", "seconds_per_step", "peak_rss_mb", "error"]
    with open(written["csv"], "w", newline="") as fh:  # aggregated rows, then per-seed rows
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for s in summary:
            w.writerow({"kind": "mean over seeds", **{k: _csv(v) for k, v in s.items()}})
        for r in result["rows"]:
            w.writerow({"kind": "per seed" if r["seed"] is not None else "reference", **{k: _csv(v) for k, v in r.items()}})
    write_grid(result, written["png"], seeds=result["settings"]["seeds"])
    return written


def _csv(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else round(v, 6)
    if isinstance(v, np.ndarray):
        return None
    return v


def _fmt(s: dict, key: str, digits: int) -> str:
    return stats.cell(s.get(key), s.get(key + "_std"), digits)


def render(result: dict) -> str:
    """The Markdown report of a ``quality.json``."""
    st, summary = result["settings"], summarize(result)
    lines = [f"# Translation quality: {', '.join(result['tasks'])}", "",
             f"{st['steps']} steps per run, batch 1, {st['size']} px, seeds {', '.join(map(str, st['seeds']))}; "
             f"every method uses the same ResNet generator and 70x70 PatchGAN "
             f"({'ngf = ndf = 32, 6 residual blocks' if st['size'] <= 128 else 'ngf = ndf = 64, 9 residual blocks'}"
             f"{', anti-aliased downsampling' if st.get('antialias') else ', strided downsampling'}, "
             f"{st.get('upsample', 'nearest')} upsampling). "
             f"Values: mean ± sample standard deviation over seeds (– when there is one seed). "
             f"Device {st['device']}, {st['cpu_count']} CPU cores; {st['jobs']} training run(s) at a time with "
             f"{st['threads']} torch thread(s) each; "
             f"load average (1, 5, 15 min) at the start {st.get('load_average_start')} and at the end {st['load_average']} "
             f"(other jobs share this machine; the benchmark itself adds about {st['jobs']}). "
             f"Whole benchmark: {st['total_seconds'] / 60:.1f} min.", ""]
    if st.get("overrides"):
        lines += ["Settings changed for every method (`--set`): "
                  + ", ".join(f"`{k}={v}`" for k, v in st["overrides"].items()) + ".", ""]
    if st["skipped"]:
        lines += [f"**Not run** (not available in this checkout): {'; '.join(st['skipped'])}.", ""]
    if st.get("full_estimate_minutes"):
        f = st["full_estimate"]
        lines += [f"Estimated duration of the full run (`python bench/quality.py`: {f['steps']} steps, seeds "
                  f"{', '.join(map(str, f['seeds']))}, {', '.join(f['methods'])}) at the speed measured in this run: "
                  f"**{st['full_estimate_minutes']:.0f} min** (steady-state seconds per step of each method × steps, plus "
                  f"each run's measured overhead, over {st['jobs']} parallel runs, plus the scorers).", ""]
    for task, info in result["tasks"].items():
        cols = info["structure_columns"]
        header = ["method"] + [h for _, h, _ in cols] + ["FD ↓", "KID×100 ↓", "steps", "train s / run", "s / step",
                                                           "peak RSS MB"]
        lines += [f"## {task}: {info['title']}", "", *report.table(header, [])]
        for s in summary:
            if s["task"] != task:
                continue
            if s["n_seeds"] == 0:
                lines.append(f"| {s['label']} | failed ({s['failed_seeds']} seeds; see the log) |" + " |" * (len(header) - 2))
                continue
            cells = [s["label"] + (f" ({s['failed_seeds']} seed(s) failed)" if s["failed_seeds"] else "")]
            cells += [_fmt(s, k, METRIC_FORMAT[k]) for k, _, _ in cols]
            cells += [_fmt(s, "fd", 2), _fmt(s, "kid_x100", 2)]
            if "train_seconds" in s:
                cells += [str(s["steps"]), _fmt(s, "train_seconds", 0), f"{s['seconds_per_step']:.3f}",
                          f"{s['peak_rss_mb']:.0f}" if not math.isnan(s["peak_rss_mb"]) else "–"]
            else:
                cells += ["–"] * 4
            lines.append(report.table_row(cells))
        lines += [""] + [f"- {n}" for n in info["notes"]] + [
            f"- realism: FD and KID (×100; cubic-kernel unbiased MMD², 10 subsets of ≤ 100) between the {info['n_test']} "
            f"translations and {info['n_reference']} held-out real domain-B images, in the features of a small CNN trained "
            f"only on real A and B images (domain + rotation + degradation classification, {st['feature_steps']} steps, "
            f"scorers fitted in {info['fit_seconds']:.0f} s). Not comparable to published FID/KID.", ""]
        lines += _findings(summary, task, cols)
        lines += snapshots.markdown(result, task, cols) if st.get("snapshot_every") else []
    lines += ["## Settings and fairness", "",
              "- Shared by all methods: generator, discriminator, image size, batch size 1, steps, seeds, data order "
              "(a function of the seed), LR schedule (constant, then linear decay over the second half).",
              "- Per method, its preset's published hyperparameters; nothing was tuned on these tasks for this benchmark:"]
    lines += [f"  - {METHODS[k].label}: {METHODS[k].note}" for k in st["methods"]]
    ours = [METHODS[k].label for k in ("gan-only", "fsesim", "lsesim") if k in st["methods"]]
    lines += [f"  - {' / '.join(ours) or 'The sesim rows'} use the `demo` preset's loss settings "
              f"({st.get('demo_loss') or demo_loss_words()}). "
              "Those settings were chosen by sesim's authors on the demo task, i.e. the *scenes* task here, so the "
              "sesim rows had more attention on that task than the baselines did."]
    for key, record in st.get("backbones", {}).items():
        lines.append(f"- Structure backbone of {METHODS[key].label}: {record['description']}"
                     + (f", `{Path(record['file']).name}` (SHA-256 `{record['sha256'][:16]}…`)" if record.get("file")
                        else " (randomly initialised)") + ".")
    lines += [f"- Peak memory: `VmHWM` (peak resident set size, from `/proc/self/status`) of each training "
              f"subprocess, read by the subprocess when it is done; it includes the Python interpreter and torch: a "
              f"process that only imports torch and sesim peaks at {st['baseline_rss_mb']:.0f} MB here.",
              "- Wall time (*train s / run*): `sesim.train.train` inside the subprocess (network construction + "
              "training + final checkpoint), not the translation or scoring. *s / step*: steady-state seconds per "
              "training step from the run's `log.jsonl` (first logged interval left out).", ""]
    return "\n".join(lines) + "\n"


def _findings(summary: list[dict], task: str, cols: list) -> list[str]:
    by = {s["method"]: s for s in summary if s["task"] == task and s["n_seeds"]}
    if "lsesim" not in by:
        return []
    keys = [*cols, ("fd", "FD", False), ("kid_x100", "KID", False)]
    one_seed = by["lsesim"]["n_seeds"] < 2
    lines = ["What came out, LSeSim against each other method " + (
        "(one seed: there is no spread to judge the differences by, so read them as anecdotes):" if one_seed else
        "(a difference counts only when it is larger than the seed spread of both):"), ""]
    for other in ("cut", "fastcut", "cyclegan", "fsesim", "gan-only"):
        if other in by:
            verdicts = [f"{h.rstrip(' ↑↓')} {v}" for k, h, hi in keys
                        if (v := stats.compare(by["lsesim"], by[other], k, hi)) is not None]
            lines.append(f"- vs {by[other]['label']}: " + "; ".join(verdicts))
    return lines + [""]


# ----------------------------------------------------------------------------- figure
def write_grid(result: dict, path: Path, *, seeds: list[int], n_cols: int = 6, scale: int = 2) -> None:
    """One panel per task: rows input, target (where known), then each method (first seed); columns =
    the first ``n_cols`` held-out inputs, enlarged ``scale`` times."""
    panels = []
    methods = [k for k in ALL_METHODS if any(k in info["fakes"] for info in result["tasks"].values())]
    for task, info in result["tasks"].items():
        inputs = info["inputs"][:n_cols]
        rows: list[tuple[str, list[np.ndarray | None]]] = [("input", list(inputs))]
        if info["targets"] is not None:
            rows.append(("target", list(info["targets"][:n_cols])))
        for key in methods:
            fake = info["fakes"].get(key)
            if fake is None:
                rows.append((METHODS[key].label, [None] * len(inputs)))
                continue
            files = sorted(Path(fake).glob("*.png"))[:n_cols]
            rows.append((METHODS[key].label + f" (seed {seeds[0]})" if len(seeds) > 1 else METHODS[key].label,
                         [np.asarray(Image.open(f).convert("RGB")) for f in files]))
        panels.append((f"{task}: {info['title']}", rows))
    cell = max(p[1][0][1][0].shape[0] for p in panels) * scale if panels else 64
    label_w, pad, title_h = 120, 2, 14
    width = label_w + max(len(p[1][0][1]) for p in panels) * (cell + pad) + pad
    height = sum(title_h + len(rows) * (cell + pad) + 6 for _, rows in panels)
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    y = 0
    for title, rows in panels:
        draw.text((4, y + 1), title, fill=(0, 0, 0))
        y += title_h
        for label, images in rows:
            draw.text((4, y + cell // 2 - 6), label, fill=(0, 0, 0))
            for c, im in enumerate(images):
                x = label_w + pad + c * (cell + pad)
                if im is None:
                    draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(235, 235, 235))
                    continue
                grid.paste(Image.fromarray(im).resize((cell, cell), Image.NEAREST), (x, y))
            y += cell + pad
        y += 6
    grid.save(path)


# ----------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help=f"regression check: {QUICK.steps} steps, seed {QUICK.seeds[0]}, {', '.join(QUICK.methods)}")
    ap.add_argument("--size", type=int, default=64, help="image size (64 on a CPU; 256 with --data on a GPU)")
    ap.add_argument("--data", default=None, help="your own dataset (trainA/, trainB/, optional testA/, testB/): "
                                                 "realism and the do-nothing row only")
    ap.add_argument("--tasks", type=report.comma_choices(BUILT_IN, " (or use --data DIR)"), default=None,
                    help="comma-separated built-in tasks (default: scenes,photos)")
    ap.add_argument("--seeds", type=report.comma_ints, default=None, help="comma-separated seeds, e.g. 0,1,2")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--methods", type=report.comma_choices(ALL_METHODS), default=None,
                    help=f"comma-separated, from: {', '.join(ALL_METHODS)}")
    ap.add_argument("--n-train", type=int, default=None, help="training images per domain of the built-in tasks")
    ap.add_argument("--n-test", type=int, default=None, help="held-out images of the built-in tasks")
    ap.add_argument("--feature-steps", type=int, default=None, help="training steps of the realism feature CNN")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto (training and the realism CNN)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="training runs at a time (default: all CPU cores, at most 4, on a CPU; 1 on a GPU)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads per run (default: cores / jobs; one thread per run avoids the heavy "
                         "slow-down of several multi-threaded runs on a shared machine)")
    ap.add_argument("--out", default="bench/work/quality", help="work folder (datasets, runs, translations, logs)")
    ap.add_argument("--results", default=None, help=f"where quality*.md/.csv/.json/.png go (default: bench/results; "
                                                    f"{paths.QUICK_RESULTS.relative_to(paths.ROOT)} with --quick, "
                                                    "which never writes into bench/results)")
    ap.add_argument("--name", default=None, help="file stem of the results (default: quality[-quick|-<data>])")
    ap.add_argument("--fresh", action="store_true", help="retrain runs even when finished ones are found in --out")
    ap.add_argument("--keep-checkpoints", action="store_true", help="keep each run's resumable checkpoint.pt")
    report.add_set_flag(ap, "change a training option for every method, e.g. --set antialias=true")
    ap.add_argument("--snapshot-every", type=int, default=0, metavar="N",
                    help="train every run with generator snapshots every N steps and report, per run, the last and "
                         "the best snapshot of each metric (picked on a validation split: lab.snapshots)")
    report.add_render_flag(ap, "--results")
    args = ap.parse_args(argv)

    mode = QUICK if args.quick else FULL
    overrides = dict(args.overrides)
    results = report.output_folder(ap, args.results, quick=args.quick)
    steps = args.steps or mode.steps
    seeds = list(mode.seeds) if args.seeds is None else args.seeds
    if not seeds:
        ap.error("--seeds needs at least one seed, e.g. --seeds 0,1,2")
    methods = args.methods or list(mode.methods)
    if args.size % 4:
        ap.error("--size must be a multiple of 4")
    if args.snapshot_every < 0:
        ap.error("--snapshot-every must be >= 0 (0: no snapshots)")
    if args.data:
        tasks = ["custom"]
        stem = args.name or f"quality-{Path(args.data).resolve().name}" + (mode.suffix if args.quick else "")
    else:
        tasks = args.tasks or list(BUILT_IN)
        stem = args.name or "quality" + mode.suffix + (f"-{args.size}" if args.size != 64 else "")
    if args.render:
        print(report.rerender(results, stem, render).read_text())
        return
    os.environ.setdefault("SESIM_OFFLINE", "1")
    out = Path(args.out) / (stem if stem != "quality" else "full")
    cores = os.cpu_count() or 1
    jobs = args.jobs or (max(1, min(4, cores)) if args.device == "cpu" else 1)
    threads = args.threads or max(1, cores // jobs)
    print(f"quality benchmark: tasks {tasks}, methods {methods}, seeds {seeds}, {steps} steps, {args.size} px -> "
          f"{results}/{stem}.*", flush=True)
    result = run_benchmark(out=out, tasks=tasks, methods=methods, seeds=seeds, steps=steps, size=args.size,
                           n_train=args.n_train or mode.n_train, n_test=args.n_test or mode.n_test,
                           feature_steps=args.feature_steps or mode.feature_steps,
                           data=Path(args.data) if args.data else None, device=args.device, fresh=args.fresh,
                           jobs=jobs, threads=threads, keep_checkpoints=args.keep_checkpoints, overrides=overrides,
                           snapshot_every=args.snapshot_every, log=lambda m: print(m, flush=True))
    if args.quick and not args.data:
        est = estimate_minutes(result, FULL, jobs)
        if est is not None:
            result["settings"]["full_estimate_minutes"] = est
            result["settings"]["full_estimate"] = {"steps": FULL.steps, "seeds": list(FULL.seeds), "methods": list(FULL.methods)}
    written = write_outputs(result, results, stem)
    print(written["md"].read_text())
    print(f"total {result['settings']['total_seconds']:.0f} s; wrote " + ", ".join(str(p) for p in written.values()))


if __name__ == "__main__":
    main()
