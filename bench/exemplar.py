"""Exemplar-guided translation (MCL-Net, ``--mode exemplar``): the ablation rows of the paper's
Table 3 on the paired scenes task, over seeds.

Rows (presets, each applied after ``exemplar``): ``spade`` (SPADE only: no correspondence, the
exemplar reaches the generator unaligned), ``cor`` (+COR, the CoCosNet-like baseline), ``mcl``
(+COR+MCL), ``scm`` (+COR+SCM), ``mclnet`` (+COR+MCL+SCM, MCL-Net). Every row trains with the same
data (``bench/lab/exemplar_scenes.py``, 64 px, one dataset per seed), steps, batch size and
networks; only the correspondence options differ.

Scored on the held-out inputs, each translated with its own test exemplar (a photo of another
layout in another appearance):

* **realism**: Frechet distance and KID (x1000) between the translations and the training photos
  in the pooled features of ImageNet EfficientNet-Lite0 (``sesim.metrics.features``; not FID);
  **SWD** (x1000): sliced Wasserstein distance between 7x7 patches of the translations and of
  training photos at 64 and 32 px (128 random directions; Karras et al.'s metric, simplified);
* **style relevance** to the exemplar: cosine similarity between the channel means of low-level
  backbone features of translation and exemplar (``stem``: colour, ``stage2``: texture), as
  CoCosNet's metric with EfficientNet-Lite0 in place of VGG19;
* **semantic consistency** with the input: the same with high-level features (``stage4``,
  ``stage6``, ``head``) between the translation and the input's true photo (testB);
* **warp accuracy** (correspondence rows): the warped exemplar (upsampled from the 16 x 16
  correspondence grid to 64 px) against the *second appearance* (the input's layout rendered in
  the exemplar's appearance): L1 (0..255), PSNR, SSIM; and the translation against it (L1,
  SSIM), which is what a translation that follows both the layout and the exemplar's style should
  be.

    python bench/exemplar.py --quick   # mechanics: 30 steps, one seed, writes bench/work/exemplar-quick/
    python bench/exemplar.py           # the reported table: bench/results/exemplar.{md,json}

Runs one after another in this process (one torch thread). Work files: ``bench/work/exemplar/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
import torch.nn.functional as F

from lab.exemplar_scenes import make_exemplar_scenes  # noqa: E402  (bench/lab puts the checkout first on sys.path)
from lab.photo_task import l1_error, ssim  # noqa: E402

HERE = Path(__file__).resolve().parent
from sesim.config import TrainConfig  # noqa: E402
from sesim.data.demo_scenes import load_rgb_folder  # noqa: E402
from sesim.metrics.frechet import frechet_distance, kernel_inception_distance  # noqa: E402
from sesim.metrics.features import get_extractor  # noqa: E402
from sesim.nets.backbones import build_backbone  # noqa: E402
from sesim.train import train  # noqa: E402
from sesim.translate import load_run_generator  # noqa: E402

ROWS = {"spade": "SPADE only (no correspondence)", "cor": "+COR (CoCosNet-like)", "mcl": "+COR+MCL",
        "scm": "+COR+SCM", "mclnet": "+COR+MCL+SCM (MCL-Net)"}
PRESETS = {"spade": "exemplar,exemplar-spade", "cor": "exemplar,exemplar-cor", "mcl": "exemplar,exemplar-mcl",
           "scm": "exemplar,exemplar-scm", "mclnet": "exemplar"}
METRICS = [("fd", "FD ↓", 1), ("kd", "KD ×1e3 ↓", 1e3), ("swd", "SWD ×1e3 ↓", 1e3), ("style_color", "style: colour ↑", 1),
           ("style_texture", "style: texture ↑", 1), ("semantic", "semantic ↑", 1), ("warp_l1", "warp L1 ↓", 1),
           ("warp_psnr", "warp PSNR ↑", 1), ("warp_ssim", "warp SSIM ↑", 1), ("out_l1", "output L1 to 2nd ↓", 1),
           ("out_ssim", "output SSIM to 2nd ↑", 1)]


def row_config(row: str, data: Path, runs: Path, seed: int, steps: int, batch: int) -> TrainConfig:
    cfg = TrainConfig()
    for name in PRESETS[row].split(","):
        cfg.apply_preset(name)
    cfg.update("data", dict(data=str(data), size=64, load_size=64, preprocess="resize", flip=True, workers=0))
    cfg.update("run", dict(steps=steps, batch_size=batch, seed=seed, runs=str(runs), name=f"{row}-s{seed}",
                           checkpoint_every=max(steps // 2, 1), sample_every=steps, log_every=50, num_samples=6,
                           device="cpu"))
    return cfg


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` in [-1, 1] -> ``(N, H, W, 3)`` uint8."""
    return ((t.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def from_uint8(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1


def swd(a: np.ndarray, b: np.ndarray, *, directions: int = 128, patches: int = 4096, seed: int = 0) -> float:
    """Sliced Wasserstein distance between 7x7 patches of two uint8 image sets ``(N, H, W, 3)``, at full
    and half resolution (mean over the two), each patch normalised per channel by the pooled set's
    mean/std as Karras et al.; equal numbers of patches drawn from each set."""
    g = torch.Generator().manual_seed(seed)
    out = []
    ta, tb = from_uint8(a), from_uint8(b)
    for level in range(2):
        pa = F.unfold(ta, 7).transpose(1, 2).reshape(-1, 3 * 49)
        pb = F.unfold(tb, 7).transpose(1, 2).reshape(-1, 3 * 49)
        n = min(patches, len(pa), len(pb))
        pa = pa[torch.randperm(len(pa), generator=g)[:n]]
        pb = pb[torch.randperm(len(pb), generator=g)[:n]]
        both = torch.cat([pa, pb])
        mu, sd = both.mean(0), both.std(0).clamp_min(1e-6)
        pa, pb = (pa - mu) / sd, (pb - mu) / sd
        d = F.normalize(torch.randn(3 * 49, directions, generator=g), dim=0)
        pa, pb = (pa @ d).sort(0).values, (pb @ d).sort(0).values
        out.append(float((pa - pb).abs().mean()))
        ta, tb = F.avg_pool2d(ta, 2), F.avg_pool2d(tb, 2)
    return float(np.mean(out))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return float(np.mean(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))))


class Scorer:
    """Backbone features for the style/semantic scores and the FD/KD extractor (both EfficientNet-Lite0)."""

    LOW = {"style_color": "stem", "style_texture": "stage2"}
    HIGH = ("stage4", "stage6", "head")

    def __init__(self) -> None:
        self.net = build_backbone("efficientnet-lite0", ("stem", "stage2") + self.HIGH, "imagenet").eval()
        self.extractor = get_extractor("efficientnet-lite0")

    @torch.no_grad()
    def means(self, images: np.ndarray) -> dict[str, torch.Tensor]:
        feats = self.net(from_uint8(images))
        return {k: v.mean(dim=(2, 3)) for k, v in feats.items()}

    def embed(self, images: np.ndarray) -> np.ndarray:
        return self.extractor.features(list(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()))


def score_images(fake: np.ndarray, data: Path, scorer: Scorer, real_feats: np.ndarray, real_photos: np.ndarray) -> dict:
    """Realism, style relevance, semantic consistency and distance to the second appearance of the
    outputs ``fake`` ``(N, H, W, 3)`` uint8 for the test inputs of ``data``, in order."""
    exem, truth = load_rgb_folder(data / "exemplars"), load_rgb_folder(data / "testB")
    second = load_rgb_folder(data / "second")
    fo, fz, ft = scorer.means(fake), scorer.means(exem), scorer.means(truth)
    res = {"fd": frechet_distance(scorer.embed(fake), real_feats),
           "kd": kernel_inception_distance(scorer.embed(fake), real_feats, subsets=50, subset_size=len(fake))[0],
           "swd": swd(fake, real_photos)}
    for key, layer in Scorer.LOW.items():
        res[key] = float(F.cosine_similarity(fo[layer], fz[layer]).mean())
    res["semantic"] = float(np.mean([float(F.cosine_similarity(fo[k], ft[k]).mean()) for k in Scorer.HIGH]))
    res.update(out_l1=l1_error(fake, second), out_ssim=ssim(fake, second))
    return res


def score_run(run: Path, data: Path, scorer: Scorer, real_feats: np.ndarray, real_photos: np.ndarray) -> dict:
    """:func:`score_images` of the run's translations (each test input with its own exemplar), plus the
    warp accuracy against the second appearance for runs with a correspondence."""
    net, cfg = load_run_generator(run)
    x, z = from_uint8(load_rgb_folder(data / "testA")), from_uint8(load_rgb_folder(data / "exemplars"))
    with torch.no_grad():
        fake = to_uint8(net(x, z))
        warped = net.guide(x, z)[:, 3:] if net.correspondence is not None else None
    res = score_images(fake, data, scorer, real_feats, real_photos)
    if warped is not None:
        w, second = to_uint8(warped), load_rgb_folder(data / "second")
        res.update(warp_l1=l1_error(w, second), warp_psnr=psnr(w, second), warp_ssim=ssim(w, second))
    return res


def reference_rows(data: Path, scorer: Scorer, real_feats: np.ndarray, real_photos: np.ndarray) -> dict:
    """Scores of two reference outputs: the exemplar itself (pasted, wrong layout) and the second
    appearance (the ideal translation)."""
    return {name: score_images(load_rgb_folder(data / folder), data, scorer, real_feats, real_photos)
            for name, folder in (("exemplar pasted", "exemplars"), ("second appearance (ideal)", "second"))}


def summarise(per_seed: dict[str, dict[int, dict]]) -> dict[str, dict[str, list[float]]]:
    return {row: {k: [seeds[s][k] for s in sorted(seeds) if k in seeds[s]] for k, *_ in METRICS}
            for row, seeds in per_seed.items()}


def _cells(values: dict[str, list[float]], *, spread: bool) -> list[str]:
    """One table cell per metric: mean (± sample std over seeds with ``spread``), or n/a."""
    cells = []
    for key, _, scale in METRICS:
        v = np.asarray(values.get(key, []), dtype=float) * scale
        text = "n/a" if v.size == 0 else f"{v.mean():.3f}"
        if spread and v.size:
            text += f" ± {v.std(ddof=1) if v.size > 1 else 0:.3f}"
        cells.append(text)
    return cells


def render_md(report: dict) -> str:
    head = "| mean ± std over seeds | " + " | ".join(label for _, label, _ in METRICS) + " |"
    lines = ["# Exemplar-guided translation: Table 3 ablation rows on the scenes task",
             "", f"`{report['command']}` — {report['settings']}", "",
             head, "|---" * (len(METRICS) + 1) + "|"]
    for row, values in report["summary"].items():
        lines.append(f"| {ROWS.get(row, row)} | " + " | ".join(_cells(values, spread=True)) + " |")
    for name, values in report["references"].items():
        lines.append(f"| reference: {name} | " + " | ".join(_cells(values, spread=False)) + " |")
    lines += ["", "Per seed (seed: value) for the warp and style columns:", ""]
    for row, seeds in report["per_seed"].items():
        parts = [f"seed {s}: warp L1 {v.get('warp_l1', float('nan')):.1f}, style colour {v['style_color']:.3f}, "
                 f"FD {v['fd']:.2f}" for s, v in seeds.items()]
        lines.append(f"- {ROWS.get(row, row)}: " + "; ".join(parts))
    lines += ["", f"Machine: {report['machine']}; {report['minutes']:.1f} min in total.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--n-test", type=int, default=48)
    ap.add_argument("--quick", action="store_true", help="30 steps, seed 0, results under bench/work/exemplar-quick")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        args.steps, args.seeds, args.n_train, args.n_test = 30, "0", 40, 12
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = [r for r in args.rows.split(",") if r]
    work = HERE / "work" / ("exemplar-quick" if args.quick else "exemplar")
    out_dir = work if args.quick else HERE / "results"
    t0 = time.time()
    scorer = Scorer()
    per_seed: dict[str, dict[int, dict]] = {r: {} for r in rows}
    references: dict[str, dict[str, list[float]]] = {}
    partial = work / "scores.json"
    done = json.loads(partial.read_text()) if partial.is_file() else {}
    for seed in seeds:
        data = work / f"data-s{seed}"
        make_exemplar_scenes(data, size=64, n_train=args.n_train, n_test=args.n_test, seed=seed)
        real = load_rgb_folder(data / "trainB")
        real_feats = scorer.embed(real)
        for name, vals in reference_rows(data, scorer, real_feats, real).items():
            for k, v in vals.items():
                references.setdefault(name, {}).setdefault(k, []).append(v)
        for row in rows:
            key = f"{row}-s{seed}-{args.steps}-{args.batch_size}"
            if key not in done:
                run = work / "runs" / f"{row}-s{seed}"
                if run.exists():
                    import shutil

                    shutil.rmtree(run)
                t = time.time()
                train(row_config(row, data, work / "runs", seed, args.steps, args.batch_size), progress=False)
                done[key] = score_run(run, data, scorer, real_feats, real) | {"train_s": time.time() - t}
                partial.write_text(json.dumps(done, indent=1))
                print(f"{row} seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in done[key].items()), flush=True)
            per_seed[row][seed] = done[key]
    report = {
        "command": "python bench/exemplar.py" + (" --quick" if args.quick else
                                                  f" --steps {args.steps} --batch-size {args.batch_size}"),
        "settings": f"{args.steps} steps of batch {args.batch_size} at 64 px, {args.n_train} training pairs, "
                    f"{args.n_test} test inputs per seed, seeds {seeds}; EfficientNet-Lite0 (ImageNet) for the "
                    "perceptual/contextual terms and every score",
        "summary": summarise(per_seed), "per_seed": {r: {str(s): v for s, v in d.items()} for r, d in per_seed.items()},
        "references": references, "minutes": (time.time() - t0) / 60,
        "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "exemplar.json").write_text(json.dumps(report, indent=1))
    (out_dir / "exemplar.md").write_text(render_md(report))
    print(render_md(report))


if __name__ == "__main__":
    main()
