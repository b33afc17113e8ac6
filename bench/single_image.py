"""Single-image translation (paper Sec. 4.3): FSeSim vs SinCUT on one painting -> photo pair.

The pair needs no download; both images come from scikit-image's bundled data:

* **source "painting"**: scikit-image's ``rocket`` photo (640 x 427) turned into a painting-like
  image here (no painting ships with any installed package): Pillow's mode filter (size 9, flat
  brush-like regions), posterised to 4 bits per channel, saturation x1.6, then dark
  edges (pixels with a strong FIND_EDGES response blended towards dark brown). It is a *stylised photo*, not a real painting.
* **target photo**: scikit-image's ``motorcycle_left`` (the left view of the Middlebury
  motorcycle stereo pair, 741 x 500), a different scene, as in the paper's task (a painting and a
  photo that are unpaired).

Both methods use the same networks, data pipeline (random zoomed 64 px patches), steps, batch,
seed and optimiser (presets ``painting2photo`` and ``sincut``, ``lab.methods``, scaled down for the
CPU budget: see ``SETTINGS``), trained concurrently as two subprocesses (``lab.runner``, what
``sesim train --preset ...`` does) with one torch thread each. The full-resolution source is then translated (tiled with 256 px tiles *and* whole, and the
largest difference between the two is reported) and scored:

* **SIFID** (translation vs. the target photo; lower = closer to the photo's local statistics),
  :func:`sesim.metrics.single_image.sifid` with a fixed random-init 2-layer CNN
  (:func:`~sesim.metrics.single_image.random_feature_extractor`, seed 0, 64 channels) -- the FID
  Inception weights SinGAN uses are not on this machine, so values are not comparable to
  published SIFID. If the pytorch-fid Inception file is found, SinGAN's Inception SIFID is
  reported as well.
* **Self-similarity distance** (translation vs. the source; lower = structure kept),
  :func:`sesim.metrics.single_image.self_similarity_distance` with the metric's FSeSim
  (:func:`~sesim.metrics.single_image.selfsim_metric_loss`: the default pretrained backbone --
  ImageNet VGG16 if its file is found, else ImageNet EfficientNet-Lite0 -- at its default layers,
  a 16 x 16 query grid). Training uses the same backbone; the results say which.

Reference rows: the source itself ("do nothing": self-similarity distance 0 by definition) and
the target photo resized to the source's size (SIFID of a real photo of that scene).

    python bench/single_image.py --quick   # ~2 min: 20 steps per method (into bench/work/results-quick)
    python bench/single_image.py           # < 20 min on 2 shared CPU cores
    python bench/single_image.py --render  # rewrite bench/results/single_image.md from single_image.json

Writes ``bench/results/single_image.{md,json}`` (``--quick``: ``bench/work/results-quick/``) and, for the default run,
``docs/single_image.png`` (full resolution: source | FSeSim | SinCUT, target below).
Work files go to ``bench/work/single_image``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from lab import ROOT, paths, report, runner
from lab.methods import METHODS, build_config, option

from sesim.data.images import load_image, pil_to_tensor, tensor_to_pil
from sesim.metrics.single_image import (
    random_feature_extractor, self_similarity_distance, selfsim_metric_loss, sifid, sifid_inception_extractor,
)
from sesim.nets.backbones import describe_backbone
from sesim.translate import load_run_generator, translate_tensor

RUNS = ("painting2photo", "sincut")  # lab.methods keys; the reports name them by label (FSeSim, SinCUT)
# CPU-budget scaling of the presets (both methods alike); the presets themselves keep paper-scale values
SETTINGS = {"size": 64, "batch_size": 4, "ngf": 16, "ndf": 16, "n_blocks": 4, "n_downsampling": 1}
STEPS = {"quick": 20, "full": 300}


def make_pair(folder: Path) -> tuple[Path, Path]:
    """Write the painting-like source and the target photo (see the module doc)."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    photo = Image.fromarray(data.rocket())
    painting = photo.filter(ImageFilter.ModeFilter(9))
    painting = ImageOps.posterize(painting, 4)
    painting = ImageEnhance.Color(painting).enhance(1.6)
    edges = painting.convert("L").filter(ImageFilter.FIND_EDGES).point(lambda v: 255 - min(255, 2 * v))
    painting = Image.composite(painting, Image.new("RGB", painting.size, (40, 30, 20)),
                               edges.point(lambda v: 255 if v > 96 else 90))
    target = Image.fromarray(data.stereo_motorcycle()[0])
    a, b = folder / "painting.png", folder / "photo.png"
    painting.save(a)
    target.save(b)
    return a, b


