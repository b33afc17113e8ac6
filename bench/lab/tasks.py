"""Benchmark tasks: a dataset folder plus how to score translations of its ``testA`` images.

* **scenes** -- the demo's labels -> photo task (``sesim.data.demo_scenes``; the true layout of
  every input is known). Structure kept: pixel accuracy and mean IoU of a per-pixel classifier
  trained only on real domain-B photos (``sesim.metrics.layout``) against the input's layout.
* **photos** -- real photographs bundled with scikit-image -> a fixed "negative night" look
  (:mod:`lab.photo_task`; the correct translation of every test input is known). Structure kept:
  mean absolute error (0..255) and SSIM against the known target.
* **custom** -- any ``trainA/trainB[/testA/testB]`` folder: no ground truth, realism only.

Realism, on every task (:func:`realism_scores`): Frechet distance and KID between translations and
held-out real domain-B images in the features of a small CNN trained only on real images
(``lab.realism.RealismFeatures``). Not comparable to published FID/KID numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

#: realism keys of every task's scores (lower is better): (key, table header, higher is better)
REALISM_COLUMNS = (("fd", "FD ↓", False), ("kid_x100", "KID×100 ↓", False))


def load_folder(folder: Path, size: int | None = None, limit: int | None = None) -> np.ndarray:
    """All images of a folder (sorted) as ``(N, size, size, 3)`` uint8: shorter side resized to
    ``size``, centre-cropped (no resizing when ``size`` is None and all images have one size)."""
    from sesim.data.images import list_images, load_image

    files = list_images(folder)
    if limit is not None and len(files) > limit:
        idx = np.random.default_rng(0).choice(len(files), size=limit, replace=False)
        files = [files[i] for i in sorted(idx)]
    out = []
    for path in files:
        img = load_image(path, 3)
        if size is not None and img.size != (size, size):
            s = size / min(img.size)
            img = img.resize((max(size, round(img.width * s)), max(size, round(img.height * s))), Image.BICUBIC)
            left, top = (img.width - size) // 2, (img.height - size) // 2
            img = img.crop((left, top, left + size, top + size))
        out.append(np.asarray(img, dtype=np.uint8))
    return np.stack(out)


def realism_scores(extractor: Any, images, reference, *, kid_subsets: int = 10, kid_subset_size: int = 100,
                   seed: int = 0, reference_features: np.ndarray | None = None) -> dict:
    """``{"fd", "kid", "kid_std"}`` of ``images`` against real ``reference`` images in the space of a
    fitted ``lab.realism.RealismFeatures``."""
    from sesim.metrics.frechet import frechet_distance, kernel_inception_distance

    fx = extractor.features(images)
    fy = reference_features if reference_features is not None else extractor.features(reference)
    kid, kid_std = kernel_inception_distance(fx, fy, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    return {"fd": frechet_distance(fx, fy), "kid": kid, "kid_std": kid_std}


@dataclass
class Task:
    """A dataset folder plus how to score translations of its ``testA`` images.

    ``fit()`` builds the scorers (structure scorer where the truth is known, realism features)
    from real images only; ``score(images)`` then returns every metric of a set of translations.
    """

    name: str
    title: str
    data: Path
    inputs: np.ndarray                      # testA (N, H, W, 3)
    reference: np.ndarray                   # held-out real B for realism
    targets: np.ndarray | None              # known/oracle outputs, or None
    make_structure: Callable[[], Callable[[np.ndarray], dict]] | None
    structure_columns: list[tuple[str, str, bool]]  # (key, header, higher is better)
    notes: list[str] = field(default_factory=list)
    structure: Callable[[np.ndarray], dict] | None = None
    extractor: Any = None
    reference_features: np.ndarray | None = None
    fit_seconds: float = 0.0

    def fit(self, *, size: int, feature_steps: int, device: str = "cpu") -> "Task":
        from lab.realism import RealismFeatures

        t0 = time.perf_counter()
        if self.make_structure is not None:
            self.structure = self.make_structure()
        real_a = load_folder(self.data / "trainA", size, limit=2000)
        real_b = load_folder(self.data / "trainB", size, limit=2000)
        self.extractor = RealismFeatures(steps=feature_steps, seed=0, device=device).fit(real_a, real_b)
        self.reference_features = self.extractor.features(self.reference)
        self.fit_seconds = time.perf_counter() - t0
        return self

    def score(self, images: np.ndarray) -> dict:
        out = dict(self.structure(images)) if self.structure is not None else {}
        r = realism_scores(self.extractor, images, None, reference_features=self.reference_features,
                           kid_subsets=10, kid_subset_size=100, seed=0)
        out.update({"fd": r["fd"], "kid_x100": 100 * r["kid"], "kid_std_x100": 100 * r["kid_std"]})
        return out


def layout_scorer(train: Path, layouts: np.ndarray) -> Callable[[np.ndarray], dict]:
    """Pixel accuracy and mean IoU against ``layouts`` of a per-pixel classifier fitted on the real
    domain-B photos of the scenes dataset ``train`` and their layouts."""
    from sesim.data.demo_scenes import CLASSES, load_layouts, load_rgb_folder
    from sesim.metrics.layout import PixelClassifier, mean_iou, pixel_accuracy

    classifier = PixelClassifier(len(CLASSES)).fit(load_rgb_folder(train / "trainB"),
                                                   load_layouts(train / "layouts" / "trainB"))

    def structure(images: np.ndarray) -> dict:
        pred = classifier.predict(images)
        return {"pixel_accuracy": pixel_accuracy(pred, layouts), "mean_iou": mean_iou(pred, layouts, len(CLASSES))}

    return structure


def scenes_task(root: Path, *, size: int, n_train: int, n_test: int) -> Task:
    from sesim.data.demo_scenes import load_layouts, load_rgb_folder, make_demo_dataset, render_photo

    make_demo_dataset(root, size=size, n_train=n_train, n_test=n_test, seed=0)
    layouts = load_layouts(root / "layouts" / "testA")
    rng = np.random.default_rng(12345)
    oracle = np.stack([render_photo(lay, rng) for lay in layouts])
    return Task("scenes", "labels -> photo (synthetic scenes, known layout)", root, load_rgb_folder(root / "testA"),
                load_rgb_folder(root / "testB"), oracle, lambda: layout_scorer(root, layouts),
                [("pixel_accuracy", "pixel acc. ↑", True), ("mean_iou", "mean IoU ↑", True)],
                notes=["structure: a per-pixel classifier trained only on real domain-B photos labels each pixel of the "
                       "translation; pixel accuracy / mean IoU against the true layout of the input",
                       "oracle: a fresh photo rendering of each input's true layout"])


def photos_task(root: Path, *, size: int, n_train: int, n_test: int) -> Task:
    from sesim.data.demo_scenes import load_rgb_folder

    from .photo_task import make_photo_dataset, target_errors

    make_photo_dataset(root, size=size, n_train=n_train, n_test=n_test, seed=0)
    targets = load_rgb_folder(root / "targets" / "testA")
    return Task("photos", "real photos -> 'negative night' look (skimage photos, known target)", root,
                load_rgb_folder(root / "testA"), load_rgb_folder(root / "testB"), targets,
                lambda: (lambda images: target_errors(images, targets)),
                [("target_l1", "L1 to target ↓", False), ("target_ssim", "SSIM to target ↑", True)],
                notes=["structure: mean absolute error (0..255) and SSIM of the translation against the known target "
                       "(the fixed transform applied to the input)", "oracle: the known target itself"])


def custom_task(data: Path, *, size: int) -> Task:
    notes = ["no ground truth: only realism is measured (and the do-nothing row)"]
    test_a = data / "testA" if (data / "testA").is_dir() else data / "trainA"
    ref = data / "testB" if (data / "testB").is_dir() else data / "trainB"
    if ref.name == "trainB":
        notes.append("no testB: the realism reference is trainB (the training images themselves)")
    if test_a.name == "trainA":
        notes.append("no testA: translations are of trainA images")
    return Task("custom", f"{data.name} (custom data)", data, load_folder(test_a, size, limit=256),
                load_folder(ref, size, limit=1000), None, None, [], notes=notes)


BUILT_IN = {"scenes": scenes_task, "photos": photos_task}
