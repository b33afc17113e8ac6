"""Instance norm on PyTorch's instance-norm kernel against its group-norm kernel (``sesim.nets.norm``).

``F.instance_norm`` and ``F.group_norm(x, C)`` compute the same normalisation (each sample's channel
over H x W); this times both, interleaved, at the shapes of the ResNet generator at 128 and 256 px,
forward alone (inference) and forward + backward (training), and reports the largest difference of
their outputs and input gradients.

    OMP_NUM_THREADS=1 python bench/norm_kernel.py            # bench/results/norm_kernel.{md,json}
    OMP_NUM_THREADS=1 python bench/norm_kernel.py --quick    # bench/work/results-quick/
    python bench/norm_kernel.py --render                     # the report from bench/results/norm_kernel.json
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from lab import paths, report
from lab.timing import machine_info, measure_interleaved

#: (C, H, W) of the generator's normalised activations: stem/up2 at full size, down1/up1 at 1/2, blocks at 1/4
SHAPES = {128: [(64, 128, 128), (128, 64, 64), (256, 32, 32)], 256: [(64, 256, 256), (128, 128, 128), (256, 64, 64)]}


def kernels(x: torch.Tensor) -> dict:
    c = x.shape[1]
    return {"instance_norm": lambda: F.instance_norm(x), "group_norm": lambda: F.group_norm(x, c)}


def measure(shape: tuple[int, int, int], repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(1, *shape, generator=g) * 3 + 1).requires_grad_()
    grad = torch.randn(1, *shape, generator=g)
    fns = kernels(x)
    with torch.no_grad():
        forward = measure_interleaved(fns, 2, repeats, count_flops=False)
    both = measure_interleaved({k: (lambda f=f: f().backward(grad)) for k, f in fns.items()}, 2, repeats,
                               count_flops=False)
    outs, grads = {}, {}
    for k, f in fns.items():
        x.grad = None
        y = f()
        y.backward(grad)
        outs[k], grads[k] = y.detach(), x.grad.clone()
    return {"shape": shape,
            "forward_ms": {k: 1000 * forward[k]["wall_s"] for k in fns},
            "forward_speedup": 1 / forward["group_norm"]["paired_ratio"],
            "train_ms": {k: 1000 * both[k]["wall_s"] for k in fns},
            "train_speedup": 1 / both["group_norm"]["paired_ratio"],
            "max_output_diff": float((outs["group_norm"] - outs["instance_norm"]).abs().max()),
            "max_grad_diff": float((grads["group_norm"] - grads["instance_norm"]).abs().max())}


def render(res: dict) -> str:
    mi = res["machine"]
    lines = ["# Instance norm: PyTorch's instance-norm kernel against its group-norm kernel", "",
             f"`{res['command']}`; {mi.get('cpu', '')}, {mi['threads']} thread(s), torch {mi['torch']}; "
             f"medians of {res['repeats']} interleaved rounds; speed-up = median over rounds of instance_norm / group_norm.", "",
             "| px | activation (C, H, W) | forward ms: instance / group | speed-up | forward + backward ms | speed-up "
             "| max diff output / input grad |", "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        f, t = r["forward_ms"], r["train_ms"]
        lines.append(f"| {r['size']} | {tuple(r['shape'])} | {f['instance_norm']:.2f} / {f['group_norm']:.2f} | "
                     f"{r['forward_speedup']:.1f}× | {t['instance_norm']:.2f} / {t['group_norm']:.2f} | "
                     f"{r['train_speedup']:.1f}× | {r['max_output_diff']:.1e} / {r['max_grad_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="128 px shapes, 5 repeats; writes bench/work/results-quick")
    report.add_render_flag(ap, "bench/results")
    args = ap.parse_args(argv)
    out = paths.results_dir(quick=args.quick)
    if args.render:
        print(report.rerender(out, "norm_kernel", render).read_text())
        return 0
    torch.set_num_threads(args.threads)
    sizes, repeats = ([128], 5) if args.quick else ([128, 256], args.repeats)
    rows = [{"size": size, **measure(shape, repeats)} for size in sizes for shape in SHAPES[size]]
    res = {"machine": machine_info(args.threads), "repeats": repeats, "rows": rows,
           "command": "OMP_NUM_THREADS=1 python bench/norm_kernel.py" + (" --quick" if args.quick else "")}
    print(report.write(out, "norm_kernel", res, render, indent=1)["md"].read_text())
    return 0

if __name__ == "__main__":
    sys.exit(main())
