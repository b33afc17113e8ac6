"""sesim next to the authors' F-LSeSim code in ONE run: training-step time, FLOPs, peak memory, inference.

Needs the authors' code (``../shared/reference/F-LSeSim`` beside the repository, or ``--reference
PATH``; see ``bench/lab/reference_code.py`` for what is done to it: nothing but replacing
``torchvision.models.vgg16`` so that their ``vgg16(pretrained=True)`` loads the file sesim loads).
Without it this script prints ``SKIPPED`` and writes nothing.

Batch 1, at 128 and 256 px, the same thread count for everything. Per method (FSeSim: their
``--patch_size 64``, global maps; LSeSim: ``--learned_attn --augment --patch_size 32``), these
*sides* are timed **interleaved** in one process (one call each per round, the order rotating, so
that whatever the machine does meanwhile hits all alike):

* ``theirs``: ``set_input`` + ``optimize_parameters()`` of their ``sc`` model, configured from their
  released ``scripts/train_sc.sh`` through their own option parser, timed as their users get it
  (three VGG16 copies built, two unused at lambda 0; VGG16 weight gradients computed in the LSeSim
  head step with learning rate 0).
* ``sesim``: the same computation -- ``train_step`` of ``--preset [lsesim,]public-code`` with the
  same patch size, their generator, discriminator (and LSeSim heads) weights copied in
  (``copy_networks`` checks that the copies give the same outputs), VGG16 from the same file.
* ``sesim bf16``: the same under ``--precision bf16`` (bfloat16 autocast; an option, not the default).
* ``paper``: sesim's defaults, which follow the paper (CycleGAN's generator and discriminator with
  strided / transposed convolutions, VGG16 ``relu3_1, relu4_1``, 32 x 32 windows, the paper's
  LSeSim head step), VGG16 from the same file.
* ``default``: the same on sesim's offline pretrained default backbone, ImageNet EfficientNet-Lite0.

Identical VGG16 weights on every side: one fixed random-init torchvision VGG16 state dict (no
ImageNet VGG16 file exists on the benchmark machine; speed does not depend on weight values).

Reported per side: median and p25-p75 wall seconds, the median over rounds of the per-round ratio
side / theirs, CPU seconds (all threads), FLOPs per step attributed by the weights each matmul or
convolution uses (G, D, backbone, heads; the rest is the maps and InfoNCE), peak and steady RSS of
a **fresh subprocess** per side, method and size that builds only that side, and inference
images/s of the same generator (their ``model.test()`` against sesim's ``translate_tensor``).

    OMP_NUM_THREADS=1 python bench/reference_speed.py --threads 1          # bench/results/reference_code.{md,json}
    OMP_NUM_THREADS=1 python bench/reference_speed.py --threads 1 --quick  # bench/work/results-quick/
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from lab import report, runner
from lab.methods import METHODS, build_config
from lab.reference_code import (
    ReferenceMissing,
    ReferenceModel,
    copy_networks,
    find_reference,
    random_vgg16_file,
    reference_commit,
)
from lab.timing import attributed_flops, cpu_model, loadavg, measure_interleaved, quartiles, read_status

PATCH = {"fsesim": 64, "lsesim": 32}  # their --patch_size per method (lab.methods keys)
LABEL = {method: METHODS[method].label for method in PATCH}
SIDES = {
    "theirs": "their `sc` model, released script",
    "sesim": "`--preset [lsesim,]public-code`: the same computation, their weights",
    "sesim bf16": "the same, `--precision bf16`",
    "paper": "sesim's defaults (the paper's CycleGAN G/D, relu3_1 + relu4_1, 32x32 windows), VGG16",
    "default": "sesim's defaults on its offline backbone, ImageNet EfficientNet-Lite0",
}
INFERENCE_SIDES = {
    "theirs": "their `model.test()`",
    "sesim": "`translate_tensor`, the same generator and weights",
    "sesim bf16": "the same, `--precision bf16`",
    "paper": "sesim's default generator (CycleGAN's strided / transposed convs), fp32",
    "paper bf16": "the same, `--precision bf16`",
}
CATEGORIES = ("G", "D", "backbone", "heads", "maps & rest")
TARGETS = {"fsesim": 0.8, "lsesim": 0.5}  # training step, sesim / theirs
INFERENCE_TARGET = 1.5  # img/s, sesim / theirs, at 256 px
STEM = "reference_code"  # of the report and its JSON


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def say(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def images(size: int, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a, b = (torch.rand(1, 3, size, size, generator=g) * 2 - 1 for _ in range(2))
    jitter = lambda t: (t * (0.8 + 0.4 * torch.rand(1, 3, 1, 1, generator=g))).clamp(-1, 1)  # noqa: E731
    return {"A": a, "B": b, "A_aug": jitter(a), "B_aug": jitter(b), "A_paths": ["a.png"], "B_paths": ["b.png"]}


def sesim_config(side: str, method: str, size: int, vgg_file: Path):
    """The TrainConfig of a sesim side (see :data:`SIDES`): ``method`` as ``lab.methods`` defines it,
    on the side's backbone; the ``sesim`` sides add the ``public-code`` preset and their patch size."""
    same = side in ("sesim", "sesim bf16")
    run = {"backbone": "vgg16", "backbone_weights": str(vgg_file), "size": size, "load_size": size}
    if side == "default":
        run.update(backbone="efficientnet-lite0", backbone_weights="imagenet")
    if same:
        run.update(patch_size=PATCH[method], head_on_translation=method == "lsesim")
    return build_config(method, presets=("public-code",) if same else (), run=run)


