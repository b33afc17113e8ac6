"""Translation quality of sesim and its baselines: same data, networks, steps and seeds for every method.

Trains each method (CycleGAN, CUT, FastCUT, GAN-only, FSeSim, LSeSim) on each task with
the same ResNet generator and 70x70 PatchGAN, image size, batch size, number of steps and seeds,
translates the held-out inputs and scores them:

* **scenes** -- the demo's labels -> photo task (``sesim.data.demo_scenes``; the true layout of
  every input is known). Structure kept: pixel accuracy and mean IoU of a per-pixel classifier
  trained only on real domain-B photos (``sesim.metrics.layout``) against the input's layout.
* **photos** -- real photographs bundled with scikit-image -> a fixed "negative night" look
  (``sesim.data.photo_task``; the correct translation of every test input is known). Structure
  kept: mean absolute error (0..255) and SSIM against the known target.
* **custom** (``--data DIR`` with trainA/trainB[/testA/testB]) -- no ground truth, so only
  realism and the do-nothing row.

Realism, on every task: Frechet distance and KID (x100) between the translations and held-out
real domain-B images, in the feature space of a small CNN trained only on real images
(``sesim.metrics.realism``; fitted once per task, seed 0, shared by all methods and seeds). These
are not comparable to published FID/KID numbers. Each task also gets a do-nothing row (output =
input) and, where the truth is known, an oracle row (the true target of each input).

Each training run is a subprocess (``python bench/quality.py --worker SPEC``); its peak memory is
the ``VmHWM`` line of ``/proc/self/status`` (peak resident set size) that the subprocess reads
when it has finished training and translating. (``ru_maxrss`` from ``os.wait4`` is not used on
Linux: it also counts the parent's memory that the child inherited at fork, before exec.) The
baseline of a process that only imported torch and sesim is measured the same way and reported
next to it. Wall time is measured inside the subprocess around ``sesim.train.train`` (network
construction, training and the final checkpoint; not the translation or scoring).

    python bench/quality.py --quick      # regression check: 40 steps, 1 seed, 6 methods, into bench/work/results-quick
    python bench/quality.py              # the full table: 400 steps, seeds 0,1,2, 6 methods; about an hour on 2 cores
    python bench/quality.py --size 256 --data DIR --steps 20000 --device cuda   # your data, on a GPU
    python bench/quality.py --snapshot-every 50  # also the best and the last snapshot of every run (bench/snapshot_scores.py)

(The ranges are this machine idle and shared with 2-3 other busy processes; ``--quick`` prints an
estimate of the full run's duration at the speed it measured.) Runs go 2 at a time with one torch
thread each on a 2-core CPU (``--jobs``, ``--threads``): several multi-threaded runs on a busy
machine slow each other down many times over.

Only the generator weights, config and log of each run are kept (``--keep-checkpoints`` keeps the
resumable ``checkpoint.pt`` too).

Writes ``bench/results/quality[-<data>].md`` (``--quick``: ``bench/work/results-quick/quality-quick.md``), ``.csv`` (one row per task, method and seed,
plus the aggregated rows) and ``.png`` (one panel per task: input and target rows, then one row per
method for the first seed, the first held-out inputs as columns). Work files (datasets, runs,
translations, logs) go to ``--out`` (``bench/work/quality``); finished runs found there with
the same settings are reused (``--fresh`` retrains them).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from sesim.config import TrainConfig


# ----------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class MethodSpec:
    key: str
    label: str
    presets: tuple[str, ...]  # applied after the shared base
    loss: dict = field(default_factory=dict)
    note: str = ""


METHODS: dict[str, MethodSpec] = {m.key: m for m in (
    MethodSpec("cyclegan", "CycleGAN", ("cyclegan",), note="preset `cyclegan`: two G, two D, cycle 10, identity 0.5, pool 50, lr 2e-4"),
    MethodSpec("cut", "CUT", ("cut",), note="preset `cut`: PatchNCE on G's encoder, identity NCE, lambda_NCE 1, lr 2e-4"),
    MethodSpec("fastcut", "FastCUT", ("fastcut",), note="preset `fastcut`: no identity NCE, lambda_NCE 10, flip equivariance, lr 2e-4"),
    MethodSpec("gan-only", "GAN only", (), {"structure": "none"}, note="sesim method, structure loss off (lambda = 0)"),
    MethodSpec("fsesim", "FSeSim", (), {"structure": "fsesim"}, note="sesim method, fixed pretrained self-similarity"),
    MethodSpec("lsesim", "LSeSim", (), {"structure": "lsesim"}, note="sesim method, learned heads (InfoNCE)"),
)}
METHOD_ORDER = list(METHODS)


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
#: --quick results go here unless --results is given: a regression check never overwrites committed results
QUICK_RESULTS = "bench/work/results-quick"


def base_config(size: int, *, small: bool) -> "TrainConfig":
    """The shared settings: the demo preset's data pipeline, networks and loss options."""
    from sesim.config import TrainConfig

    cfg = TrainConfig()
    # 64 px networks (ngf = ndf = 32, 6 blocks, nearest-neighbour upsampling in G), lr 2e-4, no pool, workers 0.
    # Every method trains this same generator and discriminator. The upsampling matters: with CycleGAN's transposed
    # convs (or the public code's blur), checkerboard / colour-noise artefacts dominated the translations at this budget
    # (docs/benchmarks.md).
    cfg.apply_preset("demo")
    if not small:  # the paper's networks for 256 px work on a GPU
        cfg.update("model", {"ngf": 64, "n_blocks": 9, "ndf": 64})
        cfg.update("data", {"workers": -1})
    cfg.update("data", {"size": size, "load_size": size, "preprocess": "crop"})
    return cfg


