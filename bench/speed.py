"""How fast is sesim on a CPU? The structure loss, full training steps, inference and FLOPs, side by side.

One run measures, on this machine and in this order:

a. **The structure loss alone** (forward + backward into the translation, random VGG16, 256 random
   queries per layer): FSeSim and LSeSim with local (P = 32) and global maps, and the local rows
   once more with the per-query reference (``tests/reference_selfsim.py``: a Python loop slicing
   each query's window, as the authors' public code does). Then the map part without VGG: the
   kernel alone (maps of source and translation + cosine map distance, forward + backward) on
   precomputed relu3_1 / relu4_1-shaped features.
b. **A full training step** (batch 1, paper-size networks) of FSeSim, LSeSim, CUT, FastCUT and
   CycleGAN. Each method and size runs in a FRESH SUBPROCESS, so that its peak resident memory
   (``VmHWM`` from ``/proc/self/status``, read at the end of the child) is its own.
   The same two steps with the offline default backbone (ImageNet EfficientNet-Lite0, ``@effnet``)
   at every size.
c. **Inference** of the default generator (``translate_tensor``, ``torch.inference_mode``).
d. **Arithmetic**: FLOPs per call (``torch.utils.flop_counter.FlopCounterMode``, which counts
   matmul/convolution FLOPs, forward and backward, not element-wise work), and the measured float32
   matmul peak of the machine (a 2048 x 2048 ``torch.mm``), giving achieved GFLOP/s and the
   fraction of that peak.

Statistics (``lab.timing``): wall-clock median (p25-p75) of the timed repetitions after warm-up;
the first warm-up call runs under the FLOP counter. The implementations compared by a target (fast /
global / per-query maps) are timed *interleaved*, one call of each per round, and a speed-up is the
median over rounds of the per-round ratio: the per-query loop's time drifts by up to 3x between runs
on this kind of machine, and a ratio of two medians measured minutes apart inherits that drift. CPU
seconds (all threads of the process) are reported too: under contention compare CPU seconds measured
with ``OMP_WAIT_POLICY=PASSIVE``, not wall time (see the performance guide). Load from other
processes is measured from the kernel's counters (``/proc/stat`` before/after each measurement,
minus this process tree's own CPU time) and a warning is printed when it exceeds 0.1 cores.

e. **Structure backbones**: the structure loss (forward + backward, local windows) with VGG16 and
   with EfficientNet-Lite0 at their default layers, timed interleaved.

    python bench/speed.py            # the full run: about 10-12 minutes on an idle 2-core machine
    python bench/speed.py --quick    # smoke test (128 px, tiny repeats): about 2 minutes idle
    python bench/speed.py --render   # rewrite bench/results/speed.md from speed.json

Writes ``<out>/speed.md`` and ``<out>/speed.json`` (default ``bench/results``; with ``--quick``
``bench/work/results-quick``, so a smoke test never replaces the committed results).

(Until the issue-13 redesign the kernel rows also timed an optional row-band tiled kernel,
``sesim.ops.selfsim.TILE_WINDOWS``; it measured 1.16-1.37x slower than the default and was removed.
Reports of runs that measured it still render its rows.)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from lab import ROOT, report, runner
from lab.methods import METHODS as REGISTRY, build_config, option
from lab.timing import (
    FOREIGN_WARN,
    LoadMonitor,
    foreign_load,
    gflop_cell,
    load_cell,
    load_note,
    machine_info,
    matmul_peak,
    measure,
    measure_interleaved,
    rate_cells,
    read_status,
    say,
    spread_cell,
    summary,
)

sys.path.append(str(ROOT / "tests"))  # the per-query reference implementation of the maps
from reference_selfsim import PerQuerySpatialLoss, per_query_maps  # noqa: E402
from sesim import speedups  # noqa: E402
from sesim.losses.spatial import SpatialCorrelativeLoss  # noqa: E402
from sesim.factory import build_generator  # noqa: E402
from sesim.methods import build_method  # noqa: E402
from sesim.nets.init import init_weights  # noqa: E402
from sesim.ops.selfsim import map_distance, sample_queries, self_similarity, window_index  # noqa: E402
from sesim.translate import translate_tensor  # noqa: E402

logging.getLogger("sesim").setLevel(logging.ERROR)  # "VGG16 features are randomly initialised" x many

METHODS = ("fsesim", "lsesim", "cut", "fastcut", "cyclegan")
# FSeSim with one execution option changed, at the largest size only: what each option costs or saves here
VARIANTS = ("fsesim@antialias", "fsesim@channels_last", "fsesim@bf16")
BACKBONE_VARIANTS = ("fsesim@effnet", "lsesim@effnet")  # at every size: the offline default backbone
BACKBONES = {"vgg16": dict(backbone="vgg16", weights="random"),  # weights do not change timing
             "efficientnet-lite0": dict(backbone="efficientnet-lite0", weights="imagenet")}
#: ``<method>@<variant>``: its label and config options on top of the method (channels_last and bf16
#: change how the step runs instead, in child_train)
VARIANT = {"antialias": ("--antialias", {"antialias": True}), "channels_last": ("--channels-last", {}),
           "bf16": ("--precision bf16", {}),
           "effnet": ("EfficientNet-Lite0", {"backbone": "efficientnet-lite0", "backbone_weights": "imagenet"})}
PATCH = 32
#: the map implementations the loss and kernel sections compare: (maps, implementation) -> window size
IMPLS = {("local", "fast"): PATCH, ("global", "fast"): None, ("local", "per-query"): PATCH}
NUM_QUERIES = 256
LAYERS = {"relu3_1": (256, 4), "relu4_1": (512, 8)}  # channels, stride
# Reference implementations on this kind of machine, idle, default threading (performance guide,
# s/iter median). Their loss uses the public code's settings (relu3_1, relu4_1, relu4_3; global
# maps; tanh similarity; masked cosine), not sesim's paper defaults: context, not a target.
GUIDE_TRAIN = {("fsesim", 128): 0.552, ("fsesim", 256): 2.122, ("lsesim", 128): 1.317, ("lsesim", 256): 4.933,
               ("cut", 128): 1.315, ("cut", 256): 4.974, ("fastcut", 128): 0.741, ("fastcut", 256): 2.728}
GUIDE_INFER_256 = 2.60  # img/s, F-LSeSim test.py generator forward


# --------------------------------------------------------------------------------------------
# a. the structure loss, and the map kernel alone
# --------------------------------------------------------------------------------------------
def window_note(size: int, patch: int | None) -> str:
    parts = []
    for name, (_, stride) in LAYERS.items():
        s = size // stride
        local = patch is not None and window_index(torch.zeros(1, dtype=torch.long), s, s, patch) is not None
        parts.append(f"{name} {s}x{s}: " + (f"{patch}x{patch} window" if local else "global"))
    return "; ".join(parts)


def _source_and_translation(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed random ``(1, 3, size, size)`` images in [-1, 1]; the second requires grad (the translation)."""
    gen = torch.Generator().manual_seed(size)
    x = torch.rand(1, 3, size, size, generator=gen) * 2 - 1
    return x, (torch.rand(1, 3, size, size, generator=gen) * 2 - 1).requires_grad_()


