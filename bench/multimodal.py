"""Multi-modal vs single-modal sesim on the demo task: diversity, realism, structure kept.

Trains, with the same data, image size, steps, batch size, learning rate, structure loss (FSeSim)
and base width (ngf = ndf = 16):

* **single-modal FSeSim** (``--mode single-modal``): ResNet generator (6 blocks) + 70x70 PatchGAN;
* **multi-modal FSeSim** (``--mode multimodal``): MUNIT-style content/style generator (4 residual
  blocks in encoder and decoder, style dim 8, AdaIN through a 3-layer MLP, Kaiming init as MUNIT)
  + 3-scale discriminator (3 layers per scale), with the style reconstruction term (weight 1);

on the demo's labels -> photo task (``sesim.data.demo_scenes``: the true layout of every input is
known), then translates the held-out inputs, K times per input for the multi-modal run (style
codes 0..K-1 of ``sesim.nets.munit.style_codes(8, K, seed=0)``, the codes of ``sesim translate
--samples K --seed 0``), and measures, with the scorers of ``lab.tasks``:

* **diversity** -- mean pairwise distance between the K samples of one input, averaged over the
  inputs, in two spaces: (a) the 64-d feature space of sesim's self-trained realism CNN
  (``bench/lab/realism.py``; Euclidean distance), (b) pixels (mean absolute difference, 0..1).
  This is *not* LPIPS (no LPIPS weights offline) and not comparable to published LPIPS numbers. The
  single-modal generator is deterministic, so its diversity is 0 by construction. For scale, the
  same distances between *different* real held-out B images are reported (the "real images" row);
* **realism** -- Frechet distance and KID (x100) of the translations against held-out real B
  photos in that same feature space; for the multi-modal run computed on each of the K sample
  sets and averaged (the paper's protocol, Sec. B.2), with the spread over the K sets;
* **structure kept** -- pixel accuracy and mean IoU of a per-pixel classifier trained only on
  real B photos, against the input's true layout (averaged over the K sets for multi-modal).

Both runs train at the same time in two subprocesses with one torch thread each
(``lab.runner``). FSeSim uses the default pretrained backbone (ImageNet VGG16 if
its file is found, else ImageNet EfficientNet-Lite0); the report says which.

    python bench/multimodal.py --quick   # regression check: 60 steps; 1.2-1.4 min on 2 CPU cores at load ~7
    python bench/multimodal.py           # the reported numbers: 600 steps at 64 px; 7-9 min at load ~7
    python bench/multimodal.py --render  # rewrite bench/results/multimodal.md from multimodal.json

Writes ``bench/results/multimodal.{md,json}`` (``--quick``: ``bench/work/results-quick/``) and ``docs/multimodal.png`` (default run
only): rows = held-out inputs; columns = input, single-modal output, then the multi-modal output
for each style code (the same code in every row). Work files go to ``bench/work/multimodal``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image

from lab import ROOT, report, runner, stats
from lab.methods import build_config
from lab.tasks import scenes_task
from lab.timing import loadavg


@dataclass(frozen=True)
class Mode:
    steps: int
    n_train: int
    n_test: int
    feature_steps: int
    samples: int
    suffix: str


QUICK = Mode(steps=60, n_train=100, n_test=24, feature_steps=200, samples=3, suffix="-quick")
FULL = Mode(steps=600, n_train=300, n_test=64, feature_steps=1000, samples=5, suffix="")

SIZE = 64
WIDTH = 16


#: MUNIT's choices, at this size
MULTIMODAL = {"n_blocks": 4, "n_layers_d": 3, "n_scales_d": 3, "style_dim": 8, "mlp_dim": 64, "init": "kaiming",
              "lambda_style": 1.0}


def configs(data: Path, runs: Path, steps: int, seed: int, device: str) -> dict:
    """The two training configs, identical except for what --mode changes: FSeSim on the demo preset's 64 px pipeline
    (as bench/quality.py: lr 2e-4, no pool, nearest-neighbour upsampling in the single-modal generator; the multi-modal
    decoder always upsamples that way) and the default pretrained backbone."""
    out = {}
    for key, mode in (("single", "single-modal"), ("multi", "multimodal")):
        base = {"data": str(data), "size": SIZE, "load_size": SIZE, "preprocess": "crop", "mode": mode, "ngf": WIDTH,
                "ndf": WIDTH}
        run = {**(MULTIMODAL if mode == "multimodal" else {}), "steps": steps, "seed": seed, "runs": str(runs),
               "name": key, "device": device, "checkpoint_every": steps, "sample_every": 10**9,
               "log_every": max(1, min(25, steps)), "num_samples": 4}
        out[key] = build_config("fsesim", presets=("demo",), base=base, run=run)
    return out


def translate_samples(run: Path, inputs: Path, out: Path, samples: int) -> np.ndarray:
    """``(N, K, H, W, 3)`` uint8 translations of the sorted inputs (K = 1 for single-modal runs)."""
    from sesim.translate import translate_paths

    if out.exists():
        shutil.rmtree(out)
    translate_paths(run, inputs, out, samples=samples, seed=0, progress=False, device="cpu")
    stems = [p.stem for p in sorted(inputs.iterdir()) if p.suffix == ".png"]
    names = [[f"{s}.png"] if samples == 1 else [f"{s}_s{k}.png" for k in range(samples)] for s in stems]
    return np.stack([[np.asarray(Image.open(out / name).convert("RGB")) for name in row] for row in names])


def diversity(features_fn, images: np.ndarray) -> dict:
    """Mean pairwise distance between the K samples of each input, averaged over inputs.
    ``images``: ``(N, K, H, W, 3)`` uint8. Returns feature-space (Euclidean) and pixel (L1, 0..1) means."""
    n, k = images.shape[:2]
    if k < 2:
        return {"div_feature": 0.0, "div_pixel": 0.0, "pairs": 0}
    feats = features_fn(images.reshape(n * k, *images.shape[2:])).reshape(n, k, -1)
    pix = images.astype(np.float64) / 255.0
    pairs = list(combinations(range(k), 2))
    df = np.mean([np.linalg.norm(feats[:, i] - feats[:, j], axis=1).mean() for i, j in pairs])
    dp = np.mean([np.abs(pix[:, i] - pix[:, j]).mean() for i, j in pairs])
    return {"div_feature": float(df), "div_pixel": float(dp), "pairs": len(pairs) * n}


def real_diversity(features_fn, reference: np.ndarray, n_pairs: int = 200, seed: int = 0) -> dict:
    """The same distances between random pairs of *different* real B images (a scale for the numbers above)."""
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(reference), n_pairs)
    j = (i + rng.integers(1, len(reference), n_pairs)) % len(reference)
    f = features_fn(reference)
    pix = reference.astype(np.float64) / 255.0
    return {"div_feature": float(np.linalg.norm(f[i] - f[j], axis=1).mean()),
            "div_pixel": float(np.abs(pix[i] - pix[j]).mean()), "pairs": n_pairs}


def score_sets(task, images: np.ndarray) -> dict:
    """Realism and structure of each sample set ``images[:, k]``, averaged over k (with the sample std
    over k; 0 for one set)."""
    per_set = [task.score(images[:, k]) for k in range(images.shape[1])]
    out = {}
    for key in ("fd", "kid_x100", "pixel_accuracy", "mean_iou"):
        mean, std = stats.mean_std(s[key] for s in per_set)
        out[key], out[key + "_std_over_samples"] = mean, 0.0 if np.isnan(std) else std
    out["per_sample_set"] = per_set
    return out


def write_grid(path: Path, inputs: np.ndarray, single: np.ndarray, multi: np.ndarray, rows: int = 6) -> None:
    from sesim.viz.grid import image_grid

    k = multi.shape[1]
    cells = [[Image.fromarray(inputs[r]), Image.fromarray(single[r, 0])] + [Image.fromarray(multi[r, j])
                                                                           for j in range(k)]
             for r in range(min(rows, len(inputs)))]
    titles = ["input", "single"] + [f"style {j}" for j in range(k)]
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(cells, titles=titles, scale=2).save(path)


def render(result: dict) -> str:
    r, s = result["rows"], result["settings"]
    lines = [
        f"# Multi-modal vs single-modal sesim ({'quick check' if s['quick'] else 'default run'})",
        "",
        f"Demo task (synthetic labels -> photo, {s['size']} px, {s['n_train']} training images per domain, "
        f"{s['n_test']} held-out inputs), {s['steps']} steps at batch 1, FSeSim ({s['backbone']}), ngf = ndf = "
        f"{WIDTH}, seed {s['seed']}; multi-modal: {s['samples']} style codes per input "
        f"(`sesim translate --samples {s['samples']} --seed 0`). Command: `{s['command']}`.",
        "",
        "| | diversity: realism-CNN features ↑ | diversity: pixel L1 ↑ | FD ↓ | KID x100 ↓ | pixel acc. ↑ | mean IoU ↑ "
        "| train s | s/step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def pm(row, key, digits):
        v = row[key]
        sd = row.get(key + "_std_over_samples")
        return f"{v:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd else "")

    for key, label in (("single", "single-modal FSeSim"), ("multi", "multi-modal FSeSim")):
        row = r[key]
        lines.append(f"| {label} | {row['div_feature']:.3f} | {row['div_pixel']:.4f} | {pm(row, 'fd', 2)} | "
                     f"{pm(row, 'kid_x100', 2)} | {pm(row, 'pixel_accuracy', 3)} | {pm(row, 'mean_iou', 3)} | "
                     f"{row['train_seconds']:.0f} | {row['step_seconds'] or float('nan'):.3f} |")
    real = r["real"]
    lines.append(f"| real photos (diversity: pairs of different real B; rest: oracle renderings of the inputs) | {real['div_feature']:.3f} | {real['div_pixel']:.4f} | "
                 f"{real['fd']:.2f} | {real['kid_x100']:.2f} | {real['pixel_accuracy']:.3f} | "
                 f"{real['mean_iou']:.3f} | | |")
    lines += [
        "",
        "- Diversity is the mean distance between the samples of one input (all pairs of the K codes), averaged "
        "over inputs: Euclidean distance of the 64-d features of sesim's self-trained realism CNN, and mean "
        "absolute pixel difference (0..1). It is **not LPIPS** (no LPIPS weights offline). The single-modal "
        "generator is deterministic: 0 by construction. The real-photos row gives the same distances between "
        "different real B photos (a scale, not a target: different photos also have different layouts).",
        "- FD / KID: against held-out real B photos in the realism CNN's feature space (not comparable to FID). "
        "Multi-modal: one value per sample set (code k for every input), mean ± std over the K sets. The real row "
        "scores the oracle renderings of the inputs' layouts (fresh photos of the same layout).",
        "- Structure kept: per-pixel classifier trained only on real B photos, against the input's true layout.",
        f"- Wall time with both runs training at once on {s['cpus']} CPU cores (1 torch thread each), load "
        f"average at start {s['loadavg_start']}, at end {s['loadavg_end']}; total script time "
        f"{s['total_seconds'] / 60:.1f} min.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="60 steps, small sets: a ~2 minute regression check")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default 600; --quick 60)")
    ap.add_argument("--samples", type=int, default=None, help="style codes per input (default 5; --quick 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "work" / "multimodal")
    ap.add_argument("--results", type=Path, default=None,
                    help="default bench/results; bench/work/results-quick with --quick (never replaces results)")
    ap.add_argument("--grid", type=Path, default=None, help="sample grid (default docs/multimodal.png; none for --quick)")
    ap.add_argument("--sequential", action="store_true", help="train the two runs one after the other")
    report.add_render_flag(ap, "--results")
    args = ap.parse_args(argv)
    mode = QUICK if args.quick else FULL
    results = report.output_folder(ap, args.results, quick=args.quick)
    stem = f"multimodal{mode.suffix}"
    if args.render:
        print(report.rerender(results, stem, render).read_text())
        return
    steps = args.steps or mode.steps
    samples = args.samples or mode.samples
    t0 = time.perf_counter()
    load_start = loadavg()
    os.environ.setdefault("SESIM_OFFLINE", "1")

    data = args.out / f"scenes{SIZE}-{mode.n_train}-{mode.n_test}"
    task = scenes_task(data, size=SIZE, n_train=mode.n_train, n_test=mode.n_test)
    runs = args.out / f"runs{mode.suffix}-s{steps}-seed{args.seed}"
    cfgs = configs(data, runs, steps, args.seed, args.device)
    logs = args.out / "logs"

    def train_one(key: str) -> dict:
        return runner.run_one(cfgs[key], inputs=data / "testA", fake=args.out / f"fake{mode.suffix}-{key}",
                              log_path=logs / f"{runs.name}-{key}.log", threads=1)

    print(f"training single- and multi-modal FSeSim for {steps} steps ...", flush=True)
    with ThreadPoolExecutor(1 if args.sequential else 2) as pool:
        futures = {key: pool.submit(train_one, key) for key in ("multi", "single")}
        # fit the scorers (realism CNN, layout classifier) while the runs train
        import torch

        torch.set_num_threads(1)
        task.fit(size=SIZE, feature_steps=mode.feature_steps, device="cpu")
        timings = {key: f.result() for key, f in futures.items()}
    print(f"trained in {time.perf_counter() - t0:.0f} s; translating and scoring ...", flush=True)

    outputs = {"single": translate_samples(runs / "single", data / "testA", args.out / "samples-single", 1),
               "multi": translate_samples(runs / "multi", data / "testA", args.out / "samples-multi", samples)}
    rows = {}
    for key, images in outputs.items():
        rows[key] = {**score_sets(task, images), **diversity(task.extractor.features, images),
                     "train_seconds": timings[key]["train_seconds"], "step_seconds": timings[key]["step_seconds"]}
    real = {**task.score(task.targets), **real_diversity(task.extractor.features, task.reference)}
    rows["real"] = real

    from sesim import __version__

    result = {
        "settings": {"quick": args.quick, "steps": steps, "samples": samples, "seed": args.seed, "size": SIZE,
                     "n_train": mode.n_train, "n_test": mode.n_test, "feature_steps": mode.feature_steps,
                     "backbone": (runner.backbone_record(runs / "multi") or {}).get("description", "?"), "cpus": os.cpu_count(), "loadavg_start": load_start,
                     "loadavg_end": loadavg(), "total_seconds": time.perf_counter() - t0,
                     "command": "python bench/multimodal.py" + (" --quick" if args.quick else ""),
                     "sesim": __version__, "python": platform.python_version()},
        "configs": {k: c.to_dict() for k, c in cfgs.items()},
        "rows": rows,
    }
    written = report.write(results, stem, result, render, default=float)
    grid = args.grid or (None if args.quick else ROOT / "docs" / "multimodal.png")
    if grid is not None:
        write_grid(grid, task.inputs, outputs["single"], outputs["multi"])
    print(written["md"].read_text())


if __name__ == "__main__":
    main()