def method_config(spec: MethodSpec, *, data: Path, size: int, steps: int, seed: int, runs: Path, name: str,
                  device: str, small: bool, custom: bool, overrides: dict[str, str] | None = None) -> "TrainConfig":
    cfg = base_config(size, small=small)
    for preset in spec.presets:
        cfg.apply_preset(preset)
    cfg.update("loss", spec.loss)
    for key, value in (overrides or {}).items():  # --set: the same change for every method
        cfg.set_flat(key, value)
    if custom:  # arbitrary image sizes: the usual resize-and-crop
        cfg.update("data", {"preprocess": "resize_and_crop", "load_size": None})
    cfg.update("data", {"data": str(data)})
    cfg.update("run", {"steps": steps, "seed": seed, "runs": str(runs), "name": name, "device": device,
                       "checkpoint_every": steps, "sample_every": 10**9, "log_every": max(1, min(25, steps)),
                       "num_samples": 4})
    return cfg


def available_methods() -> set[str]:
    from sesim.methods import RECIPES

    return {method for method, _ in RECIPES}


# ----------------------------------------------------------------------------- images
def load_folder(folder: Path, size: int | None = None, limit: int | None = None) -> np.ndarray:
    """All images of a folder (sorted) as ``(N, size, size, 3)`` uint8: shorter side resized to
    ``size``, centre-cropped (no resizing when ``size`` is None and all images have one size)."""
    from sesim.data.images import list_images, load_image

    files = list_images(folder)
    if limit is not None and len(files) > limit:
        idx = np.random.default_rng(0).choice(len(files), size=limit, replace=False)
        files = [files[i] for i in sorted(idx)]
    out = []
    for path in files:
        img = load_image(path, 3)
        if size is not None and img.size != (size, size):
            s = size / min(img.size)
            img = img.resize((max(size, round(img.width * s)), max(size, round(img.height * s))), Image.BICUBIC)
            left, top = (img.width - size) // 2, (img.height - size) // 2
            img = img.crop((left, top, left + size, top + size))
        out.append(np.asarray(img, dtype=np.uint8))
    return np.stack(out)


# ----------------------------------------------------------------------------- tasks
@dataclass
class Task:
    """A dataset folder plus how to score translations of its ``testA`` images.

    ``fit()`` builds the scorers (structure scorer where the truth is known, realism features)
    from real images only; ``score(images)`` then returns every metric of a set of translations.
    """

    name: str
    title: str
    data: Path
    inputs: np.ndarray                      # testA (N, H, W, 3)
    reference: np.ndarray                   # held-out real B for realism
    targets: np.ndarray | None              # known/oracle outputs, or None
    make_structure: Callable[[], Callable[[np.ndarray], dict]] | None
    structure_columns: list[tuple[str, str, bool]]  # (key, header, higher is better)
    notes: list[str] = field(default_factory=list)
    structure: Callable[[np.ndarray], dict] | None = None
    extractor: Any = None
    reference_features: np.ndarray | None = None
    fit_seconds: float = 0.0

    def fit(self, *, size: int, feature_steps: int, device: str = "cpu") -> "Task":
        from sesim.metrics.realism import RealismFeatures

        t0 = time.perf_counter()
        if self.make_structure is not None:
            self.structure = self.make_structure()
        real_a = load_folder(self.data / "trainA", size, limit=2000)
        real_b = load_folder(self.data / "trainB", size, limit=2000)
        self.extractor = RealismFeatures(steps=feature_steps, seed=0, device=device).fit(real_a, real_b)
        self.reference_features = self.extractor.features(self.reference)
        self.fit_seconds = time.perf_counter() - t0
        return self

    def score(self, images: np.ndarray) -> dict:
        from sesim.metrics.realism import realism_scores

        out = dict(self.structure(images)) if self.structure is not None else {}
        r = realism_scores(self.extractor, images, None, reference_features=self.reference_features,
                           kid_subsets=10, kid_subset_size=100, seed=0)
        out.update({"fd": r["fd"], "kid_x100": 100 * r["kid"], "kid_std_x100": 100 * r["kid_std"]})
        return out


