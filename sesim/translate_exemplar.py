"""Inference of ``--mode exemplar`` runs: ``sesim translate --run RUN --input CONDITIONS --exemplar
PHOTO_OR_DIR``.

``--exemplar`` is one photo (used for every input) or a folder whose photos pair with the inputs
by relative path without extension (``in/a/x.png`` takes ``ex/a/x.jpg``), like the training
folders. Inputs of any size are reflection-padded to the generator's stride and cropped back;
exemplars of any size and mode (greyscale, RGBA, ...) are converted to the run's channels and
resized for the correspondence (which works on the training size's grid). Everything is checked
before anything is written; existing outputs are never overwritten unless asked.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data.images import IMAGE_EXTENSIONS, list_images, load_image, pil_to_tensor, save_image

__all__ = ["match_exemplars", "translate_exemplar_jobs", "exemplar_translate_tensor"]


def match_exemplars(sources: list[Path], input_path: Path, exemplar: Path) -> list[Path]:
    """The exemplar of each source: ``exemplar`` itself if it is a file, else the file of ``exemplar``
    with the source's relative path (a single input file: its stem). Raises ``ValueError`` naming
    the inputs without one."""
    if not exemplar.exists():
        raise ValueError(f"exemplar {exemplar} does not exist")
    if exemplar.is_file():
        if exemplar.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ValueError(f"exemplar {exemplar} does not have an image extension")
        return [exemplar] * len(sources)
    by_key = {str(p.relative_to(exemplar).with_suffix("")): p for p in list_images(exemplar)}
    keys = [Path(s.name).stem if input_path.is_file() else str(s.relative_to(input_path).with_suffix(""))
            for s in sources]
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise ValueError(f"{len(missing)} input(s) have no exemplar of the same name in {exemplar} (e.g. "
                         f"{', '.join(missing[:3])}); name the exemplars like the inputs, or pass one exemplar "
                         "file for all")
    return [by_key[k] for k in keys]


@torch.inference_mode()
def exemplar_translate_tensor(translator: torch.nn.Module, condition: torch.Tensor,
                              exemplar: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` conditions of any size and ``(N or 1, C, H', W')`` exemplars, in [-1, 1] ->
    ``(N, C, H, W)`` translations (padded to the stride, at least 2 strides, and cropped back)."""
    stride = translator.stride
    h, w = condition.shape[-2:]
    ph, pw = max((-h) % stride, 2 * stride - h), max((-w) % stride, 2 * stride - w)
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        condition = F.pad(condition, (0, pw, 0, ph), mode=mode)
    return translator(condition, exemplar)[..., :h, :w]


def translate_exemplar_jobs(translator: torch.nn.Module, channels: int, jobs: list, exemplars: list[Path], *,
                            device: torch.device, progress: bool) -> list[Path]:
    """Translate ``jobs`` (:class:`sesim.translate.Job`, checked by the caller) with their ``exemplars``
    (:func:`match_exemplars`); returns the written paths. Raises ``ImageError`` for an unreadable image."""
    cache: dict[Path, torch.Tensor] = {}
    written: list[Path] = []
    for job, ex in tqdm(list(zip(jobs, exemplars)), disable=not progress, unit="img"):
        x = pil_to_tensor(load_image(job.source, channels))[None].to(device)
        if ex not in cache:
            cache = {ex: pil_to_tensor(load_image(ex, channels))[None].to(device)}  # one exemplar kept at a time
        y = exemplar_translate_tensor(translator, x, cache[ex]).float().cpu()
        job.target.parent.mkdir(parents=True, exist_ok=True)
        save_image(y[0], job.target)
        written.append(job.target)
    return written
