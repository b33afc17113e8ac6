"""Does the structure loss matter on the demo? The demo task with and without it, over seeds, side by side.

Trains the ``demo`` preset (exactly what ``sesim demo`` trains) on the demo data of each seed with
(a) the GAN loss only (lambda = 0), (b) FSeSim and (c) LSeSim (``lab.methods``) -- the same steps,
data and seed for each -- then scores the held-out translations with the demo's own metrics
(``sesim/demo.py``: pixel accuracy / mean IoU of a per-pixel classifier trained only on real photos
against the input's true layout, and the appearance distance to real photos). Each seed draws its
own data (as ``sesim demo --seed N`` does), so the do-nothing and oracle rows are averaged too.

Runs are subprocesses (``lab.runner``), two at a time with one torch thread each.

    python bench/demo_ablation.py                         # 3 variants x seeds 0, 1, 2 (about 25 min on 2 cores)
    python bench/demo_ablation.py --steps 300 --seeds 0   # a quick look (into bench/work/results-quick)
    python bench/demo_ablation.py --variants fsesim --set upsample=nearest --name demo-upsample-nearest
    python bench/demo_ablation.py --render --name demo_ablation-upsample-nearest   # the report from its JSON

Writes ``bench/results/<name>.{md,json,png}`` (default name ``demo_ablation``; the figure shows the
first seed). Runs with other steps than the preset's are a quick look: they go to
``bench/work/results-quick`` (never into ``bench/results``).
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab import report, runner, stats
from lab.methods import METHODS, build_config, option
from lab.timing import loadavg

VARIANTS = ("gan-only", "fsesim", "lsesim")
LABELS = {"gan-only": "GAN only (lambda = 0)"}  # the others: the method's label
METRICS = ("pixel_accuracy", "mean_iou", "appearance_distance")
BASELINES = ("do-nothing (output = input)", "oracle (true photo of the input layout)")


def label(variant: str) -> str:
    return LABELS.get(variant, METHODS[variant].label)


def render(result: dict) -> str:
    st = result["settings"]
    seeds = st["seeds"]
    lines = [f"# Demo ablation (`{st['command']}`)", "",
             f"The `demo` preset ({st['steps']} steps, 64 px; `sesim demo` trains exactly this"
             + (f", with {', '.join(f'`{k}={v}`' for k, v in st['overrides'].items())}" if st["overrides"] else "")
             + f"), seeds {', '.join(map(str, seeds))}; each seed draws its own data. Mean ± sample std over seeds, "
             f"then every seed. Structure backbone: {st.get('backbone') or '–'}. {st['jobs']} runs at a time, one "
             f"torch thread each; load average at the end {st['load_average']}.", "",
             "| images | pixel accuracy ↑ | mean IoU ↑ | appearance distance ↓ | per seed: pixel accuracy | train s |",
             "|---|---|---|---|---|---|"]
    for row in result["rows"].values():
        per = [row["per_seed"][str(s)] for s in seeds if str(s) in row["per_seed"]]
        cells = [stats.cell(*stats.mean_std(p[m] for p in per), 1 if m == "appearance_distance" else 3) for m in METRICS]
        secs = [p["train_seconds"] for p in per if "train_seconds" in p]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " | "
                     + " / ".join(f"{p['pixel_accuracy']:.3f}" for p in per) + " | "
                     + (f"{stats.mean_std(secs)[0]:.0f}" if secs else "–") + " |")
    lines += ["", "*Structure kept*: a per-pixel classifier trained only on real domain-B photos labels each pixel; "
              "its agreement with the true layout of the input is high only when each region stayed in place *and* "
              "took its class's appearance. *Appearance distance*: sliced Wasserstein distance between the colour "
              "distributions of the images and of real held-out photos. `train s` is wall time including other "
              "processes' load; use bench/speed.py for speed.", ""]
    return "\n".join(lines)


def write_grid(inputs_dir: Path, fakes: dict[str, Path], path: Path, n: int = 6) -> None:
    """Rows: held-out inputs; columns: the input and each variant's translation (2x enlarged)."""
    from PIL import Image

    from sesim.viz.grid import image_grid

    inputs = sorted(inputs_dir.glob("*.png"))[:n]
    rows = [[Image.open(p)] + [Image.open(fake / p.name) for fake in fakes.values()] for p in inputs]
    image_grid(rows, titles=["input", *fakes], scale=2).save(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/work/demo_ablation")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the demo preset's)")
    ap.add_argument("--seeds", type=report.comma_ints, default="0,1,2")
    ap.add_argument("--variants", type=report.comma_choices(VARIANTS), default=",".join(VARIANTS),
                    help=f"comma-separated from {', '.join(VARIANTS)}")
    report.add_set_flag(ap, "a training option for every variant, e.g. --set upsample=nearest")
    ap.add_argument("--name", default="demo_ablation", help="file stem of the results")
    ap.add_argument("--results", default=None)
    ap.add_argument("--jobs", type=int, default=2)
    report.add_render_flag(ap, "--results")
    args = ap.parse_args(argv)
    overrides = dict(args.overrides)
    results = report.output_folder(ap, args.results, quick=bool(args.steps))
    if args.render:
        print(report.rerender(results, args.name, render).read_text())
        return
    from sesim.data.demo_scenes import make_demo_dataset
    from sesim.demo import score

    os.environ.setdefault("SESIM_OFFLINE", "1")
    seeds, variants = args.seeds, args.variants
    out = Path(args.out)
    tag = "".join(f"-{k}-{v}" for k, v in sorted(overrides.items())) + (f"-{args.steps}" if args.steps else "")

    planned = []
    for seed in seeds:
        data = out / f"data-s{seed}"
        make_demo_dataset(data, size=64, seed=seed)
        for key in variants:
            name = f"{key}-s{seed}{tag}"
            run = {"data": str(data), "runs": str(out / "runs"), "name": name, "seed": seed, "sample_every": 10**9,
                   **({"steps": args.steps} if args.steps else {})}
            cfg = build_config(key, presets=("demo",), base=run, run=overrides)
            planned.append((key, seed, data, cfg, out / "fake" / name))
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(runner.run_one, cfg, inputs=data / "testA", fake=fake,
                               log_path=out / "logs" / f"{option(cfg, 'name')}.log", threads=1)
                   for _, _, data, cfg, fake in planned]
        timings = [f.result() for f in futures]

    rows = {key: {"label": label(key), "per_seed": {}} for key in variants}
    rows.update({b: {"label": b, "per_seed": {}} for b in BASELINES})
    backbone = None
    for (key, seed, data, cfg, fake), timing in zip(planned, timings):
        scores = score(data, fake, seed=seed)
        rows[key]["per_seed"][str(seed)] = {**{m: scores["translation (sesim)"][m] for m in METRICS},
                                            "train_seconds": timing["train_seconds"]}
        for b in BASELINES:
            rows[b]["per_seed"][str(seed)] = {m: scores[b][m] for m in METRICS}
        backbone = backbone or (runner.backbone_record(Path(timing["run"])) or {}).get("description")
        print(f"{label(key)} seed {seed}: " + ", ".join(f"{m} {scores['translation (sesim)'][m]:.3f}" for m in METRICS),
              flush=True)
    command = "python bench/demo_ablation.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    result = {"settings": {"seeds": seeds, "steps": option(planned[0][3], "steps"), "overrides": overrides,
                           "backbone": backbone, "jobs": args.jobs, "command": command,
                           "load_average": loadavg()}, "rows": rows}
    written = report.write(results, args.name, result, render)
    first = seeds[0]
    write_grid(out / f"data-s{first}" / "testA", {label(k): out / "fake" / f"{k}-s{first}{tag}" for k in variants},
               results / f"{args.name}.png")
    print(written["md"].read_text())


if __name__ == "__main__":
    main()
