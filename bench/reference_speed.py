"""sesim next to the authors' F-LSeSim code in ONE run: training-step time, FLOPs, peak memory, inference.

Needs the authors' code (``../shared/reference/F-LSeSim`` beside the repository, or ``--reference
PATH``; see ``bench/reference_code.py`` for what is done to it: nothing but replacing
``torchvision.models.vgg16`` so that their ``vgg16(pretrained=True)`` loads the file sesim loads).
Without it this script prints ``SKIPPED`` and writes nothing.

What is compared, batch 1, at 128 and 256 px, the same thread count on both sides:

* **Their training iteration**: ``set_input`` + ``optimize_parameters()`` of their ``sc`` model,
  configured from their released ``scripts/train_sc.sh`` command line through their own option
  parser: FSeSim (``--patch_size 64``: global maps) and LSeSim (``--learned_attn --augment
  --patch_size 32``: 32 x 32 windows at relu3_1 at 256 px; at 128 px every map is global, as in
  their code). Timed as their users get it: three VGG16 copies are built (two unused at lambda 0),
  their VGG16 runs to relu5_3, and in the LSeSim head step VGG16 has ``requires_grad=True`` (lr 0).
* **sesim's equivalent step**: ``train_step`` of ``--preset fsesim,public-code`` /
  ``lsesim,public-code`` with the same patch size and ``--head-on-translation`` for LSeSim (their
  head step uses (source, translation) as a positive pair too), VGG16 from the same state dict, and
  their generator, discriminator (and LSeSim heads) weights copied in (``copy_networks`` checks
  that the copies give the same outputs).
* **Identical network weights**: one fixed random-init torchvision VGG16 state dict for both sides
  -- no ImageNet VGG16 file exists on the benchmark machine; speed does not depend on the weights.

The two steps are timed **interleaved** (one call of each per round, the order alternating), so that
load from other processes hits both alike; a ratio is the median over rounds of the per-round ratio
sesim / theirs. Reported per side: median and p25-p75 wall seconds, CPU seconds (all threads), FLOPs
per step (``torch.utils.flop_counter.FlopCounterMode``: matmul and convolution FLOPs, forward and
backward) broken down into G, D, VGG16, heads and the rest ("maps": self-similarity products,
InfoNCE), peak RSS (``VmHWM``) of a **fresh subprocess** per side, method and size that builds only
that side, and inference images/s of the same generator (their ``model.test()`` against sesim's
``translate_tensor`` under ``inference_mode``, interleaved).

    OMP_NUM_THREADS=1 python bench/reference_speed.py --threads 1      # bench/results/reference_code.{md,json}
    OMP_NUM_THREADS=1 python bench/reference_speed.py --threads 1 --quick   # bench/work/reference-quick/
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from speed import quartiles, read_status  # noqa: E402  (bench/speed.py: the same measurements)
from reference_code import (  # noqa: E402
    ReferenceMissing,
    ReferenceModel,
    copy_networks,
    find_reference,
    random_vgg16_file,
    reference_commit,
)

METHODS = {"fsesim": dict(learned=False, patch=64), "lsesim": dict(learned=True, patch=32)}
LABEL = {"fsesim": "FSeSim", "lsesim": "LSeSim"}
CATEGORIES = ("G", "D", "VGG16", "heads", "maps")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def say(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def images(size: int, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a, b = (torch.rand(1, 3, size, size, generator=g) * 2 - 1 for _ in range(2))
    jitter = lambda t: (t * (0.8 + 0.4 * torch.rand(1, 3, 1, 1, generator=g))).clamp(-1, 1)  # noqa: E731
    return {"A": a, "B": b, "A_aug": jitter(a), "B_aug": jitter(b), "A_paths": ["a.png"], "B_paths": ["b.png"]}


def sesim_config(method: str, size: int, vgg_file: Path):
    from sesim.config import TrainConfig

    spec = METHODS[method]
    cfg = TrainConfig()
    for preset in (("lsesim", "public-code") if spec["learned"] else ("public-code",)):
        cfg.apply_preset(preset)
    cfg.set_flat("structure", "lsesim" if spec["learned"] else "fsesim")
    cfg.set_flat("backbone", "vgg16")
    cfg.set_flat("backbone_weights", str(vgg_file))
    cfg.set_flat("patch_size", spec["patch"])
    cfg.set_flat("size", size)
    cfg.set_flat("load_size", size)
    if spec["learned"]:
        cfg.set_flat("head_on_translation", True)
    return cfg


def build_sesim(method: str, size: int, vgg_file: Path):
    from sesim.methods import build_method

    model = build_method(sesim_config(method, size, vgg_file))
    model.train()
    return model


def build_reference(folder: Path, vgg_file: Path, method: str, size: int, batch: dict) -> ReferenceModel:
    spec = METHODS[method]
    ref = ReferenceModel(folder, vgg_file, size, spec["learned"], spec["patch"])
    ref.initialize(batch)
    return ref


def categorise(counts: dict[str, dict]) -> dict[str, int]:
    """FlopCounterMode's per-module totals -> G, D, VGG16, heads, maps (= everything outside those)."""
    def kind(part: str, root: bool) -> str | None:
        if part in ("ResnetGenerator", "G", "netG"):
            return "G"
        if part in ("NLayerDiscriminator", "PatchDiscriminator", "D", "netD"):
            return "D"
        if part in ("VGG16", "VGG16Features", "extractor", "netPre"):
            return "VGG16"
        if part in ("heads", "StructureHead") or part.startswith("conv_") or (root and part == "Sequential"):
            return "heads"
        return None

    # A key is a module path as the counter names it (root class name, then attribute names). A key's
    # category is that of its first matching part; among the keys sharing that matching prefix only
    # the shortest are counted (their sub-modules' FLOPs are already inside theirs). A container that
    # is not called itself (sesim's ``heads`` ModuleDict) has no key: its called children count.
    out = dict.fromkeys(CATEGORIES, 0)
    total = sum(counts.get("Global", {}).values())
    groups: dict[tuple[str, ...], list[tuple[int, str]]] = {}
    for key in counts:
        if key == "Global":
            continue
        parts = key.split(".")
        first = next((i for i, p in enumerate(parts) if kind(p, i == 0)), None)
        if first is not None:
            groups.setdefault(tuple(parts[: first + 1]), []).append((len(parts), key))
    for prefix, keys in groups.items():
        shortest = min(n for n, _ in keys)
        cat = kind(prefix[-1], len(prefix) == 1)
        out[cat] += sum(sum(counts[k].values()) for n, k in keys if n == shortest)
    out["maps"] = total - sum(out[c] for c in CATEGORIES if c != "maps")
    out["total"] = total
    return out


