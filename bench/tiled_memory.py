"""Peak memory of full-resolution inference: whole image vs exact tiles, at 2k / 4k / 8k px.

The paper-size single-modal generator (ResNet, ngf 64, 9 blocks, instance norm; seeded normal
init) translates a random image of side S (``--ngf`` narrows it: the same layers and instance
norms with fewer channels, for an 8k run that fits a short time budget). Every measurement runs in a FRESH SUBPROCESS, and its
peak resident memory is the kernel's ``ru_maxrss`` of that child (``os.wait4``), so no row
inherits another's allocations. Modes:

- ``whole``: one forward pass (``translate_tensor(..., tile=None)``); skipped (and reported as
  such) when sesim's estimate says it cannot fit in the available memory — running it would
  only wake the OOM killer on a shared machine.
- ``tiled``: ``--tile auto --max-memory LIMIT`` (default 3G): exact layer-by-layer tiles
  (``sesim/layerwise.py``), activations in temporary files when they do not fit the limit.
- ``auto``: ``--tile auto`` with the default limit (70% of the available memory).
- ``cli``: the whole command, ``sesim translate`` of an S x S PNG (decode, translate, encode),
  with the default limit, or ``--max-memory`` when ``--cli-max-memory`` is given.

For sizes that run both ``whole`` and a tiled mode, the outputs are compared (max abs
difference). Writes ``<out>/tiled_memory.json`` and ``.md`` (default ``bench/results``),
merging with rows already there (each row is keyed by size and mode).

    python bench/tiled_memory.py --sizes 2048,4096 --modes whole,tiled      # ~25 min on 2 idle cores
    python bench/tiled_memory.py --sizes 8000 --modes cli                   # ~45 min
    python bench/tiled_memory.py --sizes 8000 --modes tiled --max-memory 3G # ~50 min
    python bench/tiled_memory.py --sizes 8000 --modes cli --cli-max-memory 2G --ngf 8   # ~10 min
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _config():
    from sesim.config import TrainConfig

    cfg = TrainConfig()
    cfg.update("model", dict(ngf=int(os.environ.get("BENCH_NGF", "64"))))
    return cfg


def _generator():
    import torch

    from sesim.factory import build_generator
    from sesim.nets.init import init_weights

    torch.manual_seed(0)
    return init_weights(build_generator(_config().mode, _config().data, _config().generator), "normal", 0.02).eval()


def _image(side: int):
    """A smooth random image ``(1, 3, side, side)`` in [-1, 1] (low-frequency noise, upsampled)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(side)
    low = torch.rand(1, 3, max(side // 64, 2), max(side // 64, 2), generator=g) * 2 - 1
    img = F.interpolate(low, size=(side, side), mode="bilinear", align_corners=False)
    return img.add_(torch.rand(1, 3, side, side, generator=g).mul_(0.2).sub_(0.1)).clamp_(-1, 1)


def child(side: int, mode: str, max_memory: str | None, save: str | None) -> None:
    """Run one measurement in this (fresh) process and print one JSON line."""
    import torch

    from sesim.memory import available_memory, current_rss, format_size, parse_size
    from sesim.tiled import plan_inference
    from sesim.translate import translate_tensor

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    g = _generator()
    x = _image(side)
    limit = parse_size(max_memory) if max_memory else None
    row = {"side": side, "mode": mode, "max_memory": max_memory, "ngf": _config().generator.ngf,
           "rss_before": current_rss()}
    if mode == "whole":
        plan = plan_inference(g, tuple(x.shape), tile="auto", max_memory=limit)
        row["estimate_whole"] = plan.whole_bytes
        if plan.whole_bytes > available_memory():
            row["skipped"] = (f"estimated {format_size(plan.whole_bytes)} > {format_size(available_memory())} "
                              "available")
            print("RESULT " + json.dumps(row), flush=True)
            return
        tile = None
    else:
        plan = plan_inference(g, tuple(x.shape), tile="auto", max_memory=limit)
        row.update(estimate_whole=plan.whole_bytes, plan=plan.kind, planned_bytes=plan.tiled_bytes, spill=plan.spill,
                   limit=plan.limit)
        tile = "auto"
    t0 = time.perf_counter()
    y = translate_tensor(g, x, 4, tile=tile, max_memory=limit)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    if save:
        torch.save(y, save)
    print("RESULT " + json.dumps(row), flush=True)


def _run_measured(cmd: list[str], env: dict) -> tuple[str, int, int, float]:
    """Run ``cmd``; returns (output, exit status, peak RSS in bytes and CPU seconds of that child alone)."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return out.read(), proc.returncode, usage.ru_maxrss * 1024, round(usage.ru_utime + usage.ru_stime, 1)


def cli_row(side: int, max_memory: str | None, env: dict, work: Path) -> dict:
    """``sesim translate`` of a side x side PNG with the paper-size generator, as a user runs it."""
    from PIL import Image

    from sesim.checkpoint import CONFIG_FILE, GENERATOR_FILE, save_generator
    from sesim.data.images import tensor_to_pil

    run = work / "run"
    run.mkdir(exist_ok=True)
    _config().save(run / CONFIG_FILE)
    save_generator(run / GENERATOR_FILE, _generator(), {"step": 0})
    src = work / f"input_{side}.png"
    if not src.exists():
        tensor_to_pil(_image(side)[0]).save(src)
    out = work / f"out_{side}"
    cmd = [sys.executable, "-m", "sesim", "translate", "--run", str(run), "--input", str(src), "--output", str(out),
           "--overwrite", "--no-progress", "--device", "cpu"]
    if max_memory:
        cmd += ["--max-memory", max_memory]
    t0 = time.perf_counter()
    text, code, peak, cpu = _run_measured(cmd, env)
    seconds = time.perf_counter() - t0
    row = {"side": side, "mode": "cli", "max_memory": max_memory, "ngf": _config().generator.ngf, "exit": code,
           "peak_rss": peak,
           "seconds": round(seconds, 1), "cpu_seconds": cpu, "log": [ln for ln in text.splitlines() if "px" in ln or "error" in ln][-3:]}
    if code == 0:
        with Image.open(out / src.name) as im:
            row["output_size"] = list(im.size)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="2048,4096,8000")
    ap.add_argument("--modes", default="whole,tiled")
    ap.add_argument("--max-memory", default="3G", help="limit of the tiled mode")
    ap.add_argument("--cli-max-memory", default=None, help="--max-memory of the cli mode (default: none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ngf", type=int, default=64, help="generator width (64: the paper's)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--child", nargs=4, metavar=("SIDE", "MODE", "MAX_MEMORY", "SAVE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        side, mode, mm, save = args.child
        child(int(side), mode, None if mm == "-" else mm, None if save == "-" else save)
        return
    os.environ["BENCH_NGF"] = str(args.ngf)
    env = {**os.environ, "BENCH_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "tiled_memory.json"
    report = json.loads(json_path.read_text()) if json_path.exists() else {"rows": []}
    with tempfile.TemporaryDirectory(prefix="sesim-bench-") as tmp:
        work = Path(tmp)
        for side in (int(s) for s in args.sizes.split(",")):
            saved = {}
            for mode in args.modes.split(","):
                if mode == "cli":
                    row = cli_row(side, args.cli_max_memory, env, work)
                else:
                    save = str(work / f"{side}_{mode}.pt") if side <= 4096 else "-"
                    mm = args.max_memory if mode == "tiled" else "-"
                    cmd = [sys.executable, __file__, "--child", str(side), mode, mm, save]
                    text, code, peak, cpu = _run_measured(cmd, env)
                    lines = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
                    if code != 0 or not lines:
                        row = {"side": side, "mode": mode, "max_memory": None if mm == "-" else mm, "ngf": args.ngf,
                           "exit": code, "error": text[-2000:]}
                    else:
                        row = {**json.loads(lines[-1][len("RESULT "):]), "peak_rss": peak, "cpu_seconds": cpu}
                        if save != "-" and "skipped" not in row:
                            saved[mode] = save
                print(json.dumps(row), flush=True)
                key = (side, mode, row.get("max_memory"), args.ngf)
                report["rows"] = [r for r in report["rows"]
                                  if (r["side"], r["mode"], r.get("max_memory"), r.get("ngf", 64)) != key] + [row]
            if "whole" in saved and len(saved) > 1:
                import torch

                whole = torch.load(saved["whole"])
                for mode, path in saved.items():
                    if mode != "whole":
                        diff = float((torch.load(path) - whole).abs().max())
                        for r in report["rows"]:
                            if r["side"] == side and r["mode"] == mode and r.get("ngf", 64) == args.ngf:
                                r["max_abs_diff_vs_whole"] = diff
                        print(f"{side}px {mode} vs whole: max abs diff {diff:.3g}", flush=True)
            for path in saved.values():
                Path(path).unlink(missing_ok=True)
    report["machine"] = {"cpus": os.cpu_count(), "threads": args.threads, "platform": platform.platform(),
                         "mem_total": _mem_total()}
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "tiled_memory.md").write_text(_markdown(report))
    print(f"wrote {json_path}")


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as fh:
            return int(fh.readline().split()[1]) * 1024
    except OSError:
        return 0


def _markdown(report: dict) -> str:
    from sesim.memory import format_size

    lines = ["# Peak memory of full-resolution inference (bench/tiled_memory.py)", "",
             "ResNet generator (9 blocks, instance norm; ngf 64 is the paper's size), batch 1, fresh process "
             "per row; peak RSS includes Python, torch and the input/output images.", "",
             "| ngf | side | mode | limit | peak RSS | estimate (whole) | time | CPU time | max abs diff vs whole | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(report["rows"], key=lambda r: (-r.get("ngf", 64), r["side"], r["mode"])):
        note = r.get("skipped") or (r.get("error", "").strip().splitlines() or [""])[-1] or (
            f"{r.get('plan', '')}{', spilled to files' if r.get('spill') else ''}")
        if r["mode"] == "cli" and r.get("exit") == 0:  # what the command said, and what it wrote
            said = (r.get("log") or [""])[-1].removeprefix("INFO: ")
            note = f"{said}; wrote {'x'.join(map(str, r.get('output_size', [])))} px".lstrip("; ")
        diff = r.get("max_abs_diff_vs_whole")
        lines.append(f"| {r.get('ngf', 64)} | {r['side']} | {r['mode']} | {r.get('max_memory') or 'default'} | "
                     f"{format_size(r['peak_rss']) if 'peak_rss' in r and 'skipped' not in r else '-'} | "
                     f"{format_size(r['estimate_whole']) if 'estimate_whole' in r else '-'} | "
                     f"{str(r['seconds']) + ' s' if 'seconds' in r else '-'} | "
                     f"{str(r['cpu_seconds']) + ' s' if 'cpu_seconds' in r else '-'} | "
                     f"{f'{diff:.2g}' if diff is not None else '-'} | {note} |")
    m = report.get("machine", {})
    lines += ["", f"Machine: {m.get('cpus')} CPUs, {m.get('threads')} threads, "
              f"{format_size(m.get('mem_total', 0))} RAM, {m.get('platform')}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
