"""The `sesim viz` figures of the README and which content loss tells "same layout, other domain" from
"other layout", from one trained LSeSim run of the demo task.

For 24 new demo layouts (64 px), ``a`` = the label map and ``b`` = a photo rendering of the same
layout or of another one; the mean per-location error of each content loss of ``sesim viz
errormap`` (pixel L1, perceptual, PatchNCE, FSeSim, LSeSim) is averaged, and the pairs where the
same-layout error is the smaller one are counted. FSeSim / LSeSim / perceptual use the run's
structure backbone (its `config.json` record) and, for LSeSim, its trained heads; PatchNCE uses a
random-init encoder and heads (no CUT run given), as the figure says.

    python bench/demo_ablation.py                 # trains the demo runs (LSeSim among them)
    python bench/viz_figures.py --run bench/work/demo_ablation/runs/lsesim-s0-upsample-nearest

Writes ``bench/results/errormaps.{md,json}``, ``docs/heatmaps.png`` and ``docs/errormaps.png``
(``--docs none`` leaves the figures alone).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sesim.data.demo_scenes import random_layout, render_labels, render_photo  # noqa: E402
from sesim.explain import content_losses, error_maps, errormap_command, heatmap_command  # noqa: E402

NAMES = ["L1", "perceptual", "PatchNCE", "FSeSim", "LSeSim"]


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1


def error_table(run: Path, n: int = 24, seed: int = 2021) -> dict:
    losses = content_losses(run)
    rng = np.random.default_rng(seed)
    same, other = [], []
    for _ in range(n):
        first, second = random_layout(rng, 64), random_layout(rng, 64)
        a = _tensor(render_labels(first))
        same.append([m.mean if m else np.nan for m in error_maps(a, _tensor(render_photo(first, rng)), losses)])
        other.append([m.mean if m else np.nan for m in error_maps(a, _tensor(render_photo(second, rng)), losses)])
    same, other = np.array(same), np.array(other)
    return {"n": n, "notes": losses.notes,
            "rows": {name: {"same": float(same[:, i].mean()), "other": float(other[:, i].mean()),
                            "ratio": float(same[:, i].mean() / other[:, i].mean()),
                            "correct": int((same[:, i] < other[:, i]).sum())}
                     for i, name in enumerate(NAMES)}}


def render(result: dict, run: Path) -> str:
    lines = ["# Which content loss tells \"same layout, other domain\" from \"other layout\"", "",
             f"`python bench/viz_figures.py --run {run}`: mean per-location error over {result['n']} new demo layouts "
             "(64 px); `a` = the label map, `b` = a photo of the same layout or of another layout.", "",
             "| loss | what | same layout | other layout | ratio same / other | pairs with same < other |",
             "|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        lines.append(f"| {name} | {result['notes'].get(name, 'pixels' if name == 'L1' else '')} | {r['same']:.3f} | {r['other']:.3f} | "
                     f"{r['ratio']:.2f} | {r['correct']}/{result['n']} |")
    return "\n".join(lines) + "\n"


def figures(run: Path, docs: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(7)
        first, other = random_layout(rng, 64), random_layout(rng, 64)
        paths = {name: Path(tmp) / f"{name}.png" for name in ("labels", "same", "other")}
        Image.fromarray(render_labels(first)).save(paths["labels"])
        Image.fromarray(render_photo(first, rng)).save(paths["same"])
        Image.fromarray(render_photo(other, rng)).save(paths["other"])
        heatmap_command(paths["labels"], docs / "heatmaps.png", run=run, points="34,28;16,8;30,56", side=128,
                        overwrite=True)
        errormap_command(paths["labels"], [paths["same"], paths["other"]], docs / "errormaps.png", run=run,
                         overwrite=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path, help="a trained LSeSim run of the demo task")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--docs", default=str(ROOT / "docs"), help="where the two figures go (none: not drawn)")
    args = ap.parse_args(argv)
    result = error_table(args.run)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "errormaps.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.results / "errormaps.md").write_text(render(result, args.run))
    if args.docs != "none":
        figures(args.run, Path(args.docs))
    print(render(result, args.run))


if __name__ == "__main__":
    main()