def build_sesim(side: str, method: str, size: int, vgg_file: Path, device: torch.device):
    from sesim.methods import build_method

    model = build_method(sesim_config(side, method, size, vgg_file)).to(device)
    model.train()
    return model


def build_reference(folder: Path, vgg_file: Path, method: str, size: int, batch: dict,
                    device: torch.device) -> ReferenceModel:
    ref = ReferenceModel(folder, vgg_file, size, method == "lsesim", PATCH[method], device=str(device))
    ref.initialize(batch)
    return ref


def synced(fn: Callable[[], object], device: torch.device) -> Callable[[], object]:
    """``fn`` that returns only when the device has finished its work (CUDA runs asynchronously)."""
    if device.type != "cuda":
        return fn

    def call():
        out = fn()
        torch.cuda.synchronize(device)
        return out
    return call


def step_of(side: str, model, batch: dict, device: torch.device) -> Callable[[], object]:
    """One training iteration of a side as a no-argument call (their model moves its batch itself)."""
    if side == "theirs":
        return synced(lambda: model.step(batch), device)
    sesim_batch = {"A": batch["A"].to(device), "B": batch["B"].to(device)}
    if side.endswith("bf16"):
        from sesim import speedups

        def bf16_step():
            with speedups.autocast(device, "bf16"):
                return model.train_step(sesim_batch)
        return synced(bf16_step, device)
    return synced(lambda: model.train_step(sesim_batch), device)


def components(side: str, model) -> dict[str, nn.Module | list[nn.Module]]:
    """The networks of a side by FLOP category (the weights each convolution / matmul uses tell
    which one it belongs to)."""
    if side == "theirs":
        m = model.model
        heads = [m.criterionSpatial] if model.learned else []
        return {"G": m.netG, "D": m.netD, "backbone": [m.netPre, m.criterionStyle, m.criterionFeature],
                "heads": heads}
    heads = model.structure.heads
    return {"G": model.G, "D": model.D, "backbone": model.structure.extractor,
            "heads": [heads] if heads is not None else []}


def ratio_spread(walls: list[float], ref: list[float]) -> tuple[float, float, float]:
    return quartiles([a / b for a, b in zip(walls, ref)])


def side_times(m: dict) -> dict:
    """The timing of one side (a :func:`lab.timing.measure_interleaved` entry) as the JSON keeps it."""
    return {"wall_s": m["wall_s"], "p25_s": m["p25"], "p75_s": m["p75"], "cpu_s": m["cpu_s"], "walls": m["walls"]}


