"""Do sesim evaluate's offline metrics react to what they should? (EfficientNet-Lite0 FD/KD,
density/coverage, and segmentation accuracy with a segmenter trained on real photos.)

Data: the built-in labels->photo scenes (64 px). Reference ("real") = 60 held-out photos (testB).
Each "fake" set is a stand-in for a translator's output of known quality:

* ``real photos``   -- 60 other real photos (trainB): the floor (ideal translator)
* ``blurred``       -- the same photos, Gaussian blur sigma 1.5
* ``noisy``         -- the same photos + N(0, 20/255) noise
* ``label maps``    -- the untranslated inputs (testA label renderings): a do-nothing translator

Segmentation accuracy uses :class:`sesim.metrics.layout.PixelClassifier` fitted on the real
training photos + layouts as the user-supplied segmenter (a Python callable), scored on testB
photos (true layouts), their blurred copies, and the untranslated label maps of testA.

Usage: ``python bench/eval_metrics.py [--out bench/results/eval_metrics.json]``
(needs ``pip install sesim[eval]``; about a minute on one CPU core).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from sesim.data.demo_scenes import CLASSES, make_demo_dataset
from sesim.evaluate import evaluate_folders
from sesim.metrics.features import get_extractor
from sesim.metrics.layout import PixelClassifier


def _write(folder: Path, images) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        im.save(folder / f"{i:06d}.png")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/eval_metrics.json")
    ap.add_argument("--n", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="sesim-eval-bench-"))
    data = tmp / "data"
    make_demo_dataset(data, size=64, n_train=args.n, n_test=args.n, seed=0)
    photos = [Image.open(p).convert("RGB") for p in sorted((data / "trainB").glob("*.png"))]
    rng = np.random.default_rng(0)
    sets = {
        "real photos": _write(tmp / "real_photos", photos),
        "blurred": _write(tmp / "blurred", [p.filter(ImageFilter.GaussianBlur(1.5)) for p in photos]),
        "noisy": _write(tmp / "noisy", [Image.fromarray(np.clip(np.asarray(p) + rng.normal(0, 20, (64, 64, 3)), 0,
                                                                255).astype(np.uint8)) for p in photos]),
        "label maps": data / "testA",
    }
    ext = get_extractor("efficientnet-lite0")
    t0 = time.perf_counter()
    n_feat = 0
    results: dict = {"extractor": ext.description, "n": args.n, "feature_metrics": {}, "segmentation": {}}
    for name, folder in sets.items():
        rep = evaluate_folders(data / "testB", folder, metrics="fid,kid,prdc", extractor=ext, kid_subsets=50)
        n_feat += rep["n_real"] + rep["n_fake"]
        results["feature_metrics"][name] = {k: round(v["value"], 5) for k, v in rep["metrics"].items()}
    results["seconds_per_image_effnet_1thread"] = round((time.perf_counter() - t0) / n_feat, 4)

    # segmentation accuracy with a segmenter trained only on real photos
    lay_dir = data / "layouts"
    train_imgs = np.stack([np.asarray(p) for p in photos])
    train_lay = np.stack([np.asarray(Image.open(p)) for p in sorted((lay_dir / "trainB").glob("*.png"))])
    num_classes = len(CLASSES)
    clf = PixelClassifier(num_classes).fit(train_imgs, train_lay)

    def segmenter(x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) in [0, 1] -> (N, H, W) class ids
        arr = (x * 255).round().byte().permute(0, 2, 3, 1).numpy()
        return torch.from_numpy(clf.predict(arr))

    test_b = [Image.open(p).convert("RGB") for p in sorted((data / "testB").glob("*.png"))]
    seg_sets = {
        "real photos (testB)": (data / "testB", lay_dir / "testB"),
        "blurred (testB)": (_write(tmp / "blurred_testB", [p.filter(ImageFilter.GaussianBlur(1.5)) for p in test_b]),
                            lay_dir / "testB"),
        "label maps (testA, untranslated)": (data / "testA", lay_dir / "testA"),
    }
    for name, (folder, labels) in seg_sets.items():
        rep = evaluate_folders(None, folder, metrics="segmentation", segmenter=segmenter, labels=labels,
                               num_classes=num_classes)
        results["segmentation"][name] = {k: round(v["value"], 4) for k, v in rep["metrics"].items()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
