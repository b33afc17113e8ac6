"""Test-set scores during training (``--eval-every N``).

Every N steps the current generator translates (at most ``--eval-images``) testA images, resized
to the training size, and FD/KD between the translations and testB (same size) are computed with
the best extractor available offline, always named by what it is:

1. the standard FID Inception (names ``fid``/``kid``) if its weights file is found
   (``$SESIM_INCEPTION_WEIGHTS`` or the torch hub cache);
2. else EfficientNet-Lite0 (``fd_effnet``/``kd_effnet``) if its pip packages are installed;
3. else sesim's :class:`~sesim.metrics.realism.RealismFeatures` trained once, at the start of the
   run, on the run's real *training* images at 64 px (``fd_realism``/``kd_realism``).

KD values are x100 (:data:`~sesim.metrics.frechet.KID_SCALE`, as everywhere in sesim). Each score goes
to ``log.jsonl`` (``{"step", "eval_<name>": value}``) and TensorBoard
(``eval/<name>``), and ``metrics.json`` in the run folder keeps the ``last`` values and, per
metric, the ``best`` (lowest) value with its ``step``, plus the ``history``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import write_text_atomic
from ..data.unpaired import load_fixed_images
from .features import Extractor, auto_extractor
from .frechet import KID_SCALE, frechet_distance, kernel_inception_distance

log = logging.getLogger("sesim")

__all__ = ["TestSetScorer", "update_metrics_file", "METRICS_FILE"]

METRICS_FILE = "metrics.json"
REALISM_SIZE = 64


def _to_uint8_rgb(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` in [-1, 1] (C = 1 or 3) -> ``(N, 3, H, W)`` uint8."""
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _realism_extractor(train_a: list[torch.Tensor], train_b: list[torch.Tensor], seed: int, steps: int) -> Extractor:
    from .realism import RealismFeatures

    def small(batch: torch.Tensor) -> np.ndarray:  # (N, 3, H, W) uint8 -> (N, 64, 64, 3) uint8
        x = F.interpolate(batch.float(), size=(REALISM_SIZE, REALISM_SIZE), mode="bilinear", antialias=True,
                          align_corners=False)
        return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()

    feats = RealismFeatures(steps=steps, seed=seed)
    feats.fit(small(torch.stack(train_a)), small(torch.stack(train_b)))
    desc = (f"sesim RealismFeatures (self-trained {steps} steps, seed {seed}, on this run's real training "
            f"images at {REALISM_SIZE}px; bilinear resize); NOT comparable to published FID/KID or other runs")
    return Extractor("realism", desc, lambda x: feats.features(small(x)))


class TestSetScorer:
    """Loads the test images once and scores a method's translations (see module doc).

    ``extractor``: use this :class:`Extractor` instead of the automatic choice (tests pass a small
    random one).
    """

    def __init__(self, test_a: Path, test_b: Path, *, size: int, channels: int, max_images: int = 200,
                 extractor: Extractor | None = None, train_dirs: tuple[Path, Path] | None = None,
                 seed: int = 0, realism_steps: int = 400, device: torch.device | str = "cpu",
                 skip_unreadable: bool = False) -> None:
        self.device = torch.device(device)
        self.skip_unreadable = skip_unreadable
        self.inputs = self._load(test_a, size, channels, max_images)
        self.real = _to_uint8_rgb(self._load(test_b, size, 3, max_images))
        if len(self.inputs) < 2 or len(self.real) < 2:
            raise ValueError(f"--eval-every needs at least 2 images in {test_a} and {test_b}")
        if extractor is None:
            extractor = auto_extractor(device=self.device)
        if extractor is None:
            if train_dirs is None:
                raise ValueError("no pretrained extractor available and no training images to fit one")
            ta = list(_to_uint8_rgb(self._load(train_dirs[0], size, 3, 500)))
            tb = list(_to_uint8_rgb(self._load(train_dirs[1], size, 3, 500)))
            log.info("eval: no FID Inception weights and no EfficientNet-Lite0 package; training sesim's "
                     "realism features on the real training images (%d steps)", realism_steps)
            extractor = _realism_extractor(ta, tb, seed, realism_steps)
        self.extractor = extractor
        self.real_features = extractor.features(list(self.real))
        log.info("eval: %s on %d testA / %d testB images with %s", extractor.fd_name, len(self.inputs),
                 len(self.real), extractor.description)

    def _load(self, folder: Path, size: int, channels: int, limit: int) -> torch.Tensor:
        images = load_fixed_images(folder, size=size, channels=channels, limit=limit,
                                   skip_unreadable=self.skip_unreadable)
        return torch.stack(images) if images else torch.zeros(0, channels, size, size)

    @torch.no_grad()
    def score(self, method, batch_size: int = 8) -> dict[str, float]:
        """``{fd_name: value, kd_name: value}`` of ``method``'s AtoB translations of the test inputs."""
        was_training = method.training
        method.eval()
        outs = []
        for i in range(0, len(self.inputs), batch_size):
            outs.append(_to_uint8_rgb(method.translate(self.inputs[i:i + batch_size].to(self.device)).cpu()))
        if was_training:
            method.train()
        ff = self.extractor.features(list(torch.cat(outs)))
        m = min(1000, len(ff), len(self.real_features))
        kd, _ = kernel_inception_distance(self.real_features, ff, subsets=50, subset_size=m, seed=0)
        return {self.extractor.fd_name: frechet_distance(self.real_features, ff), self.extractor.kd_name: KID_SCALE * kd}


def update_metrics_file(run_dir: Path, step: int, values: dict[str, float], description: str) -> dict[str, Any]:
    """Add one evaluation to ``run_dir/metrics.json`` (``last``, ``best`` = lowest per metric with its
    ``step``, ``history``); entries from steps >= ``step`` (redone after a resume) are replaced."""
    path = run_dir / METRICS_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = {}
    history = [h for h in data.get("history", []) if h.get("step", 0) < step]
    history.append({"step": step, **values})
    best: dict[str, dict] = {}
    for h in history:
        for k, v in h.items():
            if k != "step" and (k not in best or v < best[k]["value"]):
                best[k] = {"value": v, "step": h["step"]}
    data = {"extractor": description, "kid_scale": KID_SCALE, "lower_is_better": True, "last": {"step": step, **values}, "best": best,
            "history": history}
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
    return data