def flops_of(fn) -> tuple[dict[str, int], list[str]]:
    with FlopCounterMode(display=False) as counter:
        fn()
    counts = {k: dict(v) for k, v in counter.get_flop_counts().items()}
    modules = {k: sum(v.values()) for k, v in counts.items() if k.count(".") <= 2}  # module paths, two levels in
    return categorise(counts), modules


def timed(fn) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def interleave(fns: dict[str, object], warmup: int, repeats: int) -> dict[str, dict]:
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for r in range(repeats):
        for n in (names if r % 2 == 0 else names[::-1]):
            w, c = timed(fns[n])
            wall[n].append(w)
            cpu[n].append(c)
    out = {}
    for n in names:
        p25, med, p75 = quartiles(wall[n])
        out[n] = dict(wall_s=med, p25_s=p25, p75_s=p75, cpu_s=statistics.median(cpu[n]), walls=wall[n],
                      repeats=repeats, warmup=warmup)
    first, second = names
    ratios = [b / a for a, b in zip(wall[first], wall[second])]
    out["ratio"] = statistics.median(ratios)
    out["ratio_p25"], _, out["ratio_p75"] = quartiles(ratios)
    return out


# --------------------------------------------------------------------------------------------
# the one-process comparison (time, FLOPs, inference)
# --------------------------------------------------------------------------------------------
def compare_training(folder: Path, vgg_file: Path, method: str, size: int, warmup: int, repeats: int) -> dict:
    batch = images(size)
    torch.manual_seed(0)
    ref = build_reference(folder, vgg_file, method, size, batch)
    torch.manual_seed(0)
    ours = build_sesim(method, size, vgg_file)
    check = copy_networks(ref, ours)
    sesim_batch = {"A": batch["A"], "B": batch["B"]}
    fns = {"theirs": lambda: ref.step(batch), "sesim": lambda: ours.train_step(sesim_batch)}
    flops = {}
    for side, fn in fns.items():  # FLOPs of one step each (also the first warm-up call)
        flops[side], roots = flops_of(fn)
        flops[side + "_modules"] = roots
    m = interleave(fns, warmup, repeats)
    row = {"method": method, "size": size, "patch": METHODS[method]["patch"], "copied_output_diff": check,
           "theirs": m["theirs"], "sesim": m["sesim"], "ratio": m["ratio"], "ratio_p25": m["ratio_p25"],
           "ratio_p75": m["ratio_p75"], "flops": flops, "load_after": load_average()}
    del ref, ours
    return row


