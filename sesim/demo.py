"""``sesim demo``: a toy labels -> photo task that trains in minutes on a laptop CPU.

1. Generate the data (no downloads): flat label maps (domain A) and photo-like renderings of
   *other* layouts (domain B), plus held-out test layouts with their ground truth.
2. Train the single-modal translator with the structure loss (``demo`` preset).
3. Translate the held-out label maps and score them:

   - **structure kept**: a per-pixel classifier trained only on real domain-B photos (never on
     generator output) labels each translated pixel; its pixel accuracy against the *input's*
     true layout is high only if the layout was kept *and* each region got the right appearance;
   - **appearance moved**: sliced Wasserstein distance between the colour distributions of the
     translations and of real held-out photos (0 = same colours as real photos).

   Both are also computed for a do-nothing translator (output = input) and for the oracle (the
   true photo rendering of each test layout), so the numbers have a floor and a ceiling.
4. Write ``index.html``: input | translation | self-similarity heat maps for one query point, and
   the table of scores.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import CONFIG_FILE, STATE_FILE
from .config import TrainConfig
from .data.demo_scenes import CLASSES, load_layouts, load_rgb_folder, make_demo_dataset, render_photo
from .data.images import tensor_to_pil
from .metrics.layout import PixelClassifier, structure_appearance_report
from .nets.backbones import describe_backbone
from .train import resume, train
from .translate import translate_paths
from .viz.grid import image_grid
from .explain import load_run_method
from .viz.heatmap import overlay, pair_maps
from .viz.page import table, write_page

log = logging.getLogger("sesim")

RUN_NAME = "demo"


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 -> ``(N, 3, H, W)`` float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def demo_config(out: Path, *, steps: int | None, structure: str | None, device: str, seed: int) -> TrainConfig:
    cfg = TrainConfig()
    cfg.apply_preset("demo")
    cfg.update("data", {"data": str(out / "data")})
    cfg.update("run", {"runs": str(out / "runs"), "name": RUN_NAME, "device": device, "seed": seed})
    if steps is not None:
        cfg.run.steps = steps
    if structure is not None:
        cfg.structure.structure = structure
    return cfg


def run_demo(out: Path, *, steps: int | None = None, structure: str | None = None, device: str = "auto",
             seed: int = 0, progress: bool = True) -> Path:
    """Run the whole demo into ``out``; returns the path of the results page."""
    if out.exists() and any(out.iterdir()) and not (out / "data" / "meta.json").exists():
        raise FileExistsError(f"{out} is not empty and holds no previous demo; the demo writes several files "
                              "there, so give it a new or empty folder with --out")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    meta = make_demo_dataset(out / "data", size=64, seed=seed)
    log.info("demo data: %s (%s)", out / "data", meta.get("description", ""))
    cfg = demo_config(out, steps=steps, structure=structure, device=device, seed=seed)
    run_dir = out / "runs" / RUN_NAME
    if (run_dir / STATE_FILE).exists():
        log.info("continuing the existing demo run in %s", run_dir)
        resume(run_dir, steps=cfg.run.steps, progress=progress)
    else:
        if run_dir.exists() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        train(cfg, progress=progress)
    train_seconds = time.perf_counter() - t0

    fake_dir = out / "results" / "fake_B"
    translate_paths(run_dir, out / "data" / "testA", fake_dir, overwrite=True, device=device, progress=False)
    scores = score(out / "data", fake_dir, seed=seed)
    scores["train_seconds_including_data"] = round(train_seconds, 1)
    scores["steps"] = TrainConfig.load(run_dir / CONFIG_FILE).run.steps
    (out / "metrics.json").write_text(json.dumps(scores, indent=2) + "\n")
    return write_demo_page(out, run_dir, scores)


def score(data: Path, fake_dir: Path, *, seed: int = 0) -> dict:
    """Structure and appearance scores of the translations, the do-nothing input and the oracle."""
    classifier = PixelClassifier(len(CLASSES)).fit(load_rgb_folder(data / "trainB"), load_layouts(data / "layouts" / "trainB"))
    layouts = load_layouts(data / "layouts" / "testA")
    real_b = load_rgb_folder(data / "testB")
    rng = np.random.default_rng(seed + 12345)
    candidates = {
        "translation (sesim)": load_rgb_folder(fake_dir),
        "do-nothing (output = input)": load_rgb_folder(data / "testA"),
        "oracle (true photo of the input layout)": np.stack([render_photo(lay, rng) for lay in layouts]),
    }
    return {name: structure_appearance_report(images, layouts, classifier, real_b) for name, images in candidates.items()}


def _query_point(layout: np.ndarray, stride: int) -> tuple[int, int]:
    """Feature-map (row, col) of the most interior building pixel of a layout (else the centre)."""
    mask = layout == CLASSES.index("building")
    if not mask.any():
        return layout.shape[0] // 2 // stride, layout.shape[1] // 2 // stride
    while True:  # erode with a 3x3 cross until one more step would remove everything
        inner = mask.copy()
        inner[1:, :] &= mask[:-1, :]
        inner[:-1, :] &= mask[1:, :]
        inner[:, 1:] &= mask[:, :-1]
        inner[:, :-1] &= mask[:, 1:]
        inner[[0, -1], :] = False
        inner[:, [0, -1]] = False
        if not inner.any():
            break
        mask = inner
    ys, xs = np.nonzero(mask)
    k = len(ys) // 2
    return int(ys[k]) // stride, int(xs[k]) // stride


def write_demo_page(out: Path, run_dir: Path, scores: dict, n_show: int = 8) -> Path:
    method, cfg = load_run_method(run_dir)  # the run's own backbone (and heads), as recorded in its config
    structure = method.structure
    layer = structure.layers[0]
    inputs = _to_tensor(load_rgb_folder(out / "data" / "testA"))[:n_show]
    fakes = _to_tensor(load_rgb_folder(out / "results" / "fake_B"))[:n_show]
    layouts = load_layouts(out / "data" / "layouts" / "testA")[:n_show]
    side, stride = 160, structure.extractor.stride(layer)
    rows = []
    for x, y, lay in zip(inputs, fakes, layouts):
        r, c = _query_point(lay, stride)
        hx, hy = pair_maps(structure, x, y, layer, (r, c))
        lo, hi = float(np.nanmin([hx, hy])), float(np.nanmax([hx, hy]))
        rows.append([tensor_to_pil(t).resize((side, side), Image.NEAREST) for t in (x, y)]
                    + [overlay(t, heat, size=side, mark=(r, c), vmin=lo, vmax=hi) for t, heat in ((x, hx), (y, hy))])
    grid = image_grid(rows, titles=["input (labels)", "translation", f"{layer} map: input", f"{layer} map: translation"])
    grid.save(out / "demo_results.png")

    header = ["images", "structure kept: pixel accuracy", "mean IoU", "appearance distance to real photos"]
    body = [[name, f"{s['pixel_accuracy']:.3f}", f"{s['mean_iou']:.3f}", f"{s['appearance_distance']:.1f}"]
            for name, s in scores.items() if isinstance(s, dict)]
    html = [
        "<p>sesim trained a translator from flat label maps (domain A) to photo-like renderings (domain B) "
        "<b>without paired examples</b>: the training photos show other layouts than the training labels. "
        "The structure loss compares self-similarity maps of the input and the translation, so the layout is "
        "kept while the appearance changes completely.</p>",
        f"<p>Training: {scores['steps']} steps, {scores['train_seconds_including_data']:.0f} s including data generation; "
        f"structure loss <code>{cfg.structure.structure}</code> on <code>{', '.join(structure.layers)}</code> of "
        f"{describe_backbone(structure.extractor)}.</p>",
        "" if structure.extractor.name == "vgg16" else
        "<p>The paper's backbone, ImageNet VGG16, was not found on this machine, so the structure loss compares "
        "self-similarity of the ImageNet EfficientNet-Lite0 that installs with sesim (its feature maps at the same "
        "strides as the paper's relu3_1 and relu4_1). Put torchvision's <code>vgg16-397923af.pth</code> in the torch "
        "hub cache to use VGG16.</p>",
        "<h2>Scores on held-out label maps</h2>", table(body, header),
        "<p><b>Structure kept</b>: a per-pixel classifier trained only on real domain-B photos labels each pixel of "
        "the images; the score is its agreement with the true layout of the input (1 = every region in place and "
        "looking like its class). <b>Appearance distance</b>: sliced Wasserstein distance between the colour "
        "distributions of the images and of real held-out photos (0 = photo colours). The do-nothing row is the "
        "floor, the oracle row the ceiling.</p>",
        "<h2>Held-out inputs, translations and self-similarity</h2>",
        "<p>Heat maps: the self-similarity of one query point (white ring, inside a building) to every "
        f"position of the <code>{layer}</code> feature map, for the input and for its translation. Similar maps "
        "mean the same structure, whatever the colours.</p>",
        "<img src='demo_results.png'>",
        f"<p>Training run: <a href='runs/{RUN_NAME}/index.html'>runs/{RUN_NAME}/index.html</a> (sample grids, "
        "losses, configuration); numbers in <code>metrics.json</code>.</p>",
    ]
    page = out / "index.html"
    write_page(page, "sesim demo: labels -> photo without pairs", "\n".join(html))
    return page

