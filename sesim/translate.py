"""Inference: translate one image or a folder with a trained run's generator.

Images of any size are padded (reflection) to a multiple of the generator's stride, translated
and cropped back, so outputs have exactly the input's size. Outputs keep the input's relative
path and stem, saved as PNG (lossless, the convention for FID-style evaluation); existing files
are never overwritten unless asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import CONFIG_FILE, generator_file, load_generator_weights
from .config import TrainConfig
from .data.images import IMAGE_EXTENSIONS, ImageError, list_images, load_image, pil_to_tensor, save_image
from .methods import build_generator
from .train import resolve_device


class TranslateError(RuntimeError):
    """Bad request for translate (message says what to do)."""


def load_run_generator(run_dir: str | Path, *, weights: str | Path | None = None, direction: str = "AtoB",
                       device: str | torch.device = "cpu") -> tuple[torch.nn.Module, TrainConfig]:
    """Rebuild a run's generator from ``config.json`` and load its weights for ``direction``
    (``generator.safetensors`` for AtoB), or ``weights``. Returns the module in eval mode on
    ``device`` and the run's config."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise TranslateError(f"{run_dir} is not a sesim run folder (no {CONFIG_FILE})")
    cfg = TrainConfig.load(run_dir / CONFIG_FILE)
    path = Path(weights) if weights else run_dir / generator_file(direction)
    if not path.is_file():
        if direction != "AtoB" and (run_dir / generator_file("AtoB")).is_file():
            raise TranslateError(f"{path} not found: method {cfg.method!r} is one-sided and only translates AtoB")
        raise TranslateError(f"{path} not found: the run has not saved a generator yet")
    generator = build_generator(cfg)
    generator.load_state_dict(load_generator_weights(path))
    return generator.to(device).eval(), cfg


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflection-pad ``(N, C, H, W)`` on the bottom/right to multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


@torch.inference_mode()
def translate_tensor(generator: torch.nn.Module, x: torch.Tensor, stride: int = 4) -> torch.Tensor:
    """``(N, C, H, W)`` in [-1, 1], any H and W -> translations of the same shape."""
    padded, (h, w) = pad_to_multiple(x, stride)
    min_side = 2 * stride  # the bottleneck (1/stride scale) must be >= 2 px for its reflection padding
    if min(padded.shape[-2:]) < min_side:
        extra_h, extra_w = max(0, min_side - padded.shape[-2]), max(0, min_side - padded.shape[-1])
        padded = F.pad(padded, (0, extra_w, 0, extra_h), mode="replicate")
    return generator(padded)[..., :h, :w]


@dataclass
class Job:
    source: Path
    target: Path


def plan_jobs(input_path: Path, output_dir: Path) -> list[Job]:
    if not input_path.exists():
        raise TranslateError(f"input {input_path} does not exist")
    if input_path.is_file():
        if input_path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise TranslateError(f"{input_path} does not have an image extension ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return [Job(input_path, output_dir / f"{input_path.stem}.png")]
    files = list_images(input_path)
    jobs = [Job(f, output_dir / f.relative_to(input_path).with_suffix(".png")) for f in files]
    targets = [j.target for j in jobs]
    dupes = {t for t in targets if targets.count(t) > 1}
    if dupes:
        raise TranslateError(f"several inputs would be written to the same output (same stem, different "
                             f"extension): {sorted(map(str, dupes))[:5]}")
    return jobs


def translate_paths(run_dir: str | Path, input_path: str | Path, output_dir: str | Path, *,
                    overwrite: bool = False, batch_size: int = 4, device: str = "auto", direction: str = "AtoB",
                    weights: str | Path | None = None, progress: bool = True) -> list[Path]:
    """Translate an image file or a folder (recursively) into ``output_dir``; returns written paths."""
    input_path, output_dir = Path(input_path), Path(output_dir)
    jobs = plan_jobs(input_path, output_dir)
    existing = [j.target for j in jobs if j.target.exists()]
    if existing and not overwrite:
        raise TranslateError(f"{len(existing)} output file(s) already exist (e.g. {existing[0]}); nothing was written. "
                             "Pass --overwrite to replace them or choose another --output.")
    dev = resolve_device(device)
    generator, cfg = load_run_generator(run_dir, weights=weights, direction=direction, device=dev)
    stride = getattr(generator, "stride", 4)
    written: list[Path] = []
    bar = tqdm(total=len(jobs), disable=not progress, unit="img")
    for group in _batches_by_size(jobs, cfg.data.channels, batch_size):
        x = torch.stack([t for _, t in group]).to(dev)
        y = translate_tensor(generator, x, stride).float().cpu()
        for (job, _), out in zip(group, y):
            job.target.parent.mkdir(parents=True, exist_ok=True)
            save_image(out, job.target)
            written.append(job.target)
        bar.update(len(group))
    bar.close()
    return written


def _batches_by_size(jobs: list[Job], channels: int, batch_size: int) -> Iterable[list[tuple[Job, torch.Tensor]]]:
    """Load images lazily and group consecutive images of equal size into batches."""
    group: list[tuple[Job, torch.Tensor]] = []
    for job in jobs:
        try:
            t = pil_to_tensor(load_image(job.source, channels))
        except ImageError as err:
            raise TranslateError(str(err)) from err
        if group and (group[0][1].shape != t.shape or len(group) >= batch_size):
            yield group
            group = []
        group.append((job, t))
    if group:
        yield group