def compare_inference(folder: Path, vgg_file: Path, size: int, warmup: int, repeats: int) -> dict:
    from sesim.translate import translate_tensor

    batch = images(size)
    torch.manual_seed(0)
    ref = build_reference(folder, vgg_file, "fsesim", size, batch)
    ours = build_sesim("fsesim", size, vgg_file)
    copy_networks(ref, ours)
    g = ours.G.eval()
    x = batch["A"]

    def sesim_run():
        with torch.inference_mode():
            return translate_tensor(g, x)

    with torch.no_grad():
        same = float((ref.translate(x) - sesim_run()).abs().max())
    m = interleave({"theirs": lambda: ref.translate(x), "sesim": sesim_run}, warmup, repeats)
    flops_theirs, _ = flops_of(lambda: ref.translate(x))
    flops_sesim, _ = flops_of(sesim_run)
    return {"size": size, "theirs": m["theirs"], "sesim": m["sesim"], "ratio": m["ratio"],
            "ratio_p25": m["ratio_p25"], "ratio_p75": m["ratio_p75"], "output_max_abs_diff": same,
            "flops": {"theirs": flops_theirs["total"], "sesim": flops_sesim["total"]}}


# --------------------------------------------------------------------------------------------
# peak memory: one fresh process per side, method and size
# --------------------------------------------------------------------------------------------
def child(side: str, method: str, size: int, steps: int, folder: str, vgg_file: str, threads: int) -> None:
    torch.set_num_threads(threads)
    rss_import = read_status("VmRSS")
    batch = images(size)
    torch.manual_seed(0)
    if side == "theirs":
        model = build_reference(Path(folder), Path(vgg_file), method, size, batch)
        step = lambda: model.step(batch)  # noqa: E731
    else:
        model = build_sesim(method, size, Path(vgg_file))
        sesim_batch = {"A": batch["A"], "B": batch["B"]}
        step = lambda: model.train_step(sesim_batch)  # noqa: E731
    rss_built = read_status("VmRSS")
    steady = []
    for _ in range(steps):
        step()
        steady.append(read_status("VmRSS"))
    print("RESULT " + json.dumps({"side": side, "method": method, "size": size, "peak_rss": read_status("VmHWM"),
                                  "rss_after_import": rss_import, "rss_built": rss_built,
                                  "steady_rss": statistics.median(steady[1:] or steady), "steps": steps}), flush=True)