def scenes_task(root: Path, *, size: int, n_train: int, n_test: int) -> Task:
    from sesim.data.demo_scenes import CLASSES, load_layouts, load_rgb_folder, make_demo_dataset, render_photo

    make_demo_dataset(root, size=size, n_train=n_train, n_test=n_test, seed=0)
    layouts = load_layouts(root / "layouts" / "testA")
    rng = np.random.default_rng(12345)
    oracle = np.stack([render_photo(lay, rng) for lay in layouts])

    def make_structure() -> Callable[[np.ndarray], dict]:
        from sesim.metrics.layout import PixelClassifier, mean_iou, pixel_accuracy

        classifier = PixelClassifier(len(CLASSES)).fit(load_rgb_folder(root / "trainB"),
                                                       load_layouts(root / "layouts" / "trainB"))

        def structure(images: np.ndarray) -> dict:
            pred = classifier.predict(images)
            return {"pixel_accuracy": pixel_accuracy(pred, layouts), "mean_iou": mean_iou(pred, layouts, len(CLASSES))}

        return structure

    return Task("scenes", "labels -> photo (synthetic scenes, known layout)", root, load_rgb_folder(root / "testA"),
                load_rgb_folder(root / "testB"), oracle, make_structure,
                [("pixel_accuracy", "pixel acc. ↑", True), ("mean_iou", "mean IoU ↑", True)],
                notes=["structure: a per-pixel classifier trained only on real domain-B photos labels each pixel of the "
                       "translation; pixel accuracy / mean IoU against the true layout of the input",
                       "oracle: a fresh photo rendering of each input's true layout"])


def photos_task(root: Path, *, size: int, n_train: int, n_test: int) -> Task:
    from sesim.data.demo_scenes import load_rgb_folder
    from sesim.data.photo_task import make_photo_dataset, target_errors

    make_photo_dataset(root, size=size, n_train=n_train, n_test=n_test, seed=0)
    targets = load_rgb_folder(root / "targets" / "testA")
    return Task("photos", "real photos -> 'negative night' look (skimage photos, known target)", root,
                load_rgb_folder(root / "testA"), load_rgb_folder(root / "testB"), targets,
                lambda: (lambda images: target_errors(images, targets)),
                [("target_l1", "L1 to target ↓", False), ("target_ssim", "SSIM to target ↑", True)],
                notes=["structure: mean absolute error (0..255) and SSIM of the translation against the known target "
                       "(the fixed transform applied to the input)", "oracle: the known target itself"])


def custom_task(data: Path, *, size: int) -> Task:
    notes = ["no ground truth: only realism is measured (and the do-nothing row)"]
    test_a = data / "testA" if (data / "testA").is_dir() else data / "trainA"
    ref = data / "testB" if (data / "testB").is_dir() else data / "trainB"
    if ref.name == "trainB":
        notes.append("no testB: the realism reference is trainB (the training images themselves)")
    if test_a.name == "trainA":
        notes.append("no testA: translations are of trainA images")
    return Task("custom", f"{data.name} (custom data)", data, load_folder(test_a, size, limit=256),
                load_folder(ref, size, limit=1000), None, None, [], notes=notes)


# ----------------------------------------------------------------------------- one training run
def worker(spec_path: str) -> None:
    """Child process: train one run, translate the held-out inputs, write timings as JSON."""
    os.environ.setdefault("SESIM_OFFLINE", "1")
    from sesim.config import TrainConfig
    from sesim.train import train
    from sesim.translate import translate_paths

    import torch

    spec = json.loads(Path(spec_path).read_text())
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    cfg = TrainConfig.from_dict(spec["config"])
    t0 = time.perf_counter()
    run = train(cfg, progress=False)
    train_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    translate_paths(run, spec["inputs"], spec["fake"], overwrite=True, progress=False, device=cfg.run.device)
    result = {"train_seconds": train_seconds, "translate_seconds": time.perf_counter() - t1,
              "steps": cfg.run.steps, "step_seconds": _step_seconds(Path(run) / "log.jsonl", cfg.run.batch_size),
              "run": str(run), "vmhwm_kb": _vmhwm_kb(), "threads": torch.get_num_threads()}
    try:
        if torch.cuda.is_available() and cfg.run.device != "cpu":
            result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    except Exception:  # pragma: no cover
        pass
    if not spec.get("keep_checkpoints"):  # the resume state (optimisers, D) is 4-10x the generator; not needed here
        (Path(run) / "checkpoint.pt").unlink(missing_ok=True)
    Path(spec["result"]).write_text(json.dumps(result, indent=2) + "\n")


