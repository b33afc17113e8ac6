"""Which features see layout? The structure loss on real photos and their layout-keeping restyles,
per backbone, layers, normalisation and initialisation.

Protocol (``tests/photo_pairs.py``, shared with ``tests/test_real_photos.py``): square crops of the
photographs bundled with scikit-image (astronaut, chelsea, coffee, rocket, motorcycle), 3 per photo
at 128 px and at 256 px (native resolution), each redrawn as a tinted pencil sketch and as a soft
charcoal drawing. For each source crop, FSeSim with the configuration under test (256 random queries,
32-position windows, cosine distance) scores its own restyle, every other crop's restyle and the
restyle of the crop shifted right by 1/16 of its width. AUC = how often the own restyle scores lower
(1 = always, 0.5 = chance). Randomly initialised networks are drawn with seeds 0, 1, 2 (mean ± sample
std over the three); pretrained ones are deterministic.

    python bench/backbones.py            # every configuration (about 10 min on 2 CPU cores)
    python bench/backbones.py --quick    # 128 px only, 2 crops per photo, 1 seed, into bench/work/results-quick
    python bench/backbones.py --render   # rewrite bench/results/backbones.md from backbones.json

Writes ``bench/results/backbones.{md,json}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lab import ROOT, report

sys.path.append(str(ROOT / "tests"))  # the photo crops and restyles shared with tests/test_real_photos.py
from photo_pairs import PHOTOS, RESTYLES, crop_sets, layout_aucs, per_image_distance  # noqa: E402
from sesim import SpatialCorrelativeLoss  # noqa: E402
from sesim.nets.backbones import describe_backbone  # noqa: E402
from sesim.nets.vgg import find_imagenet_weights  # noqa: E402

EFF = "efficientnet-lite0"
#: (label, SpatialCorrelativeLoss keyword arguments, random init?)
CONFIGS = [
    ("EfficientNet-Lite0 stage2 + stage3 (strides 4, 8), l2 -- the offline default", dict(backbone=EFF), False),
    ("EfficientNet-Lite0 stage2 + stage3, centered_l2", dict(backbone=EFF, norm="centered_l2"), False),
    ("EfficientNet-Lite0 block2_dw + block4_dw (expanded activations, strides 4, 8)",
     dict(backbone=EFF, layers="block2_dw,block4_dw"), False),
    ("EfficientNet-Lite0 stage3 + stage4 (strides 8, 16)", dict(backbone=EFF, layers="stage3,stage4"), False),
    ("EfficientNet-Lite0 stage2 + stage3, random init", dict(backbone=EFF, weights="random"), True),
    ("VGG16 relu3_1 + relu4_1, random init, l2 (the former offline fallback)",
     dict(backbone="vgg16", weights="random"), True),
    ("VGG16 relu3_1 + relu4_1, random init, centered_l2 (the former demo setting)",
     dict(backbone="vgg16", weights="random", norm="centered_l2"), True),
]
PAPER_ROW = ("VGG16 relu3_1 + relu4_1 ImageNet, l2 -- the paper's", dict(backbone="vgg16", weights="imagenet"), False)


def measure(kwargs: dict, seeds: list[int], sets) -> dict:
    runs = []
    for seed in seeds:
        torch.manual_seed(seed)
        loss = SpatialCorrelativeLoss(**kwargs).eval()
        t0 = time.perf_counter()
        runs.append({name: layout_aucs(per_image_distance(loss), sets, fn) for name, fn in RESTYLES.items()})
        runs[-1]["seconds"] = time.perf_counter() - t0
    out = {"backbone": describe_backbone(loss.extractor), "layers": list(loss.layers), "norm": loss.norm,
           "seeds": seeds, "per_seed": runs}
    for name in RESTYLES:
        for key in ("auc_other", "auc_shift", "margin_other", "margin_shift", "mean_same", "mean_other"):
            values = [r[name][key] for r in runs]
            out[f"{name}_{key}"] = float(np.mean(values))
            out[f"{name}_{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return out


def _cell(row: dict, key: str) -> str:
    std = row.get(key + "_std")
    return f"{row[key]:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def render(result: dict) -> str:
    s = result["settings"]
    lines = ["# Which features see layout? (`python bench/backbones.py`)", "",
             f"Real photos ({', '.join(PHOTOS)} from scikit-image), {s['per_photo']} crops per photo at "
             f"{' and '.join(map(str, s['sizes']))} px, each redrawn as a tinted pencil sketch and as a soft charcoal "
             "drawing (`tests/photo_pairs.py`). FSeSim distance (256 random queries, 32-position windows, cosine) "
             "between each crop and (a) its own restyle, (b) every other crop's restyle, (c) the restyle of the crop "
             "shifted by 1/16 of its width. AUC = fraction of pairs where (a) is lower: 1 = always sees the same "
             f"layout, 0.5 = chance. Random inits: seeds {', '.join(map(str, s['random_seeds']))} (mean ± sample std). "
             f"{s['cpus']} CPU cores, torch {s['torch']}, {s['total_seconds'] / 60:.1f} min.", "",
             "| features | pencil: AUC vs other | pencil: AUC vs shifted | charcoal: AUC vs other | "
             "charcoal: AUC vs shifted | charcoal margin vs other / shifted | mean distance same / other (charcoal) |",
             "|---|---|---|---|---|---|---|"]
    for label, row in result["rows"].items():
        if "skipped" in row:
            lines.append(f"| {label} | {row['skipped']} | | | | | |")
            continue
        lines.append(f"| {label} | {_cell(row, 'pencil_auc_other')} | {_cell(row, 'pencil_auc_shift')} | "
                     f"{_cell(row, 'charcoal_auc_other')} | {_cell(row, 'charcoal_auc_shift')} | "
                     f"{row['charcoal_margin_other']:.2f} / {row['charcoal_margin_shift']:.2f} | "
                     f"{row['charcoal_mean_same']:.3f} / {row['charcoal_mean_other']:.3f} |")
    lines += ["", "*Margin*: median over source crops of (wrong candidate's distance − own restyle's) / own restyle's, "
              "i.e. how much farther the other photo's or the shifted crop's drawing is; it ranks choices that all "
              "reach AUC 1. Mean distances show the scale: random VGG16 features with plain L2 normalisation are all "
              "positive, so every map is nearly flat and every distance is tiny.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="128 px only, 2 crops per photo, 1 seed")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--results", type=Path, default=None,
                    help="default bench/results; bench/work/results-quick with --quick (never replaces results)")
    report.add_render_flag(ap, "--results")
    args = ap.parse_args(argv)
    results = report.output_folder(ap, args.results, quick=args.quick)
    if args.render:
        print(report.rerender(results, "backbones", render).read_text())
        return
    os.environ.setdefault("SESIM_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes, per_photo, seeds = ((128,), 2, [0]) if args.quick else ((128, 256), 3, [0, 1, 2])
    t0 = time.perf_counter()
    sets = crop_sets(sizes=sizes, per_photo=per_photo)
    rows = {}
    configs = CONFIGS + [PAPER_ROW]
    for label, kwargs, random_init in configs:
        if kwargs.get("weights") == "imagenet" and find_imagenet_weights() is None:
            rows[label] = {"skipped": "not measured: vgg16-397923af.pth is not on this machine"}
            continue
        rows[label] = measure(kwargs, seeds if random_init else [0], sets)
        r = rows[label]
        print(f"{label}: pencil {r['pencil_auc_other']:.2f}/{r['pencil_auc_shift']:.2f}, charcoal "
              f"{r['charcoal_auc_other']:.2f}/{r['charcoal_auc_shift']:.2f}", flush=True)
    result = {"settings": {"sizes": list(sizes), "per_photo": per_photo, "random_seeds": seeds, "cpus": os.cpu_count(),
                           "torch": torch.__version__, "threads": torch.get_num_threads(),
                           "total_seconds": time.perf_counter() - t0}, "rows": rows}
    print(report.write(results, "backbones", result, render)["md"].read_text())


if __name__ == "__main__":
    main()