def measure_memory(folder: Path, vgg_file: Path, method: str, size: int, steps: int, threads: int) -> dict:
    out = {}
    for side in ("theirs", "sesim"):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", side, method, str(size), str(steps),
               "--reference", str(folder), "--vgg-file", str(vgg_file), "--threads", str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            say(proc.stdout[-2000:], proc.stderr[-4000:])
            raise RuntimeError(f"memory child {side} {method} {size} failed (exit {proc.returncode})")
        out[side] = json.loads(lines[-1][len("RESULT "):])
    return out


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
def gb(b) -> str:
    return "—" if b is None else f"{b / 1e9:.2f}"


def gf(f) -> str:
    return f"{f / 1e9:.1f}"


def fmt(m: dict) -> str:
    return f"{m['wall_s']:.3f} ({m['p25_s']:.3f}–{m['p75_s']:.3f})"


def write_report(res: dict, out: Path) -> str:
    lines = [
        "# sesim next to the authors' F-LSeSim code, one run", "",
        f"Authors' code: F-LSeSim `{res['reference_commit']}` (MIT), imported at run time, never part of sesim. "
        f"Machine: {res['machine']['cpu']}, {res['machine']['cores']} cores; torch {res['machine']['torch']}; "
        f"**{res['threads']} torch thread(s)** on both sides (`OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}`).",
        "",
        "**Load.** The load averages of each run are listed under *Runs* below. "
        + ("Other jobs were running (load average above 0.5): absolute times are loaded figures, not idle-machine "
           "ones; the interleaved ratios and CPU seconds are the comparison."
           if any(run["load_start"] and run["load_start"][0] > 0.5 for run in res.get("runs", [])) else ""),
        "",
        "Weights: one fixed random-init torchvision VGG16 state dict for both sides (no ImageNet VGG16 file "
        "on this machine; speed does not depend on weight values); their G, D and LSeSim heads copied into "
        "sesim's networks. Their iteration as their users run it (three VGG16 copies built, VGG16 run to "
        "relu5_3, VGG16 weight gradients computed in the LSeSim head step with lr 0). sesim: "
        "`--preset fsesim,public-code` / `lsesim,public-code --head-on-translation`, same patch size.",
        "",
        "## Training step (batch 1)", "",
        "Seconds per iteration: median (p25–p75) of the interleaved repeats; ratio = median over rounds of "
        "sesim / theirs (below 1: sesim faster).", "",
        "| method | px | theirs s/iter | sesim s/iter | ratio (p25–p75) | CPU-s theirs / sesim | "
        "GFLOP theirs / sesim | peak RSS GB theirs / sesim | steady RSS GB theirs / sesim |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["training"]:
        mem = res["memory"].get(f"{r['method']}@{r['size']}", {})
        t, s = mem.get("theirs", {}), mem.get("sesim", {})
        lines.append(
            f"| {LABEL[r['method']]} (patch {r['patch']}) | {r['size']} | {fmt(r['theirs'])} | {fmt(r['sesim'])} | "
            f"**{r['ratio']:.2f}×** ({r['ratio_p25']:.2f}–{r['ratio_p75']:.2f}) | "
            f"{r['theirs']['cpu_s']:.2f} / {r['sesim']['cpu_s']:.2f} | "
            f"{gf(r['flops']['theirs']['total'])} / {gf(r['flops']['sesim']['total'])} | "
            f"{gb(t.get('peak_rss'))} / {gb(s.get('peak_rss'))} | {gb(t.get('steady_rss'))} / {gb(s.get('steady_rss'))} |")
    lines += ["", "## Where the FLOPs go (GFLOP per training step, forward + backward)", "",
              "| method | px | side | G | D | VGG16 | heads | maps & rest | total |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["training"]:
        for side in ("theirs", "sesim"):
            f = r["flops"][side]
            lines.append(f"| {LABEL[r['method']]} | {r['size']} | {side} | "
                         + " | ".join(gf(f[c]) for c in CATEGORIES) + f" | {gf(f['total'])} |")
    lines += ["", "## Inference (the same generator, batch 1)", "",
              "| px | theirs img/s | sesim img/s | sesim / theirs time ratio | GFLOP | max output diff |",
              "|---|---|---|---|---|---|"]
    for r in res["inference"]:
        lines.append(f"| {r['size']} | {1 / r['theirs']['wall_s']:.2f} | {1 / r['sesim']['wall_s']:.2f} | "
                     f"{r['ratio']:.2f}× ({r['ratio_p25']:.2f}–{r['ratio_p75']:.2f}) | "
                     f"{gf(r['flops']['theirs'])} / {gf(r['flops']['sesim'])} | {r['output_max_abs_diff']:.1e} |")
    lines += ["", "## Runs", "", "Each sesim / theirs pair above was measured interleaved within one process (that is what "
              "makes a ratio fair under load); the rows come from these runs on the same machine, started "
              "together (load average at start / end):", ""]
    for run in res.get("runs", []):
        lines.append(f"- `{run['command']}`: {', '.join(run['measured'])}; load {run['load_start']} / {run['load_end']}; "
                     f"{run['elapsed_s'] / 60:.1f} min")
    lines.append("")
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reference_code.md").write_text(text)
    (out / "reference_code.json").write_text(json.dumps(res, indent=1) + "\n")
    return text


def finished(res: dict, t0: float) -> dict:
    """``res`` with the end-of-run fields (load, elapsed time, what this run measured)."""
    res["load_end"] = load_average()
    res["elapsed_s"] = time.perf_counter() - t0
    res["runs"] = [{k: res[k] for k in ("command", "load_start", "load_end", "elapsed_s")}
                   | {"measured": [f"{r['method']}@{r['size']}" for r in res["training"]]
                      + [f"inference@{r['size']}" for r in res["inference"]]}]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", default=None, help="folder of the authors' F-LSeSim code")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", default="128,256")
    ap.add_argument("--methods", default="fsesim,lsesim")
    ap.add_argument("--repeats-128", type=int, default=8)
    ap.add_argument("--repeats-256", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="warm-up calls per side after the FLOP-counted one")
    ap.add_argument("--memory-steps", type=int, default=2)
    ap.add_argument("--inference-sizes", default="256", help="sizes of the inference comparison ('' for none)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of an existing reference_code.json in --out that this run does not "
                         "measure (to assemble the table from several shorter runs on a loaded machine)")
    ap.add_argument("--quick", action="store_true", help="128 px, few repeats; writes bench/work/reference-quick")
    ap.add_argument("--out", default=None)
    ap.add_argument("--assemble", nargs="+", metavar="DIR", default=None,
                    help="write the report to --out from the reference_code.json files of runs in these folders "
                         "(parts of the table measured by separate, concurrently started runs); measures nothing")
    ap.add_argument("--child", nargs=4, metavar=("SIDE", "METHOD", "SIZE", "STEPS"), help=argparse.SUPPRESS)
    ap.add_argument("--vgg-file", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        side, method, size, steps = args.child
        child(side, method, int(size), int(steps), args.reference, args.vgg_file, args.threads)
        return 0
    if args.assemble:
        parts = [json.loads((Path(d) / "reference_code.json").read_text()) for d in args.assemble]
        res = dict(parts[0])
        res["training"] = sorted((r for part in parts for r in part["training"]),
                                 key=lambda r: (r["size"], list(METHODS).index(r["method"])))
        res["inference"] = [r for part in parts for r in part["inference"]]
        res["memory"] = {k: v for part in parts for k, v in part["memory"].items()}
        res["runs"] = [run for part in parts for run in part.get("runs", [])]
        if len({part["reference_commit"] for part in parts}) != 1 or len({part["threads"] for part in parts}) != 1:
            raise SystemExit("the parts differ in reference commit or thread count")
        out = Path(args.out or ROOT / "bench" / "results")
        print(write_report(res, out))
        return 0
    try:
        folder = find_reference(args.reference)
    except ReferenceMissing as err:
        print(f"SKIPPED: {err}. No side-by-side figures were measured or written.")
        return 0
    if args.quick:
        sizes, reps, warmup, mem_steps = [128], {128: 3}, 1, 2
        out = Path(args.out or ROOT / "bench" / "work" / "reference-quick")
        if out.resolve() == (ROOT / "bench" / "results").resolve():
            ap.error("--quick never writes to bench/results (the committed results); pick another --out")
    else:
        sizes = [int(s) for s in args.sizes.split(",")]
        reps = {s: (args.repeats_128 if s <= 128 else args.repeats_256) for s in sizes}
        warmup, mem_steps = args.warmup, args.memory_steps
        out = Path(args.out or ROOT / "bench" / "results")
    methods = args.methods.split(",")
    inference_sizes = [128] if args.quick else [int(v) for v in args.inference_sizes.split(",") if v]
    t0 = time.perf_counter()
    command = "OMP_NUM_THREADS=%s python bench/%s" % (os.environ.get("OMP_NUM_THREADS", "unset"),
                                                       " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    res = {"reference_commit": reference_commit(folder), "threads": torch.get_num_threads(),
           "load_start": load_average(), "command": command,
           "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "torch": torch.__version__, "python": platform.python_version()},
           "training": [], "inference": [], "memory": {}}
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
        res["machine"]["cpu"] = cpu
    except (OSError, StopIteration):
        pass
    with tempfile.TemporaryDirectory(prefix="sesim-refbench-") as tmp:
        vgg_file = random_vgg16_file(Path(tmp) / "vgg16-random.pth", seed=0)
        for size in sizes:
            for method in methods:
                say(f"training step {LABEL[method]} {size} px: {reps[size]} interleaved rounds ...")
                row = compare_training(folder, vgg_file, method, size, warmup, reps[size])
                res["training"].append(row)
                say(f"  theirs {fmt(row['theirs'])}  sesim {fmt(row['sesim'])}  ratio {row['ratio']:.2f}  "
                    f"GFLOP {gf(row['flops']['theirs']['total'])} / {gf(row['flops']['sesim']['total'])}")
                say("  memory (fresh processes) ...")
                res["memory"][f"{method}@{size}"] = measure_memory(folder, vgg_file, method, size, mem_steps,
                                                                   args.threads)
                mem = res["memory"][f"{method}@{size}"]
                say(f"  peak RSS theirs {gb(mem['theirs']['peak_rss'])} GB, sesim {gb(mem['sesim']['peak_rss'])} GB")
                if not args.merge:  # what is measured so far, in case a loaded machine stops the run
                    write_report(finished(res, t0), out)
        for size in inference_sizes:
            say(f"inference {size} px ...")
            row = compare_inference(folder, vgg_file, size, warmup, 3 * reps.get(size, 3))
            res["inference"].append(row)
            say(f"  theirs {1 / row['theirs']['wall_s']:.2f} img/s, sesim {1 / row['sesim']['wall_s']:.2f} img/s")
    res = finished(res, t0)
    previous = out / "reference_code.json"
    if args.merge and previous.is_file():
        old = json.loads(previous.read_text())
        keep = {(r["method"], r["size"]) for r in res["training"]}
        res["training"] = [r for r in old.get("training", []) if (r["method"], r["size"]) not in keep] + res["training"]
        res["training"].sort(key=lambda r: (r["size"], list(METHODS).index(r["method"])))
        res["memory"] = {**old.get("memory", {}), **res["memory"]}
        sizes_inf = {r["size"] for r in res["inference"]}
        res["inference"] = [r for r in old.get("inference", []) if r["size"] not in sizes_inf] + res["inference"]
        res["runs"] = old.get("runs", []) + res["runs"]
    print(write_report(res, out))
    say(f"wrote {out}/reference_code.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