def train_all(pair: tuple[Path, Path], work: Path, steps: int) -> dict[str, dict]:
    """Train both methods at once, one subprocess each; ``train_seconds`` is each subprocess's wall time."""
    runs = work / "runs"
    if runs.exists():
        shutil.rmtree(runs)
    cfgs = {METHODS[key].label: build_config(key, base=SETTINGS, run={
        "dir_a": str(pair[0]), "dir_b": str(pair[1]), "load_size": None, "steps": steps, "runs": str(runs),
        "name": METHODS[key].label, "workers": 0, "checkpoint_every": steps, "sample_every": steps, "log_every": 10})
        for key in RUNS}
    with ThreadPoolExecutor(len(cfgs)) as pool:
        futures = {name: pool.submit(runner.run_one, cfg, inputs=None, fake=None, log_path=work / f"{name}.log",
                                     threads=1, keep_checkpoints=True) for name, cfg in cfgs.items()}
        try:
            timings = {name: f.result() for name, f in futures.items()}
        except RuntimeError as err:
            raise SystemExit(str(err)) from None
    return {name: {"run": runs / name, "train_seconds": t["process_seconds"]} for name, t in timings.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20 steps per method (~2 min)")
    ap.add_argument("--steps", type=int, default=None, help="override the number of training steps")
    ap.add_argument("--work", default=str(ROOT / "bench" / "work" / "single_image"))
    report.add_render_flag(ap, "bench/results (bench/work/results-quick with --quick)")
    args = ap.parse_args()
    out_dir = paths.results_dir(quick=args.quick)
    stem = "single_image" + ("-quick" if args.quick else "")
    if args.render:
        print(report.rerender(out_dir, stem, render).read_text())
        return
    torch.set_num_threads(2)
    mode = "quick" if args.quick else "full"
    steps = args.steps or STEPS[mode]
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    pair = make_pair(work / "data")
    runs = train_all(pair, work, steps)

    src = pil_to_tensor(load_image(pair[0]))
    tgt = pil_to_tensor(load_image(pair[1]))
    tgt_resized = torch.nn.functional.interpolate(tgt[None], size=src.shape[-2:], mode="bilinear",
                                                  align_corners=False, antialias=True)[0]
    extractor = random_feature_extractor(0, 64)
    try:
        inception = sifid_inception_extractor("auto")
    except Exception:  # WeightsNotFoundError: not on this machine
        inception = None
    torch.manual_seed(1234)
    ssd_loss = selfsim_metric_loss()

    def score(image: torch.Tensor) -> dict[str, float]:
        row = {"sifid_random_cnn": sifid(tgt, image, extractor),
               "self_similarity_distance": self_similarity_distance(src, image, ssd_loss)}
        if inception is not None:
            row["sifid_inception"] = sifid(tgt, image, inception)
        return row

    results: dict[str, dict] = {"source (do nothing)": score(src), "target photo, resized": score(tgt_resized)}
    outputs = {}
    for name, info in runs.items():
        generator, cfg = load_run_generator(info["run"])
        x = src[None]
        t0 = time.time()
        whole = translate_tensor(generator, x, stride=generator.stride, tile=None)
        t_whole = time.time() - t0
        t0 = time.time()
        tiled = translate_tensor(generator, x, stride=generator.stride, tile=256)
        t_tiled = time.time() - t0
        outputs[name] = tiled[0]
        log = [json.loads(line) for line in (info["run"] / "log.jsonl").read_text().splitlines()]
        results[name] = {**score(tiled[0]), "steps": steps, "train_seconds": round(info["train_seconds"], 1),
                         "tiled_vs_whole_max_abs_diff": float((tiled - whole).abs().max()),
                         "translate_seconds_whole": round(t_whole, 2), "translate_seconds_tiled_256": round(t_tiled, 2),
                         "final_losses": {k: v for k, v in log[-1].items() if k not in ("step", "lr", "images_per_s")}}

    meta = {"mode": mode, "steps": steps, "settings": SETTINGS,
            "presets": {METHODS[k].label: METHODS[k].presets[0] for k in RUNS},
            "source": f"{pair[0].name}: scikit-image rocket photo stylised (mode filter 9, posterise 4 bit, "
                      f"saturation x1.6, edge darkening), {src.shape[-1]}x{src.shape[-2]}",
            "target": f"{pair[1].name}: scikit-image motorcycle_left photo, {tgt.shape[-1]}x{tgt.shape[-2]}",
            "sifid_extractor": "random-init 2-layer CNN (sesim.metrics.single_image.random_feature_extractor, "
                               "seed 0, 64 ch, stride 2); not Inception, not comparable to published SIFID",
            "sifid_inception": "pytorch-fid Inception block 0" if inception is not None else "weights not found",
            "ssd_backbone": f"{describe_backbone(ssd_loss.extractor)} {'+'.join(ssd_loss.layers)}, "
                            f"feature norm {ssd_loss.norm}",
            "fsesim_training_backbone": _training_backbone(runs["FSeSim"]["run"]),
            "cpu_count": os.cpu_count(), "load_average_start": os.getloadavg()[0],
            "total_seconds": round(time.time() - t_start, 1)}
    written = report.write(out_dir, stem, {"meta": meta, "results": results}, render)
    if not args.quick:
        figure(src, tgt, outputs).save(ROOT / "docs" / "single_image.png")
    print(written["md"].read_text())


def _training_backbone(run: Path) -> str:
    """What the run's config.json recorded about its structure backbone."""
    from sesim.config import TrainConfig

    cfg = TrainConfig.from_dict(json.loads((Path(run) / "config.json").read_text()))
    record = runner.backbone_record(run) or {}
    return (f"{record.get('description', '?')} {'+'.join(option(cfg, 'layers') or [])}, feature norm "
            f"{option(cfg, 'feature_norm')}")


def figure(src: torch.Tensor, tgt: torch.Tensor, outputs: dict[str, torch.Tensor]) -> Image.Image:
    """Full-resolution panel: source | FSeSim | SinCUT on top, the target photo below."""
    tiles = [tensor_to_pil(src)] + [tensor_to_pil(o) for o in outputs.values()]
    w, h = tiles[0].size
    target = tensor_to_pil(tgt)
    canvas = Image.new("RGB", (w * len(tiles), h + target.size[1]), "white")
    for i, t in enumerate(tiles):
        canvas.paste(t, (i * w, 0))
    canvas.paste(target, (0, h))
    from PIL import ImageDraw

    draw = ImageDraw.Draw(canvas)
    for i, label in enumerate(["source (stylised photo)"] + [f"{k} translation" for k in outputs]):
        draw.text((i * w + 6, 6), label, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    draw.text((6, h + 6), "target photo (training image B)", fill=(255, 255, 255), stroke_width=2,
              stroke_fill=(0, 0, 0))
    return canvas


def render(result: dict) -> str:
    meta, results = result["meta"], result["results"]
    lines = [f"# Single-image translation: FSeSim vs SinCUT ({meta['mode']}, {meta['steps']} steps)", "",
             f"- Source: {meta['source']}", f"- Target: {meta['target']}",
             f"- Settings (both methods): presets {meta['presets']} with {meta['settings']}",
             f"- SIFID extractor: {meta['sifid_extractor']}",
             *(  # results written before backbones had names recorded VGG16 only
                 [f"- Self-similarity distance: FSeSim maps, {meta['ssd_backbone']}",
                  f"- FSeSim's training loss used: {meta['fsesim_training_backbone']}"] if "ssd_backbone" in meta else
                 [f"- Self-similarity distance: FSeSim maps, VGG16 relu3_1+relu4_1, {meta['ssd_vgg16']}",
                  f"- FSeSim's training loss used VGG16 weights: {meta['fsesim_training_vgg16']}"]),
             f"- Total wall time {meta['total_seconds']} s on {meta['cpu_count']} CPU cores "
             f"(load average at start {meta['load_average_start']:.1f})", "",
             "| | SIFID vs target (random CNN) | self-sim distance vs source | train s | tiled-vs-whole max diff |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['sifid_random_cnn']:.4f} | {r['self_similarity_distance']:.5f} | "
                     f"{r.get('train_seconds', '')} | {r.get('tiled_vs_whole_max_abs_diff', '')} |")
    lines += ["", "Lower is better for both metrics. The do-nothing row has self-sim distance 0 by definition; "
              "the resized target photo shows the SIFID of a real photo of the target scene "
              "(a different structure, so a large self-sim distance).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
