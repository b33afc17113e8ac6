"""Does the structure loss matter? Train the demo task with and without it, side by side.

Trains the ``demo`` preset on the demo data with (a) GAN loss only (lambda = 0), (b) FSeSim and
(c) LSeSim, the same steps and seed for each, then scores held-out translations with the demo's
layout/appearance metrics (see ``sesim/demo.py``). Writes ``bench/results/demo_ablation.md`` and
``.json``.

    python bench/demo_ablation.py                # about 12 minutes on 2 CPU cores
    python bench/demo_ablation.py --steps 300    # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from PIL import Image

from sesim.config import TrainConfig
from sesim.data.demo_scenes import make_demo_dataset
from sesim.demo import score
from sesim.train import train
from sesim.translate import translate_paths
from sesim.viz.grid import image_grid

VARIANTS = {
    "GAN only (lambda = 0)": {"structure": "none"},
    "FSeSim": {"structure": "fsesim"},
    "LSeSim": {"structure": "lsesim"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/work/demo_ablation")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the demo preset's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default="bench/results")
    args = ap.parse_args()
    out = Path(args.out)
    make_demo_dataset(out / "data", size=64, seed=args.seed)
    rows: dict = {}
    fake_names: dict[str, str] = {}
    for label, overrides in VARIANTS.items():
        cfg = TrainConfig()
        cfg.apply_preset("demo")
        cfg.update("data", {"data": str(out / "data")})
        name = label.split(" ")[0].lower() + f"-s{args.seed}" + (f"-{args.steps}" if args.steps else "")
        cfg.update("run", {"runs": str(out / "runs"), "name": name, "seed": args.seed, "sample_every": 10**9})
        if args.steps:
            cfg.run.steps = args.steps
        cfg.update("loss", overrides)
        t0 = time.perf_counter()
        run = train(cfg, progress=False)
        seconds = time.perf_counter() - t0
        fake = out / "fake" / name
        fake_names[label] = name
        translate_paths(run, out / "data" / "testA", fake, overwrite=True, progress=False)
        scores = score(out / "data", fake, seed=args.seed)
        rows[label] = {**scores["translation (sesim)"], "train_seconds": round(seconds, 1), "steps": cfg.run.steps}
        rows.setdefault("_baselines", {k: v for k, v in scores.items() if k != "translation (sesim)"})
        print(label, rows[label], flush=True)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    suffix = f"-{args.steps}" if args.steps else ""
    (results / f"demo_ablation{suffix}.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| images | pixel accuracy | mean IoU | appearance distance | train s |", "|---|---|---|---|---|"]
    for label, r in rows.items():
        if label != "_baselines":
            lines.append(f"| {label} | {r['pixel_accuracy']:.3f} | {r['mean_iou']:.3f} | "
                         f"{r['appearance_distance']:.1f} | {r['train_seconds']:.0f} |")
    for label, r in rows["_baselines"].items():
        lines.append(f"| {label} | {r['pixel_accuracy']:.3f} | {r['mean_iou']:.3f} | {r['appearance_distance']:.1f} | - |")
    lines.append("\n`train s` is wall time on this run's machine, including any load from other processes; "
                 "use bench/speed.py for speed comparisons.")
    (results / f"demo_ablation{suffix}.md").write_text("\n".join(lines) + "\n")
    write_grid(out, [fake_names[label] for label in VARIANTS], list(VARIANTS), results / f"demo_ablation{suffix}.png")
    print("\n".join(lines))


def write_grid(out: Path, names: list[str], labels: list[str], path: Path, n: int = 6) -> None:
    """Rows: held-out inputs; columns: the input and each variant's translation (2x enlarged)."""
    inputs = sorted((out / "data" / "testA").glob("*.png"))[:n]
    rows = [[Image.open(p)] + [Image.open(out / "fake" / name / p.name) for name in names] for p in inputs]
    image_grid(rows, titles=["input", *labels], scale=2).save(path)


if __name__ == "__main__":
    main()