def _step_seconds(log_file: Path, batch_size: int) -> float | None:
    """Steady-state seconds per training step from the run's ``log.jsonl`` (``images_per_s`` of each
    logged interval), leaving out the first interval (warm-up) when there are several."""
    try:
        lines = [json.loads(ln) for ln in log_file.read_text().splitlines() if ln.strip()]
    except (OSError, ValueError):
        return None
    intervals, prev = [], 0
    for d in lines:
        if d.get("images_per_s"):
            n = d["step"] - prev
            intervals.append((n, n * batch_size / d["images_per_s"]))
        prev = d.get("step", prev)
    if len(intervals) > 1:
        intervals = intervals[1:]
    steps = sum(n for n, _ in intervals)
    return sum(t for _, t in intervals) / steps if steps else None


def _vmhwm_kb() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def run_one(cfg, *, inputs: Path, fake: Path, log_path: Path, isolate: bool = True, threads: int | None = None,
            keep_checkpoints: bool = False) -> dict:
    """Train ``cfg`` (in a subprocess when ``isolate``), translate ``inputs`` into ``fake``; returns timings."""
    run_dir = Path(cfg.run.runs) / cfg.run.name
    spec_dir = log_path.parent
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec_path = spec_dir / f"{cfg.run.name}.spec.json"
    result_path = spec_dir / f"{cfg.run.name}.result.json"
    spec = json.loads(json.dumps({"config": cfg.to_dict(), "inputs": str(inputs), "fake": str(fake),
                                  "result": str(result_path), "threads": threads, "keep_checkpoints": keep_checkpoints}))
    if result_path.exists() and spec_path.exists() and json.loads(spec_path.read_text()) == spec \
            and (run_dir / "generator.safetensors").exists() and fake.is_dir():
        return {**json.loads(result_path.read_text()), "reused": True}
    for path in (run_dir, fake):
        if path.exists():
            shutil.rmtree(path)
    result_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    t0 = time.perf_counter()
    if isolate:
        with open(log_path, "w") as log:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
            if threads:
                env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
            proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path)],
                                    stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0 or not result_path.exists():
            tail = log_path.read_text()[-2000:] if log_path.exists() else ""
            raise RuntimeError(f"training {cfg.run.name} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
        result = json.loads(result_path.read_text())
        if result.get("vmhwm_kb"):
            peak_mb = result["vmhwm_kb"] / 1024
        else:  # no /proc: ru_maxrss (bytes on macOS), which may include the parent's RSS copied at fork
            peak_mb = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
    else:  # in this process (tests): no separate peak memory
        worker(str(spec_path))
        peak_mb = float("nan")
    result = json.loads(result_path.read_text())
    result.update({"peak_rss_mb": peak_mb, "process_seconds": time.perf_counter() - t0})
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


# ----------------------------------------------------------------------------- the benchmark
# Rough relative cost per step (CycleGAN trains two G and two D); the longest runs start first.
_COST = {"cyclegan": 3.0, "cut": 2.0, "lsesim": 1.5, "fastcut": 1.3, "fsesim": 1.1, "gan-only": 0.7}


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
    its row gets ``"snapshots"``, the best and last of each metric (:mod:`snapshot_scores`).
    """
    import torch
    from sesim.config import TrainConfig
    from sesim.data.demo_scenes import load_rgb_folder

    t_start = time.perf_counter()
    load_start = _loadavg()
    torch.set_num_threads(max(1, threads))
    out = Path(out)
    registered = available_methods()
    small = size <= 128
    skipped, runnable = [], []
    for key in methods:
        spec = METHODS[key]
        probe = TrainConfig()
        for p in spec.presets:
            probe.apply_preset(p)
        if probe.method not in registered:
            skipped.append(f"{spec.label} (method {probe.method!r} is not registered in sesim.methods.METHODS)")
        else:
            runnable.append(spec)
    if skipped:
        log("skipping: " + "; ".join(skipped))

    # 1. data
    task_objs: dict[str, Task] = {}
    for task_name in tasks:
        if task_name == "custom":
            task_objs[task_name] = custom_task(Path(data), size=size)
        else:
            builder = {"scenes": scenes_task, "photos": photos_task}[task_name]
            task_objs[task_name] = builder(out / task_name / "data", size=size, n_train=n_train, n_test=n_test)
    log(f"data ready ({time.perf_counter() - t_start:.0f} s)")

    # 2. training runs in subprocesses, longest first
    planned = []
    for task_name, task in task_objs.items():
        for spec in runnable:
            for seed in seeds:
                name = f"{task.name}-{spec.key}-s{seed}-{steps}"
                cfg = method_config(spec, data=task.data, size=size, steps=steps, seed=seed,
                                    runs=out / task.name / "runs", name=name, device=device, small=small,
                                    custom=task_name == "custom", overrides=overrides)
                if snapshot_every:
                    cfg.update("run", {"snapshot_every": snapshot_every})
                inputs = task.data / "testA" if (task.data / "testA").is_dir() else task.data / "trainA"
                if fresh:
                    (out / task.name / "logs" / f"{name}.result.json").unlink(missing_ok=True)
                planned.append((task_name, spec, seed, cfg, inputs, out / task.name / "fake" / name,
                                out / task.name / "logs" / f"{name}.log"))
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    futures = {}
    for item in sorted(planned, key=lambda it: -_COST.get(it[1].key, 1.0)):
        task_name, spec, seed, cfg, inputs, fake, log_path = item
        futures[(task_name, spec.key, seed)] = pool.submit(run_one, cfg, inputs=inputs, fake=fake, log_path=log_path,
                                                           isolate=isolate, threads=threads,
                                                           keep_checkpoints=keep_checkpoints)

    # 3. scorers (from real images only), meanwhile
    rows: list[dict] = []
    val_tasks: dict[str, Task | None] = {}
    for task in task_objs.values():
        task.fit(size=size, feature_steps=feature_steps, device=device)
        log(f"[{task.name}] scorers ready ({task.fit_seconds:.0f} s; held-out real A/B domain accuracy of the "
            f"realism CNN {task.extractor.domain_accuracy(task.inputs, task.reference):.2f})")
        if snapshot_every:
            val_tasks[task.name] = _snapshot_scores().validation_task(
                task, out / task.name / "val-data", size=size, n_val=n_test, load_custom=lambda d: load_folder(d, size))
        rows.append({"task": task.name, "method": "do-nothing", "label": "do-nothing (output = input)", "seed": None,
                     **task.score(task.inputs)})
        if task.targets is not None:
            rows.append({"task": task.name, "method": "oracle", "label": "oracle (true target)", "seed": None,
                         **task.score(task.targets)})

    # 4. collect and score the runs, in table order
    task_fakes: dict[str, dict[str, str]] = {t: {} for t in task_objs}
    for task_name, spec, seed, cfg, inputs, fake, log_path in planned:
        task = task_objs[task_name]
        base = {"task": task.name, "method": spec.key, "label": spec.label, "seed": seed}
        try:
            timing = futures[(task_name, spec.key, seed)].result()
        except Exception as err:  # a failed run is reported, the others go on
            log(f"[{task.name}] {spec.label} seed {seed} FAILED: {err}")
            rows.append({**base, "error": str(err)[:300]})
            continue
        images = load_folder(fake, size) if task_name == "custom" else load_rgb_folder(fake)
        scores = task.score(images[: len(task.inputs)])
        row = {**base, **scores, "steps": steps, "train_seconds": timing["train_seconds"],
               "seconds_per_step": timing.get("step_seconds") or timing["train_seconds"] / max(steps, 1),
               "process_seconds": timing.get("process_seconds", timing["train_seconds"]), "peak_rss_mb": timing["peak_rss_mb"],
               "reused": bool(timing.get("reused", False))}
        if "cuda_peak_mb" in timing:
            row["cuda_peak_mb"] = timing["cuda_peak_mb"]
        if snapshot_every:
            row["snapshots"] = _snapshot_scores().score_history(
                task, Path(cfg.run.runs) / cfg.run.name, val_task=val_tasks.get(task.name),
                work_dir=out / task.name / "snapshots" / cfg.run.name,
                load=(lambda d: load_folder(d, size)) if task_name == "custom" else load_rgb_folder, log=log)
        rows.append(row)
        task_fakes[task_name].setdefault(spec.key, str(fake))
        log(f"[{task.name}] {spec.label} seed {seed}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if not k.startswith("kid_std"))
            + f"; {timing['train_seconds']:.0f} s train, {row['peak_rss_mb']:.0f} MB peak" + (" (reused)" if row["reused"] else ""))
    pool.shutdown()

    task_info = {}
    for task_name, task in task_objs.items():
        task_info[task.name] = {
            "title": task.title, "notes": task.notes, "structure_columns": task.structure_columns,
            "fakes": task_fakes[task_name], "inputs": task.inputs, "targets": task.targets,
            "n_test": int(len(task.inputs)), "n_reference": int(len(task.reference)), "fit_seconds": task.fit_seconds,
            "feature_history": task.extractor.history[-1] if task.extractor.history else {},
        }
    settings = {"overrides": dict(overrides or {}),
                "antialias": str((overrides or {}).get("antialias", "false")).lower() in ("1", "true", "yes"),
                "upsample": (overrides or {}).get("upsample", "nearest"),
                "baseline_rss_mb": _baseline_rss_mb(), "size": size, "steps": steps, "seeds": list(seeds), "methods": [m.key for m in runnable],
                "skipped": skipped, "n_train": n_train, "n_test": n_test, "feature_steps": feature_steps,
                "device": device, "jobs": jobs, "threads": threads, "total_seconds": time.perf_counter() - t_start,
                "snapshot_every": snapshot_every,
                "backbones": _backbones(out, planned), "cpu_count": os.cpu_count(), "load_average_start": load_start,
                "load_average": _loadavg()}
    return {"rows": rows, "tasks": task_info, "settings": settings}


def _snapshot_scores():
    """bench/snapshot_scores.py: the best and the last snapshot of each run."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import snapshot_scores

    return snapshot_scores


def _baseline_rss_mb() -> float:
    """VmHWM of a fresh process that imports torch and sesim's training code (the floor of every run)."""
    code = ("import torch, sesim.train, sesim.translate; from pathlib import Path; "
            "print(next(int(l.split()[1]) for l in Path('/proc/self/status').read_text().splitlines() "
            "if l.startswith('VmHWM:')))")
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=300,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        return int(res.stdout.strip()) / 1024
    except (OSError, ValueError, subprocess.SubprocessError):
        return float("nan")


def _backbones(out: Path, planned: list) -> dict[str, dict]:
    """What each method's structure backbone resolved to, from the runs' ``config.json`` records
    (method key -> record; methods without a pretrained feature network are left out)."""
    found: dict[str, dict] = {}
    for _task, spec, _seed, cfg, *_ in planned:
        path = Path(cfg.run.runs) / cfg.run.name / "config.json"
        if spec.key in found or not path.is_file():
            continue
        record = json.loads(path.read_text()).get("resolved", {}).get("backbone")
        if record:
            found[spec.key] = {k: record.get(k) for k in ("description", "file", "sha256")}
    return found


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


# ----------------------------------------------------------------------------- aggregation
def _stats(values: list[float]) -> tuple[float, float]:
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return float("nan"), float("nan")
    mean = float(np.mean(v))
    std = float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
    return mean, std


METRIC_FORMAT = {"pixel_accuracy": 3, "mean_iou": 3, "target_l1": 1, "target_ssim": 3, "fd": 2, "kid_x100": 2}


def summarize(result: dict) -> list[dict]:
    """One row per (task, method): mean and sample std (ddof 1) over seeds of every metric."""
    rows = result["rows"]
    out = []
    keys = []
    for r in rows:
        k = (r["task"], r["method"])
        if k not in keys:
            keys.append(k)
    for task, method in keys:
        group = [r for r in rows if r["task"] == task and r["method"] == method and "error" not in r]
        errors = [r for r in rows if r["task"] == task and r["method"] == method and "error" in r]
        first = (group or errors)[0]
        s = {"task": task, "method": method, "label": first["label"], "n_seeds": len(group), "failed_seeds": len(errors)}
        metrics = [k for k in METRIC_FORMAT if group and k in group[0]]
        for k in metrics + ["train_seconds", "seconds_per_step", "process_seconds"]:
            if group and k in group[0]:
                s[k], s[k + "_std"] = _stats([r[k] for r in group])
        if group and "peak_rss_mb" in group[0]:
            s["peak_rss_mb"] = max(r["peak_rss_mb"] for r in group)
        if group and "steps" in group[0]:
            s["steps"] = group[0]["steps"]
        out.append(s)
    return out


def _fmt(s: dict, key: str, digits: int) -> str:
    if key not in s or s[key] is None or (isinstance(s[key], float) and math.isnan(s[key])):
        return "–"
    text = f"{s[key]:.{digits}f}"
    std = s.get(key + "_std")
    if std is not None and not math.isnan(std):
        text += f" ± {std:.{digits}f}"
    return text


def _better(a: dict, b: dict, key: str, higher: bool) -> str | None:
    """'better' / 'worse' of a vs b on ``key``; with several seeds only when the difference of the means
    exceeds the seed spread (sample std) of both, else 'within the seed spread'."""
    if key not in a or key not in b or math.isnan(a[key]) or math.isnan(b[key]):
        return None
    diff = a[key] - b[key]
    spread = max(a.get(key + "_std", float("nan")), b.get(key + "_std", float("nan")))
    if diff == 0:
        return "equal"
    if not math.isnan(spread) and abs(diff) <= spread:
        return "within the seed spread"
    return "better" if (diff > 0) == higher else "worse"


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


def write_outputs(result: dict, results_dir: Path, stem: str) -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.csv``, ``<stem>.json`` and ``<stem>.png`` into ``results_dir``."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(result)
    st = result["settings"]
    paths = {"md": results_dir / f"{stem}.md", "csv": results_dir / f"{stem}.csv",
             "json": results_dir / f"{stem}.json", "png": results_dir / f"{stem}.png"}

    # CSV: aggregated rows, then per-seed rows
    columns = ["kind", "task", "method", "label", "seed", "n_seeds", "steps"]
    metric_cols = []
    for k in METRIC_FORMAT:
        metric_cols += [k, k + "_std"]
    columns += metric_cols + ["kid_std_x100", "train_seconds", "train_seconds_std", "seconds_per_step",
                              "peak_rss_mb", "error"]
    with open(paths["csv"], "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for s in summary:
            w.writerow({"kind": "mean over seeds", **{k: _csv(v) for k, v in s.items()}})
        for r in result["rows"]:
            w.writerow({"kind": "per seed" if r["seed"] is not None else "reference", **{k: _csv(v) for k, v in r.items()}})

    # JSON (everything but the image arrays)
    tasks_json = {k: {kk: vv for kk, vv in v.items() if kk not in ("inputs", "targets")} for k, v in result["tasks"].items()}
    paths["json"].write_text(json.dumps({"settings": st, "summary": summary, "rows": result["rows"], "tasks": tasks_json},
                                        indent=2, default=_csv) + "\n")

    # Markdown
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
        lines += [f"## {task}: {info['title']}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
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
            lines.append("| " + " | ".join(cells) + " |")
        lines += [""] + [f"- {n}" for n in info["notes"]] + [
            f"- realism: FD and KID (×100; cubic-kernel unbiased MMD², 10 subsets of ≤ 100) between the {info['n_test']} "
            f"translations and {info['n_reference']} held-out real domain-B images, in the features of a small CNN trained "
            f"only on real A and B images (domain + rotation + degradation classification, {st['feature_steps']} steps, "
            f"scorers fitted in {info['fit_seconds']:.0f} s). Not comparable to published FID/KID.", ""]
        lines += _findings(summary, task, cols)
        lines += _snapshot_scores().markdown(result, task, cols) if st.get("snapshot_every") else []
    lines += ["## Settings and fairness", "",
              "- Shared by all methods: generator, discriminator, image size, batch size 1, steps, seeds, data order "
              "(a function of the seed), LR schedule (constant, then linear decay over the second half).",
              "- Per method, its preset's published hyperparameters; nothing was tuned on these tasks for this benchmark:"]
    lines += [f"  - {METHODS[k].label}: {METHODS[k].note}" for k in st["methods"]]
    ours = [METHODS[k].label for k in ("gan-only", "fsesim", "lsesim") if k in st["methods"]]
    lines += [f"  - {' / '.join(ours) or 'The sesim rows'} use the `demo` preset's loss settings ({_demo_loss_words()}). "
              "Those settings were chosen by sesim's authors on the demo task, i.e. the *scenes* task here, so the "
              "sesim rows had more attention on that task than the baselines did."]
    for key, record in st.get("backbones", {}).items():
        lines.append(f"- Structure backbone of {METHODS[key].label}: {record['description']}"
                     + (f", `{Path(record['file']).name}` (SHA-256 `{record['sha256'][:16]}…`)" if record.get("file")
                        else " (randomly initialised)") + ".")
    lines += [
              f"- Peak memory: `VmHWM` (peak resident set size, from `/proc/self/status`) of each training "
              f"subprocess, read by the subprocess when it is done; it includes the Python interpreter and torch: a "
              f"process that only imports torch and sesim peaks at {st['baseline_rss_mb']:.0f} MB here.",
              "- Wall time (*train s / run*): `sesim.train.train` inside the subprocess (network construction + "
              "training + final checkpoint), not the translation or scoring. *s / step*: steady-state seconds per "
              "training step from the run's `log.jsonl` (first logged interval left out).", ""]
    paths["md"].write_text("\n".join(lines) + "\n")
    write_grid(result, paths["png"], seeds=st["seeds"])
    return paths


def _demo_loss_words() -> str:
    from sesim.config import TrainConfig

    cfg = TrainConfig()
    cfg.apply_preset("demo")
    lc, o, pool = cfg.structure, cfg.optim, cfg.discriminator.pool_size
    return (f"lr {o.lr:g}, {'no image pool' if not pool else f'pool {pool}'}, backbone `{lc.backbone}` "
            f"with its default layers, {lc.num_queries} queries, {lc.patch_size}×{lc.patch_size} windows, "
            f"`{lc.feature_norm}` features, λ {lc.lambda_structure:g}")


def _findings(summary: list[dict], task: str, cols: list) -> list[str]:
    by = {s["method"]: s for s in summary if s["task"] == task and s["n_seeds"]}
    if "lsesim" not in by:
        return []
    keys = [(k, h, hi) for k, h, hi in cols] + [("fd", "FD", False), ("kid_x100", "KID", False)]
    one_seed = by["lsesim"]["n_seeds"] < 2
    lines = ["What came out, LSeSim against each other method " + (
        "(one seed: there is no spread to judge the differences by, so read them as anecdotes):" if one_seed else
        "(a difference counts only when it is larger than the seed spread of both):"), ""]
    for other in ("cut", "fastcut", "cyclegan", "fsesim", "gan-only"):
        if other not in by:
            continue
        verdicts = []
        for k, h, hi in keys:
            v = _better(by["lsesim"], by[other], k, hi)
            if v is not None:
                verdicts.append(f"{h.rstrip(' ↑↓')} {v}")
        lines.append(f"- vs {by[other]['label']}: " + "; ".join(verdicts))
    return lines + [""]


def _csv(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else round(v, 6)
    if isinstance(v, np.ndarray):
        return None
    return v


# ----------------------------------------------------------------------------- figure
def write_grid(result: dict, path: Path, *, seeds: list[int], n_cols: int = 6, scale: int = 2) -> None:
    """One panel per task: rows input, target (where known), then each method (first seed); columns =
    the first ``n_cols`` held-out inputs, enlarged ``scale`` times."""
    panels = []
    methods = [k for k in METHOD_ORDER if any(k in info["fakes"] for info in result["tasks"].values())]
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
    ap.add_argument("--tasks", default=None, help="comma-separated built-in tasks (default: scenes,photos)")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--methods", default=None, help=f"comma-separated, from: {', '.join(METHODS)}")
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
                                                    f"{QUICK_RESULTS} with --quick, so it never replaces committed results)")
    ap.add_argument("--name", default=None, help="file stem of the results (default: quality[-quick|-<data>])")
    ap.add_argument("--fresh", action="store_true", help="retrain runs even when finished ones are found in --out")
    ap.add_argument("--keep-checkpoints", action="store_true", help="keep each run's resumable checkpoint.pt")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="change a training option for every method, e.g. --set antialias=true (repeatable)")
    ap.add_argument("--snapshot-every", type=int, default=0, metavar="N",
                    help="train every run with generator snapshots every N steps and report, per run, the last and "
                         "the best snapshot of each metric (picked on a validation split: bench/snapshot_scores.py)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return

    mode = QUICK if args.quick else FULL
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip().replace("-", "_")] = value.strip()
    steps = args.steps or mode.steps
    seeds = list(mode.seeds) if args.seeds is None else [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds:
        ap.error("--seeds needs at least one seed, e.g. --seeds 0,1,2")
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else list(mode.methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if args.size % 4:
        ap.error("--size must be a multiple of 4")
    if args.snapshot_every < 0:
        ap.error("--snapshot-every must be >= 0 (0: no snapshots)")
    if args.data:
        tasks = ["custom"]
        stem = args.name or f"quality-{Path(args.data).resolve().name}" + (mode.suffix if args.quick else "")
    else:
        tasks = [t.strip() for t in (args.tasks or "scenes,photos").split(",")]
        bad = [t for t in tasks if t not in ("scenes", "photos")]
        if bad:
            ap.error(f"unknown task(s) {bad}; built-in tasks are scenes, photos (or use --data DIR)")
        stem = args.name or "quality" + mode.suffix + (f"-{args.size}" if args.size != 64 else "")
    os.environ.setdefault("SESIM_OFFLINE", "1")
    args.results = args.results or (QUICK_RESULTS if args.quick else "bench/results")
    out = Path(args.out) / (stem if stem != "quality" else "full")
    cores = os.cpu_count() or 1
    jobs = args.jobs or (max(1, min(4, cores)) if args.device == "cpu" else 1)
    threads = args.threads or max(1, cores // jobs)
    print(f"quality benchmark: tasks {tasks}, methods {methods}, seeds {seeds}, {steps} steps, {args.size} px -> "
          f"{args.results}/{stem}.*", flush=True)
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
    paths = write_outputs(result, Path(args.results), stem)
    print(paths["md"].read_text())
    print(f"total {result['settings']['total_seconds']:.0f} s; wrote " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