def loss_step(loss_fn: SpatialCorrelativeLoss, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One forward + backward of ``loss_fn(x, y)`` into the translation ``y``, as a no-argument call."""

    def step():
        loss_fn(x, y).backward()
        y.grad = None
    return step


def bench_loss(sizes: list[int], warmup: int, repeats: int, min_time: float) -> list[dict]:
    rows = []
    for size in sizes:
        x, y = _source_and_translation(size)
        for structure in ("fsesim", "lsesim"):
            learned = structure == "lsesim"
            base = SpatialCorrelativeLoss(weights=None, patch_size=PATCH, learned=learned, num_queries=NUM_QUERIES)
            steps = {}
            for (window, impl), patch in IMPLS.items():
                cls = SpatialCorrelativeLoss if impl == "fast" else PerQuerySpatialLoss
                loss_fn = cls(weights=None, patch_size=patch, learned=learned, num_queries=NUM_QUERIES)
                loss_fn.load_state_dict(base.state_dict())
                steps[window, impl] = loss_step(loss_fn, x, y)

            def features_only(loss_fn=base):  # the floor: the loss's VGG16 (+ heads) work without any map
                with torch.no_grad():
                    loss_fn.structure_features(x)
                sum(f.mean() for f in loss_fn.structure_features(y).values()).backward()
                y.grad = None

            steps["-", "features only"] = features_only
            torch.manual_seed(0)
            for (window, impl), m in measure_interleaved(steps, warmup, repeats, min_time=min_time).items():
                rows.append({"size": size, "structure": structure, "window": window, "impl": impl,
                             "windows": "no maps" if window == "-" else window_note(size, IMPLS[window, impl]), **m})
                say(f"  loss {size:>4}px {structure:6} {window:6} {impl:9} {summary(m)}{_paired(m)}{load_note(m)}")
    return rows


def bench_kernel(sizes: list[int], warmup: int, repeats: int, min_time: float) -> list[dict]:
    rows = []
    for size in sizes:
        for structure, channels in (("fsesim", {"relu3_1": 256, "relu4_1": 512}),
                                    ("lsesim", {"relu3_1": 64, "relu4_1": 128})):  # LSeSim: head outputs, C/4
            gen = torch.Generator().manual_seed(size)
            feats = []
            for name, c in channels.items():
                s = size // LAYERS[name][1]
                fx = torch.rand(1, c, s, s, generator=gen)  # ReLU-like, non-negative
                fy = torch.rand(1, c, s, s, generator=gen).requires_grad_()
                feats.append((fx, fy))
            steps = {}
            for (window, impl), patch in IMPLS.items():

                def step(patch=patch, impl=impl):
                    total = 0.0
                    for fx, fy in feats:
                        h, w = fx.shape[-2:]
                        q = sample_queries(h, w, NUM_QUERIES)
                        if impl == "fast":  # sesim's kernel: whole-map product + gather
                            win = window_index(q, h, w, patch)
                            sx, sy = self_similarity(fx, q, win), self_similarity(fy, q, win)
                        else:
                            sx, sy = per_query_maps(fx, q, patch), per_query_maps(fy, q, patch)
                        total = total + map_distance(sx, sy).mean()
                    total.backward()
                    for _, fy in feats:
                        fy.grad = None

                steps[window, impl] = step
            torch.manual_seed(0)
            shapes = ", ".join(f"{n} {c}x{size // LAYERS[n][1]}x{size // LAYERS[n][1]}" for n, c in channels.items())
            for (window, impl), m in measure_interleaved(steps, warmup, repeats, min_time=min_time).items():
                rows.append({"size": size, "structure": structure, "window": window, "impl": impl,
                             "features": shapes, "windows": window_note(size, IMPLS[window, impl]), **m})
                say(f"  kernel {size:>4}px {structure:6} {window:6} {impl:9} {summary(m)}{_paired(m)}{load_note(m)}")
    return rows


def bench_backbones(sizes: list[int], warmup: int, repeats: int, min_time: float) -> list[dict]:
    """e. The structure loss with each backbone at its default layers, interleaved (local windows)."""
    rows = []
    for size in sizes:
        x, y = _source_and_translation(size)
        for structure in ("fsesim", "lsesim"):
            losses = {name: SpatialCorrelativeLoss(patch_size=PATCH, learned=structure == "lsesim",
                                                   num_queries=NUM_QUERIES, **kwargs)
                      for name, kwargs in BACKBONES.items()}
            steps = {name: loss_step(loss_fn, x, y) for name, loss_fn in losses.items()}
            torch.manual_seed(0)
            for name, m in measure_interleaved(steps, warmup, repeats, min_time=min_time).items():
                rows.append({"size": size, "structure": structure, "backbone": name,
                             "layers": ",".join(losses[name].layers), **m})
                say(f"  backbone {size:>4}px {structure:6} {name:18} {summary(m)}{_paired(m)}{load_note(m)}")
    return rows


# --------------------------------------------------------------------------------------------
# b. full training steps, one fresh subprocess per method and size
# --------------------------------------------------------------------------------------------
def label(method: str) -> str:
    base, _, variant = method.partition("@")
    return REGISTRY[base].label + (f" ({VARIANT[variant][0]})" if variant else "")


def method_config(method: str, size: int):
    """The default (paper-size) config with ``method`` (a key of METHODS, optionally with ``@<variant>``,
    see VARIANT) at ``size``, on a random VGG16 unless the variant changes the backbone."""
    method, _, variant = method.partition("@")
    options = VARIANT[variant][1] if variant else {}
    return build_config(method, run={"backbone": "vgg16", "backbone_weights": "random", **options,
                                     "size": size, "load_size": size})


def child_train(method: str, size: int, warmup: int, repeats: int, threads: int) -> None:
    """Runs in a fresh process: time ``repeats`` training steps and report peak memory."""
    torch.set_num_threads(threads)
    rss_import = read_status("VmRSS")
    torch.manual_seed(0)
    cfg = method_config(method, size)
    variant = method.partition("@")[2]
    model = build_method(cfg)
    model.train()
    gen = torch.Generator().manual_seed(1)
    batch = {"A": torch.rand(1, 3, size, size, generator=gen) * 2 - 1,
             "B": torch.rand(1, 3, size, size, generator=gen) * 2 - 1}
    if variant == "channels_last":
        speedups.to_channels_last(model)
        batch = speedups.batch_to_channels_last(batch)

    def step():
        with speedups.autocast(torch.device("cpu"), "bf16" if variant == "bf16" else "fp32"):
            return model.train_step(batch)

    m = measure(step, warmup, repeats)
    m.update(method=method, size=size, peak_rss=read_status("VmHWM"), rss_after_import=rss_import,
             rss_end=read_status("VmRSS"), threads=torch.get_num_threads(),
             params={k: sum(p.numel() for p in v.parameters()) for k, v in model.named_children()
                     if isinstance(v, torch.nn.Module)})
    runner.send_result(m)


def bench_train(sizes: list[int], warmup: int, repeats_for: Callable[[int], int], threads: int,
                only: set[str] | None = None) -> list[dict]:
    """``only``: the methods (``fsesim``, ``fsesim@effnet``, ...) to time; None = all."""
    rows = []
    for size in sizes:
        for method in [*METHODS, *BACKBONE_VARIANTS, *(VARIANTS if size == max(sizes) else ())]:
            if only is not None and method not in only:
                continue
            monitor = LoadMonitor().start()
            t0 = time.perf_counter()
            row = runner.child_result([str(Path(__file__).resolve()), "--child-train", method, str(size), "--warmup",
                                       str(warmup), "--repeats", str(repeats_for(size)), "--threads", str(threads)],
                                      f"training-step child for {method} at {size}px")
            total = time.perf_counter() - t0
            row.update(process_wall_s=total, foreign_cores_process=monitor.stop())
            rows.append(row)
            say(f"  train {size:>4}px {label(method):8} {summary(row)}  peak {_gb(row['peak_rss'])} GB"
                f"  (child {total:.0f} s){load_note(row)}")
    return rows


# --------------------------------------------------------------------------------------------
# c. inference, d. matmul peak
# --------------------------------------------------------------------------------------------
def bench_inference(sizes: list[int], warmup: int, repeats_for: Callable[[int], int], quick: bool = False) -> list[dict]:
    """Generator forward at each size; above 256 px the FLOP-counted call is the only warm-up.

    ``quick``: above 256 px, one cold timed call and FLOPs scaled from the smallest size (the
    generator is fully convolutional, so its FLOPs are proportional to the pixel count)."""
    torch.manual_seed(0)
    cfg = build_config()
    generator = init_weights(build_generator(cfg.mode, cfg.data, cfg.generator), option(cfg, "init"),
                             option(cfg, "init_gain")).eval()
    rows = []
    for size in sizes:
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(size)) * 2 - 1

        def run(x=x):
            with torch.inference_mode():
                return translate_tensor(generator, x)

        if quick and size > 256 and rows and rows[0]["flops"]:
            m = measure(run, 0, repeats_for(size), count_flops=False)
            m["flops"] = rows[0]["flops"] * size**2 // rows[0]["size"] ** 2
            m["flops_note"] = f"scaled from {rows[0]['size']} px; timed call not warmed up (--quick)"
        else:
            m = measure(run, warmup if size <= 256 else 1, repeats_for(size))
        rows.append({"size": size, "images_per_s": 1.0 / m["wall_s"], **m})
        say(f"  inference {size:>4}px {summary(m)}  {1 / m['wall_s']:.2f} img/s{load_note(m)}")
    return rows


def bench_matmul(n: int, warmup: int, repeats: int) -> dict:
    m = matmul_peak(n, warmup, repeats)
    say(f"  matmul {n}x{n} float32: {m['gflops_median']:.1f} GFLOP/s median, {m['gflops_best']:.1f} best{load_note(m)}")
    return m


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
def _paired(m: dict) -> str:
    return f"  [{m['paired_ratio']:.2f}x local fast, paired]" if "paired_ratio" in m else ""


def _gb(b: int | None) -> str:
    return "?" if b is None else f"{b / 1e9:.2f}"


def _guide(r: dict) -> str:
    ref = GUIDE_TRAIN.get((r["method"], r["size"]))
    return "–" if ref is None else f"{ref:.3f}"


def _vs_vgg16(r: dict) -> str:
    return f"{r['paired_ratio']:.2f}x" if r["backbone"] != "vgg16" and "paired_ratio" in r else "–"


def _verdict(ok: bool | None) -> str:
    return "info" if ok is None else "PASS" if ok else "FAIL"


def evaluate_targets(res: dict) -> list[dict]:
    """The project's speed/memory targets, checked against this run's numbers."""
    checks = []

    def add(target, measured, ok, note=""):
        checks.append({"target": target, "measured": measured, "pass": None if ok is None else bool(ok), "note": note})

    loss, kernel, train = res["loss"], res["kernel"], res["train"]

    def pick(rows, **kw):
        return next((r for r in rows if all(r[k] == v for k, v in kw.items())), None)

    for rows, what in ((kernel, "map kernel alone (maps + distance, fwd+bwd)"),
                       (loss, "whole structure loss incl. VGG16 fwd+bwd")):
        for r in rows:
            if r["impl"] != "per-query":
                continue
            fast = pick(rows, size=r["size"], structure=r["structure"], window="local", impl="fast")
            glob = pick(rows, size=r["size"], structure=r["structure"], window="global", impl="fast")
            # paired: median over interleaved rounds of the per-round ratio (see measure_interleaved)
            speedup = r.get("paired_ratio", r["wall_s"] / fast["wall_s"])
            ratio = 1 / glob["paired_ratio"] if "paired_ratio" in glob else fast["wall_s"] / glob["wall_s"]
            notes = [] if "window" in fast["windows"] else ["P=32 covers every map at this size: local = global"]
            if rows is loss:
                notes.append("both include the same VGG16 forward+backward, which the map kernel cannot change")
            note = "; ".join(notes)
            if rows is loss:  # the 10x target is the map kernel's; here the shared features bound the ratio
                floor = pick(rows, size=r["size"], structure=r["structure"], impl="features only")
                bound = r["paired_ratio"] / floor["paired_ratio"] if floor and "paired_ratio" in r else None
                add(f"{what}, {r['structure']} {r['size']} px: fast local vs per-query (context)",
                    f"{speedup:.1f}x paired (medians {r['wall_s']:.3f} s vs {fast['wall_s']:.3f} s)"
                    + ("" if bound is None else f"; at most {bound:.1f}x possible: features alone take "
                       f"{floor['wall_s']:.3f} s, fast maps add {fast['wall_s'] - floor['wall_s']:.3f} s"),
                    None, note)
            else:
                add(f"{what}, {r['structure']} {r['size']} px: fast local >= 10x faster than per-query",
                    f"{speedup:.1f}x paired (medians {r['wall_s']:.3f} s vs {fast['wall_s']:.3f} s)", speedup >= 10, note)
            add(f"{what}, {r['structure']} {r['size']} px: local / global cost <= 1.2x",
                f"{ratio:.2f}x paired (medians {fast['wall_s']:.3f} s vs {glob['wall_s']:.3f} s)", ratio <= 1.2, note)
    for size in sorted({r["size"] for r in train}):
        t = {r["method"]: r for r in train if r["size"] == size}
        if not all(k in t for k in METHODS):
            continue
        fs, ls, cut, cyc = t["fsesim"], t["lsesim"], t["cut"], t["cyclegan"]
        add(f"train {size} px: FSeSim step <= CUT step", f"{fs['wall_s']:.3f} s vs {cut['wall_s']:.3f} s "
            f"(CPU {fs['cpu_s']:.2f} vs {cut['cpu_s']:.2f} s)", fs["wall_s"] <= cut["wall_s"])
        add(f"train {size} px: FSeSim step <= 0.5 x CycleGAN step", f"{fs['wall_s'] / cyc['wall_s']:.2f}x "
            f"({fs['wall_s']:.3f} s vs {cyc['wall_s']:.3f} s; CPU {fs['cpu_s'] / cyc['cpu_s']:.2f}x)",
            fs["wall_s"] <= 0.5 * cyc["wall_s"])
        add(f"train {size} px: LSeSim step <= 1.3 x FSeSim step", f"{ls['wall_s'] / fs['wall_s']:.2f}x "
            f"({ls['wall_s']:.3f} s vs {fs['wall_s']:.3f} s; CPU {ls['cpu_s'] / fs['cpu_s']:.2f}x)",
            ls["wall_s"] <= 1.3 * fs["wall_s"])
        add(f"train {size} px: FSeSim peak memory < CUT's", f"{_gb(fs['peak_rss'])} vs {_gb(cut['peak_rss'])} GB",
            fs["peak_rss"] < cut["peak_rss"])
        add(f"train {size} px: FSeSim peak memory < CycleGAN's", f"{_gb(fs['peak_rss'])} vs {_gb(cyc['peak_rss'])} GB",
            fs["peak_rss"] < cyc["peak_rss"])
    return checks


def worstload_cell(res: dict) -> float:
    """The most cores other processes used during any one measurement of the run."""
    measurements = [*res["loss"], *res["kernel"], *res["train"], *res["inference"], *res.get("backbones", []),
                    res["matmul"]]
    return max((m.get("foreign_cores") or 0.0) for m in measurements)


def render(res: dict) -> str:
    """The Markdown report of a ``speed.json``."""
    mi, peak = res["machine"], res["matmul"]["gflops_median"]
    tiled = res.get("tiled_kernel", True)  # the row-band kernel existed until it was removed, having measured slower
    worst = worstload_cell(res)
    lines = [
        "# sesim speed (bench/speed.py)", "",
        f"Machine: {mi['cpu']}, {mi['usable_cpus']} usable of {mi['logical_cpus']} logical CPUs, "
        f"{mi['mem_total_gb']} GB RAM; torch {mi['torch']} ({mi['parallel_backend']}), "
        f"{mi['threads']} threads, OMP_WAIT_POLICY {mi['OMP_WAIT_POLICY']}; Python {mi['python']}; {mi['date']}.",
        f"Command: `{res['command']}` ({'quick smoke test' if res['args']['quick'] else 'full run'}); "
        f"total {res['total_s'] / 60:.1f} min.", "",
        "Times are wall-clock medians (p25–p75) of the timed repetitions after warm-up, batch 1; CPU is "
        "the median process CPU time (all threads). *Load* is the number of cores used by other processes "
        "during the measurement (from `/proc/stat`, minus this process tree's own CPU time). Rows compared "
        "by a speed-up target are timed interleaved (one call of each implementation per round); *paired* "
        "ratios are medians over rounds of the per-round ratio.", "",
    ]
    if max(worst, res["foreign_cores_total"] or 0) > FOREIGN_WARN:
        lines += [f"> **WARNING: the machine was not idle.** Other processes used {res['foreign_cores_total']:.2f} "
                  f"cores on average over the run (worst measurement {worst:.2f}). Wall times are not reliable "
                  "(libgomp threads spin-wait while their partner is descheduled); compare CPU seconds measured "
                  "with `OMP_WAIT_POLICY=PASSIVE`, or rerun on an idle machine.", ""]

    lines += ["## Targets", "", "Verdicts use wall-clock medians; they mean something only where *load* is near 0.", "",
              *report.table(["target", "measured", "result", "note"],
                            ([c["target"], c["measured"], _verdict(c["pass"]), c["note"]] for c in res["targets"]))]

    lines += ["", "## a. Structure loss alone (forward + backward into the translation)", "",
              f"`SpatialCorrelativeLoss(weights=None, ...)`: random VGG16 (weights do not change timing), "
              f"relu3_1 + relu4_1, {NUM_QUERIES} random queries per layer, L2 norm, cosine distance. "
              "*per-query* = the same loss with maps from `tests/reference_selfsim.per_query_maps` "
              "(Python loop slicing each query's window, as the authors' public code). LSeSim rows run the maps "
              "through the (frozen) 1x1-conv heads. *features only* = the same VGG16 (+ heads) forward/backward with no "
              "maps at all: the floor both implementations share, which bounds the whole loss's speed-up. At 128 px, P = 32 covers both maps, so local = global; at "
              "256 px only relu3_1 (64x64) has real 32x32 windows.", "",
              *report.table(["size", "structure", "maps", "implementation", "s/call", "CPU s", "GFLOP", "GFLOP/s",
                             "of peak", "load", "windows"],
                            ([r["size"], r["structure"], r["window"], r["impl"], spread_cell(r), f"{r['cpu_s']:.2f}",
                              gflop_cell(r), *rate_cells(r, peak), load_cell(r), r["windows"]] for r in res["loss"]))]

    lines += ["", "### The map part alone (no VGG16)", "",
              "Maps of source (no grad) and translation (grad) + cosine map distance, forward + backward to the "
              "translation's features; precomputed random non-negative features shaped like relu3_1/relu4_1 "
              "(LSeSim: the heads' C/4 outputs). *fast* = sesim's default kernel (one whole-map product + a gather "
              "of each window)" + ("; *tiled* = the optional row-band kernel (`sesim.ops.selfsim.TILE_WINDOWS = True`: "
                                   "each group of queries multiplied only with the rows holding its windows)" if tiled
                                   else "") + ".", "",
              *report.table(["size", "features", "maps", "implementation", "s/call", "CPU s", "GFLOP", "load",
                             "windows"],
                            ([r["size"], r["features"], r["window"], r["impl"],
                              f"{r['wall_s'] * 1e3:.1f} ms ({r['p25'] * 1e3:.1f}–{r['p75'] * 1e3:.1f})",
                              f"{r['cpu_s']:.3f}", gflop_cell(r), load_cell(r), r["windows"]] for r in res["kernel"]))]

    lines += ["", "## b. Full training step (batch 1, default paper-size networks)", "",
              "ResNet-9-block generator (ngf 64), 70x70 PatchGAN, each method's preset; random VGG16 for "
              "F/LSeSim. One `method.train_step(batch)` per call. Each method/size ran in a **fresh "
              "subprocess**; *peak RSS* is that process's `VmHWM` (`/proc/self/status`) read at its end "
              "(includes the ~import floor shown as *RSS after import*, and the FLOP-counted warm-up step). "
              "*reference code* = the guide's s/iter for the authors' F-LSeSim / CUT code on this kind of "
              "machine (its loss uses public-code settings: 3 layers, global maps) — context only.", "",
              *report.table(["size", "method", "s/step", "img/s", "CPU s/step", "GFLOP/step", "GFLOP/s", "of peak",
                             "peak RSS", "RSS after import", "load", "reference code s/iter"],
                            ([r["size"], label(r["method"]), spread_cell(r), f"{1 / r['wall_s']:.2f}",
                              f"{r['cpu_s']:.2f}", gflop_cell(r), *rate_cells(r, peak), f"{_gb(r['peak_rss'])} GB",
                              f"{_gb(r['rss_after_import'])} GB", load_cell(r), _guide(r)] for r in res["train"]))]

    lines += ["", "## c. Inference (default generator, `translate_tensor` under `torch.inference_mode`, batch 1)", "",
              *report.table(["size", "s/img", "img/s", "CPU s/img", "GFLOP/img", "GFLOP/s", "of peak", "load", "note"],
                            [])]
    for r in res["inference"]:  # (a row without a note ends "| |")
        lines.append(report.table_row([r["size"], spread_cell(r), f"{r['images_per_s']:.2f}", f"{r['cpu_s']:.2f}",
                                       gflop_cell(r), *rate_cells(r, peak), load_cell(r)])
                     + (f" {r['flops_note']} |" if r.get("flops_note") else " |"))
    lines.append(f"\nReference code (guide): {GUIDE_INFER_256} img/s at 256 px (generator forward).")

    if res.get("backbones"):
        lines += ["", "## e. Structure backbones", "",
                  "The structure loss alone (forward + backward into the translation, 32-position windows, "
                  f"{NUM_QUERIES} queries) with each backbone at its default layers, timed interleaved; *vs VGG16* is the "
                  "paired ratio of the rounds. The training steps with EfficientNet-Lite0 (`@effnet`, the offline "
                  "default) are in section b, with their peak memory.", "",
                  *report.table(["size", "structure", "backbone", "layers", "s/call", "vs VGG16", "CPU s", "GFLOP",
                                 "load"],
                                ([r["size"], r["structure"], r["backbone"], r["layers"], spread_cell(r), _vs_vgg16(r),
                                  f"{r['cpu_s']:.2f}", gflop_cell(r), load_cell(r)] for r in res["backbones"]))]
        for size in sorted({r["size"] for r in res["train"]}):
            t = {r["method"]: r for r in res["train"] if r["size"] == size}
            pairs = [(m, f"{m}@effnet") for m in ("fsesim", "lsesim") if m in t and f"{m}@effnet" in t]
            if pairs:
                lines.append("")
                lines += [f"- train {size} px, {REGISTRY[a].label}: VGG16 {t[a]['wall_s']:.3f} s / {_gb(t[a]['peak_rss'])} GB, "
                          f"EfficientNet-Lite0 {t[b]['wall_s']:.3f} s / {_gb(t[b]['peak_rss'])} GB "
                          f"({t[b]['wall_s'] / t[a]['wall_s']:.2f}x the time)" for a, b in pairs]

    mm = res["matmul"]
    lines += ["", "## d. Arithmetic", "",
              f"float32 matmul peak: `torch.mm` {mm['n']}x{mm['n']}, {mi['threads']} threads: "
              f"**{mm['gflops_median']:.1f} GFLOP/s** median ({mm['gflops_best']:.1f} best) over {mm['repeats']} "
              f"calls; load {load_cell(mm)}. The *of peak* columns divide achieved GFLOP/s by the median.",
              "FLOPs come from `torch.utils.flop_counter.FlopCounterMode` over one call (forward and backward "
              "matmuls and convolutions; element-wise work such as normalisation, activations and Adam is not "
              "counted). The per-query reference multiplies each query with its window only, so it does fewer FLOPs than the "
              "fast path, which computes the product with the whole map and then gathers the windows"
              + ("; the tiled path multiplies each group of queries with the band of rows holding their windows"
                 if tiled else "") + ".", ""]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke test: 128 px only, tiny repeats (~1-2 min idle)")
    p.add_argument("--sizes", default=None, help="training/loss sizes in px (default 128,256; --quick: 128)")
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions for every measurement "
                   "(default: per section, chosen for a ~8-10 minute run)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls before timing (default 2; --quick 1)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: %(default)s)")
    p.add_argument("--out", default=None, help="output folder for speed.md / speed.json (default bench/results; "
                   "bench/work/results-quick with --quick)")
    p.add_argument("--methods", default=None,
                   help="training-step rows to time, comma-separated (e.g. fsesim,fsesim@effnet; default: all)")
    p.add_argument("--sections", default="loss,kernel,train,inference,backbones",
                   help="comma-separated subset of loss,kernel,train,inference,backbones (the matmul peak always runs)")
    p.add_argument("--child-train", nargs=2, metavar=("METHOD", "SIZE"), help=argparse.SUPPRESS)
    report.add_render_flag(p, "--out")
    args = p.parse_args(argv)
    out = report.output_folder(p, args.out, quick=args.quick)
    if args.render:
        print(report.rerender(out, "speed", render).read_text())
        return

    torch.set_num_threads(args.threads)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    if args.child_train:
        child_train(args.child_train[0], int(args.child_train[1]), warmup, args.repeats or 1, args.threads)
        return

    # (the flags stay strings: the JSON records them as given)
    sizes = report.comma_ints(args.sizes or ("128" if args.quick else "128,256"))
    sections = set(report.comma_list(args.sections))
    only = set(report.comma_list(args.methods)) if args.methods else None
    known = {*METHODS, *BACKBONE_VARIANTS, *VARIANTS}
    if only and not only <= known:
        p.error(f"--methods: unknown {', '.join(sorted(only - known))} (known: {', '.join(sorted(known))})")
    # the kernel alone is cheap; include 256 px, the first size with real local windows
    kernel_sizes = sizes if max(sizes) >= 256 else sorted({*sizes, 256})
    infer_sizes = [256, 1024]

    def reps(full: int, quick: int) -> int:
        return args.repeats if args.repeats is not None else (quick if args.quick else full)

    def train_reps(size: int) -> int:
        return reps(10 if size <= 128 else 6 if size <= 256 else 3, 2)

    def infer_reps(size: int) -> int:
        return reps(10 if size <= 256 else 3, 2 if size <= 256 else 1)

    info = machine_info(args.threads)
    say(f"machine: {info['cpu']}; {info['usable_cpus']} usable CPUs ({info['logical_cpus']} logical); "
        f"torch {info['torch']} ({info['parallel_backend']}); {args.threads} threads; "
        f"OMP_WAIT_POLICY {info['OMP_WAIT_POLICY']}; {info['mem_total_gb']} GB RAM")
    say(f"sizes {sizes}; kernel sizes {kernel_sizes}; inference sizes {infer_sizes}; warm-up {warmup}"
        f"{'; QUICK smoke test' if args.quick else ''}")
    busy = foreign_load(1.0)
    if busy is not None and busy > FOREIGN_WARN:
        say(f"WARNING: before starting, other processes were using {busy:.2f} cores; timings will be noisy"
            + ("" if os.environ.get("OMP_WAIT_POLICY") else " (and with default OpenMP spin-waiting, slow: "
               "consider OMP_WAIT_POLICY=PASSIVE and compare CPU seconds)"))
    t_start = time.perf_counter()
    overall = LoadMonitor().start()
    res: dict = {"machine": info, "foreign_cores_before": busy, "args": vars(args), "command": " ".join([Path(sys.executable).name, *sys.argv]),
                 "loss": [], "kernel": [], "train": [], "inference": [], "tiled_kernel": False}

    say("d. float32 matmul peak")
    res["matmul"] = bench_matmul(2048, 2 if not args.quick else 1, reps(10, 3))
    if "loss" in sections:
        say("a. structure loss alone (forward + backward)")
        res["loss"] = bench_loss(sizes, warmup, reps(10, 2), 0.0 if args.quick else 3.0)
    if "kernel" in sections:
        say("a'. map kernel alone (no VGG16)")
        res["kernel"] = bench_kernel(kernel_sizes, warmup, reps(15, 3), 0.3 if args.quick else 3.0)
    if "train" in sections:
        say("b. full training step, one fresh subprocess per method and size")
        res["train"] = bench_train(sizes, warmup, train_reps, args.threads, only)
    if "inference" in sections:
        say("c. inference")
        res["inference"] = bench_inference(infer_sizes, warmup, infer_reps, args.quick)
    if "backbones" in sections:
        say("e. structure loss per backbone")
        res["backbones"] = bench_backbones(sizes, warmup, reps(10, 2), 0.0 if args.quick else 3.0)

    res["foreign_cores_total"] = overall.stop()
    res["total_s"] = time.perf_counter() - t_start
    res["targets"] = evaluate_targets(res)

    report.write(out, "speed", res, render, indent=1)

    say("\ntargets:")
    for c in res["targets"]:
        say(f"  {_verdict(c['pass'])}  {c['target']}: {c['measured']}" + (f"  ({c['note']})" if c["note"] else ""))
    worst = worstload_cell(res)
    if max(worst, res["foreign_cores_total"] or 0) > FOREIGN_WARN:
        say(f"\nWARNING: other processes used {res['foreign_cores_total']:.2f} cores on average during this run "
            f"(worst measurement {worst:.2f}); wall times are not reliable. Rerun on an idle machine, or compare "
            "CPU seconds with OMP_WAIT_POLICY=PASSIVE.")
    say(f"\nwrote {out / 'speed.md'} and {out / 'speed.json'} ({res['total_s'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