# --------------------------------------------------------------------------------------------
# the one-process comparison (time, FLOPs)
# --------------------------------------------------------------------------------------------
def compare_training(folder: Path, vgg_file: Path, method: str, size: int, sides: list[str], warmup: int,
                     repeats: int, device: torch.device) -> dict:
    batch = images(size)
    models, steps, flops, copied = {}, {}, {}, {}
    for side in sides:
        torch.manual_seed(0)
        models[side] = (build_reference(folder, vgg_file, method, size, batch, device) if side == "theirs"
                        else build_sesim(side, method, size, vgg_file, device))
    for side in sides:
        if side in ("sesim", "sesim bf16"):
            copied[side] = copy_networks(models["theirs"], models[side])
        steps[side] = step_of(side, models[side], batch, device)
        if not side.endswith("bf16"):  # autocast's weight copies hide which network a conv belongs to
            flops[side] = attributed_flops(steps[side], components(side, models[side]))
    m = measure_interleaved(steps, warmup, repeats, count_flops=False)
    row = {"method": method, "size": size, "patch": PATCH[method], "copied_output_diff": copied,
           "flops": flops, "load_after": (loadavg() or []), "foreign_cores": m["theirs"]["foreign_cores"],
           "sides": {}}
    for side in sides:
        out = {**side_times(m[side]), "repeats": m[side]["repeats"], "warmup": warmup}
        if side != "theirs":
            out["ratio_p25"], out["ratio"], out["ratio_p75"] = ratio_spread(m[side]["walls"], m["theirs"]["walls"])
        row["sides"][side] = out
    return row


def compare_inference(folder: Path, vgg_file: Path, size: int, sides: list[str], warmup: int, repeats: int,
                      device: torch.device) -> dict:
    from sesim.nets.init import init_weights
    from sesim.factory import build_generator
    from sesim.translate import translate_tensor

    batch = images(size)
    torch.manual_seed(0)
    ref = build_reference(folder, vgg_file, "fsesim", size, batch, device)
    same = build_sesim("sesim", "fsesim", size, vgg_file, device)
    copy_networks(ref, same)
    paper_cfg = sesim_config("paper", "fsesim", size, vgg_file)
    paper = init_weights(build_generator(paper_cfg.mode, paper_cfg.data, paper_cfg.generator), "normal", 0.02)
    paper = paper.to(device).eval()
    x = batch["A"].to(device)
    fns = {"theirs": lambda: ref.translate(x),
           "sesim": lambda: translate_tensor(same.G.eval(), x),
           "sesim bf16": lambda: translate_tensor(same.G.eval(), x, precision="bf16"),
           "paper": lambda: translate_tensor(paper, x),
           "paper bf16": lambda: translate_tensor(paper, x, precision="bf16")}
    fns = {k: synced(fns[k], device) for k in sides}
    with torch.no_grad():
        theirs = ref.translate(x).float()
        diffs = {}
        for side in ("sesim", "sesim bf16"):
            if side in fns:
                d = (fns[side]() - theirs).abs()
                diffs[side] = {"max": float(d.max()), "mean": float(d.mean())}
        if "paper" in fns and "paper bf16" in fns:
            d = (fns["paper bf16"]() - fns["paper"]()).abs()
            diffs["paper bf16"] = {"max": float(d.max()), "mean": float(d.mean()), "vs": "paper"}
    m = measure_interleaved(fns, warmup, repeats, count_flops=False)
    gen_of = {"theirs": ref.model.netG, "sesim": same.G, "paper": paper}
    with torch.no_grad():  # the same operations as inference mode, in which dispatch modes see nothing
        flops = {side: attributed_flops(lambda: gen_of[side](x), {"G": gen_of[side]})["total"]
                 for side in sides if side in gen_of}
    row = {"size": size, "output_diff": diffs, "flops": flops, "foreign_cores": m["theirs"]["foreign_cores"],
           "sides": {}}
    for side in sides:
        out = {**side_times(m[side]), "img_per_s": 1 / m[side]["wall_s"]}
        if side != "theirs":  # speed-up: their time / this side's time, per round
            inv = [1 / v for v in ratio_spread(m[side]["walls"], m["theirs"]["walls"])]
            out["speedup_p25"], out["speedup"], out["speedup_p75"] = sorted(inv)
        row["sides"][side] = out
    return row


# --------------------------------------------------------------------------------------------
# peak memory: one fresh process per side, method and size
# --------------------------------------------------------------------------------------------
def child(side: str, method: str, size: int, steps: int, folder: str, vgg_file: str, device: torch.device) -> None:
    rss_import = read_status("VmRSS")
    batch = images(size)
    torch.manual_seed(0)
    model = (build_reference(Path(folder), Path(vgg_file), method, size, batch, device) if side == "theirs"
             else build_sesim(side, method, size, Path(vgg_file), device))
    step = step_of(side, model, batch, device)
    rss_built = read_status("VmRSS")
    steady = []
    for _ in range(steps):
        step()
        steady.append(read_status("VmRSS"))
    gpu = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    runner.send_result({"side": side, "method": method, "size": size, "peak_rss": read_status("VmHWM"), "peak_gpu": gpu,
                        "rss_after_import": rss_import, "rss_built": rss_built,
                        "steady_rss": statistics.median(steady[1:] or steady), "steps": steps})


def measure_memory(folder: Path, vgg_file: Path, method: str, size: int, sides: list[str], steps: int,
                   threads: int, device: torch.device) -> dict:
    out = {}
    for side in sides:
        args = [str(Path(__file__).resolve()), "--child", side, method, str(size), str(steps), "--reference",
                str(folder), "--vgg-file", str(vgg_file), "--threads", str(threads), "--device", str(device)]
        out[side] = runner.child_result(args, f"memory child {side} {method} {size}")
    return out


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
def gb(b) -> str:
    return "—" if b is None else f"{b / 1e9:.2f}"


def gf(f) -> str:
    return "—" if f is None else f"{f / 1e9:.1f}"


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**not met**"


def render(res: dict) -> str:
    """The Markdown report of a ``reference_code.json``."""
    threads = res["threads"]
    gpu = any(m.get("peak_gpu") for mem in res["memory"].values() for m in mem.values())
    loads = [r.get("foreign_cores") for r in res["training"] + res["inference"] if r.get("foreign_cores") is not None]
    idle = f"at most {max(loads):.2f} cores" if loads else "not measured"
    lines = [
        "# sesim next to the authors' F-LSeSim code, one run", "",
        f"Authors' code: F-LSeSim `{res['reference_commit']}` (MIT), imported at run time, never part of sesim. "
        f"Machine: {res['machine']['cpu']}, {res['machine']['cores']} cores"
        + (f", GPU {res['machine']['gpu']} (device `{res['device']}`)" if res['machine'].get('gpu') else "")
        + f"; torch {res['machine']['torch']}; "
        f"**{threads} torch thread(s)** for every side. Load from other processes during the timed rounds: "
        f"{idle} (load average at start {res['load_start']}).", "",
        f"Command: `{res['command']}` ({res['elapsed_s'] / 60:.0f} min).", "",
        "Identical VGG16 weights on every VGG16 side (one fixed random-init torchvision state dict: no ImageNet "
        "VGG16 file on this machine; speed does not depend on weight values). Their iteration is timed as their "
        "users run it: three VGG16 copies built (two unused at lambda 0), VGG16 weight gradients computed in the "
        "LSeSim head step with learning rate 0, the real image's gradient computed in the D step "
        "(`real.requires_grad_()` with no gradient penalty).", "",
        "Sides:", "",
    ]
    lines += [f"- **{k}**: {v}" for k, v in SIDES.items()]
    lines += ["", "## Training step (batch 1)", "",
              "Seconds per iteration: median (p25–p75) of the interleaved rounds; *ratio* = median over rounds of "
              "side / theirs in the same round (below 1: faster than theirs).", "",
              "| method | px | side | s/iter | ratio to theirs (p25–p75) | CPU s | GFLOP | peak RSS GB | steady RSS GB |"
              + (" peak GPU GB |" if gpu else ""), "|---|---|---|---|---|---|---|---|---|" + ("---|" if gpu else "")]
    for r in res["training"]:
        mem = res["memory"].get(f"{r['method']}@{r['size']}", {})
        for side, s in r["sides"].items():
            ratio = "1" if side == "theirs" else f"**{s['ratio']:.2f}×** ({s['ratio_p25']:.2f}–{s['ratio_p75']:.2f})"
            f = r["flops"].get(side) or r["flops"].get(side.replace(" bf16", ""))
            m = mem.get(side, {})
            lines.append(f"| {LABEL[r['method']]} | {r['size']} | {side} | {s['wall_s']:.3f} ({s['p25_s']:.3f}–"
                         f"{s['p75_s']:.3f}) | {ratio} | {s['cpu_s']:.2f} | {gf(f and f['total'])} | "
                         f"{gb(m.get('peak_rss'))} | {gb(m.get('steady_rss'))} |" + (f" {gb(m.get('peak_gpu'))} |" if gpu else ""))
    lines += ["", "## Memory (resident set of a fresh process per side, GB)", "",
              "*import*: after importing torch and the code, before building anything (the same for every side); "
              "*built*: networks, optimisers and (theirs) the data-dependent first pass built; *steady*: median "
              "after a training step; *peak*: the process's high-water mark (VmHWM). *peak − import* is what "
              "each side adds to the same interpreter.", "",
              "| method | px | side | import | built | steady | peak | peak − import | ratio to theirs (peak / peak − import) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for key, mem in res["memory"].items():
        method, size = key.split("@")
        base = mem.get("theirs")
        for side, m in mem.items():
            own = m["peak_rss"] - m["rss_after_import"]
            ratio = "1" if side == "theirs" or base is None else (
                f"{m['peak_rss'] / base['peak_rss']:.2f} / {own / (base['peak_rss'] - base['rss_after_import']):.2f}")
            lines.append(f"| {LABEL[method]} | {size} | {side} | {gb(m['rss_after_import'])} | {gb(m['rss_built'])} | "
                         f"{gb(m['steady_rss'])} | {gb(m['peak_rss'])} | {gb(own)} | {ratio} |")
    lines += ["", "## Where the FLOPs go (GFLOP per training step, forward + backward)", "",
              "Attributed by the weights each convolution or matmul reads; *maps & rest* reads no network weights "
              "(self-similarity products, InfoNCE). bf16 sides compute the same FLOPs as their fp32 twin.", "",
              "| method | px | side | " + " | ".join(CATEGORIES) + " | total |", "|---|---|---|" + "---|" * (len(CATEGORIES) + 1)]
    for r in res["training"]:
        for side, f in r["flops"].items():
            lines.append(f"| {LABEL[r['method']]} | {r['size']} | {side} | "
                         + " | ".join(gf(f[c]) for c in CATEGORIES) + f" | {gf(f['total'])} |")
    if res["inference"]:
        lines += ["", "## Inference (batch 1)", "",
                  "Images per second: 1 / median seconds per image; *speed-up* = median over rounds of their time / "
                  "this side's time. Output difference to theirs (sesim sides) or to fp32 (paper bf16), in 8-bit "
                  "levels (x 127.5): max / mean.", ""]
        lines += [f"- **{k}**: {v}" for k, v in INFERENCE_SIDES.items()]
        lines += ["", "| px | side | img/s | speed-up over theirs (p25–p75) | GFLOP | output diff (levels) max / mean |",
                  "|---|---|---|---|---|---|"]
        for r in res["inference"]:
            for side, s in r["sides"].items():
                up = "1" if side == "theirs" else f"**{s['speedup']:.2f}×** ({s['speedup_p25']:.2f}–{s['speedup_p75']:.2f})"
                d = r["output_diff"].get(side)
                diff = "—" if d is None else f"{d['max'] * 127.5:.2f} / {d['mean'] * 127.5:.3f}"
                flops = r["flops"].get(side) or r["flops"].get(side.replace(" bf16", ""))
                lines.append(f"| {r['size']} | {side} | {s['img_per_s']:.2f} | {up} | {gf(flops)} | {diff} |")
    lines += ["", "## Targets (issue 12)", "", "| target | measured | verdict |", "|---|---|---|"]
    for r in res["training"]:
        limit = TARGETS[r["method"]]
        for side in ("sesim", "sesim bf16", "paper", "default"):
            if side in r["sides"]:
                v = r["sides"][side]["ratio"]
                lines.append(f"| {LABEL[r['method']]} step ≤ {limit}× theirs, {r['size']} px, {side} | {v:.2f}× | "
                             f"{verdict(v <= limit)} |")
        mem = res["memory"].get(f"{r['method']}@{r['size']}", {})
        if "theirs" in mem:
            for side in ("sesim", "paper", "default"):
                if side in mem:
                    v = mem[side]["peak_rss"] / mem["theirs"]["peak_rss"]
                    lines.append(f"| {LABEL[r['method']]} peak RSS ≤ 0.8× theirs, {r['size']} px, {side} | {v:.2f}× | "
                                 f"{verdict(v <= 0.8)} |")
    for r in res["inference"]:
        if r["size"] == 256:
            for side in r["sides"]:
                if side != "theirs":
                    v = r["sides"][side]["speedup"]
                    lines.append(f"| inference ≥ {INFERENCE_TARGET}× their img/s, 256 px, {side} | {v:.2f}× | "
                                 f"{verdict(v >= INFERENCE_TARGET)} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", default=None, help="folder of the authors' F-LSeSim code")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:N for the same table on a GPU "
                                                     "(peak GPU memory is then reported too)")
    ap.add_argument("--sizes", type=report.comma_ints, default="128,256")
    ap.add_argument("--methods", type=report.comma_choices(PATCH), default="fsesim,lsesim")
    ap.add_argument("--sides", type=report.comma_choices(SIDES), default=",".join(SIDES),
                    help="training sides, 'theirs' first")
    ap.add_argument("--inference-sides", type=report.comma_choices(INFERENCE_SIDES), default=",".join(INFERENCE_SIDES),
                    help="'theirs' first")
    ap.add_argument("--repeats-128", type=int, default=8)
    ap.add_argument("--repeats-256", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls per side before the timed rounds")
    ap.add_argument("--memory-steps", type=int, default=3)
    ap.add_argument("--inference-sizes", type=report.comma_ints, default="256",
                    help="sizes of the inference comparison ('' for none)")
    ap.add_argument("--quick", action="store_true", help="128 px, few repeats; writes bench/work/results-quick")
    ap.add_argument("--out", default=None)
    report.add_render_flag(ap, "--out")
    ap.add_argument("--child", nargs=4, metavar=("SIDE", "METHOD", "SIZE", "STEPS"), help=argparse.SUPPRESS)
    ap.add_argument("--vgg-file", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.child:
        side, method, size, steps = args.child
        child(side, method, int(size), int(steps), args.reference, args.vgg_file, device)
        return 0
    out = report.output_folder(ap, args.out, quick=args.quick)
    if args.render:
        print(report.rerender(out, STEM, render).read_text())
        return 0
    try:
        folder = find_reference(args.reference)
    except ReferenceMissing as err:
        print(f"SKIPPED: {err}. No side-by-side figures were measured or written.")
        return 0
    sides, inference_sides = args.sides, args.inference_sides
    if sides[0] != "theirs" or inference_sides[0] != "theirs":
        ap.error("--sides and --inference-sides: 'theirs' first")
    if args.quick:
        sizes, reps, warmup, mem_steps = [128], {128: 3}, 1, 2
        inference_sizes = [128]
    else:
        sizes, inference_sizes = args.sizes, args.inference_sizes
        reps = {s: (args.repeats_128 if s <= 128 else args.repeats_256) for s in sizes}
        warmup, mem_steps = args.warmup, args.memory_steps
    t0 = time.perf_counter()
    command = "OMP_NUM_THREADS=%s python bench/%s" % (os.environ.get("OMP_NUM_THREADS", "unset"),
                                                       " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    res = {"reference_commit": reference_commit(folder), "threads": torch.get_num_threads(),
           "load_start": (loadavg() or []), "command": command, "device": str(device),
           "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                       "python": platform.python_version()},
           "training": [], "inference": [], "memory": {}}
    if device.type == "cuda":
        res["machine"]["gpu"] = torch.cuda.get_device_name(device)
    with tempfile.TemporaryDirectory(prefix="sesim-refbench-") as tmp:
        vgg_file = random_vgg16_file(Path(tmp) / "vgg16-random.pth", seed=0)
        for size in sizes:
            for method in args.methods:
                say(f"training step {LABEL[method]} {size} px: {reps[size]} interleaved rounds of {sides} ...")
                row = compare_training(folder, vgg_file, method, size, sides, warmup, reps[size], device)
                res["training"].append(row)
                say("  " + ", ".join(f"{k} {v['wall_s']:.3f} s" + (f" ({v['ratio']:.2f}x)" if "ratio" in v else "")
                                     for k, v in row["sides"].items()) + f"; foreign load {row['foreign_cores']}")
                say("  memory (fresh processes) ...")
                mem = measure_memory(folder, vgg_file, method, size, sides, mem_steps, args.threads, device)
                res["memory"][f"{method}@{size}"] = mem
                say("  peak RSS " + ", ".join(f"{k} {gb(v['peak_rss'])} GB" for k, v in mem.items()))
                res["elapsed_s"] = time.perf_counter() - t0
                report.write(out, STEM, res, render, indent=1)  # what is measured so far
        for size in inference_sizes:
            say(f"inference {size} px ...")
            row = compare_inference(folder, vgg_file, size, inference_sides, warmup, 3 * reps.get(size, 3), device)
            res["inference"].append(row)
            say("  " + ", ".join(f"{k} {v['img_per_s']:.2f} img/s" for k, v in row["sides"].items()))
    res["load_end"] = (loadavg() or [])
    res["elapsed_s"] = time.perf_counter() - t0
    print(report.write(out, STEM, res, render, indent=1)["md"].read_text())
    say(f"wrote {out}/{STEM}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
