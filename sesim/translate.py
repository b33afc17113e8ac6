"""Inference: translate one image or a folder with a trained run's generator.

Images of any size are padded (reflection) to a multiple of the generator's stride, translated
and cropped back, so outputs have exactly the input's size. Outputs keep the input's relative
path and stem, saved as PNG (lossless, the convention for FID-style evaluation); existing files
are never overwritten unless asked.
"""

from __future__ import annotations

import functools
import logging
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import speedups
from .config import TrainConfig, _f
from .data.images import IMAGE_EXTENSIONS, ImageError, keep_readable, list_images, load_image, pil_to_tensor, save_image
from .layerwise import program_for, run_program
from .memory import MemorySize, return_freed_memory_promptly
from .nets.munit import style_codes
from .ranges import Choice, count
from .run import Run
from .runtime import resolve_device
from .tiled import plan_inference, translate_tiled
from .translate_exemplar import match_exemplars, translate_exemplar_jobs

log = logging.getLogger("sesim")


class TranslateError(RuntimeError):
    """Bad request for translate (message says what to do)."""


def load_run_generator(run_dir: str | Path, *, weights: str | Path | None = None, direction: str = "AtoB",
                       device: str | torch.device = "cpu") -> tuple[torch.nn.Module, TrainConfig]:
    """A run's generator for ``direction`` (its latest, or ``weights``) in eval mode on ``device``,
    and the run's config. Raises :class:`~sesim.run.RunError` for an unusable run folder or file."""
    run = Run(run_dir)
    return run.generator(direction, weights=weights, device=device), run.config


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflection-pad ``(N, C, H, W)`` on the bottom/right to multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


@torch.inference_mode()
def translate_tensor(generator: torch.nn.Module, x: torch.Tensor, stride: int = 4,
                     tile: int | str | None = None, *, style: torch.Tensor | None = None,
                     max_memory: int | None = None, progress: bool = False, precision: str = "fp32") -> torch.Tensor:
    """``(N, C, H, W)`` in [-1, 1], any H and W -> float32 translations of the same shape.

    ``tile``: None translates the whole image in one pass; otherwise see
    :func:`sesim.tiled.plan_inference` (``"auto"`` tiles when the estimated memory exceeds
    ``max_memory``; tiled output equals whole-image output up to float rounding). ``style``:
    the style code of a multimodal generator. ``progress``: a tile progress bar when tiling.
    ``precision="bf16"``: whole-image and blended-tile passes under bfloat16 autocast (faster on
    CPUs with AVX-512 BF16 / AMX and on GPUs; outputs differ from float32 by about one 8-bit level on
    average: ``python bench/reference_speed.py`` reports speed and difference); exact layer-wise
    tiles stay float32."""
    padded, (h, w) = pad_to_multiple(x, stride)
    min_side = 2 * stride  # the bottleneck (1/stride scale) must be >= 2 px for its reflection padding
    if min(padded.shape[-2:]) < min_side:
        extra_h, extra_w = max(0, min_side - padded.shape[-2]), max(0, min_side - padded.shape[-1])
        padded = F.pad(padded, (0, extra_w, 0, extra_h), mode="replicate")
    kwargs = {} if style is None else {"style": style}
    reduced = speedups.autocast(padded.device, precision)
    plan = None if tile is None else plan_inference(generator, tuple(padded.shape), tile=tile, max_memory=max_memory,
                                                    style=style)
    if plan is None or plan.kind == "whole":
        with reduced:
            return generator(padded, **kwargs)[..., :h, :w].float()
    log.info("%s", plan.describe(h, w))
    with tqdm(total=0, disable=not progress, unit="tile", leave=False, desc="tiles") as bar:
        def tick(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        if plan.kind == "blend":
            net = functools.partial(generator, **kwargs) if kwargs else generator
            with reduced:
                out = translate_tiled(net, padded, tile=plan.tile, stride=stride, margin=generator.receptive_radius,
                                      progress=tick).float()
        else:
            return_freed_memory_promptly()
            program = program_for(generator, style=style, batch=padded.shape[0])
            out = run_program(program, padded, budget=plan.work_bytes, tile=plan.tile, spill=plan.spill,
                              progress=tick)
    return out[..., :h, :w]


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


@dataclass
class TranslateOptions:
    """How to translate: the flags of ``sesim translate`` (the CLI generates them from these fields,
    ``batch_size`` -> ``--batch-size``) and the keyword arguments of :func:`translate_paths`."""

    overwrite: bool = _f(False, "replace existing output files")
    batch_size: int = _f(4, "images per forward pass (equal sizes are batched)", range=count(1))
    device: str = _f("auto", "auto | cpu | cuda | cuda:N | mps")
    direction: str = _f("AtoB", "BtoA uses the reverse generator of two-sided methods (CycleGAN)",
                        choices=("AtoB", "BtoA"))
    weights: str | Path | None = _f(None, "a generator .safetensors other than the run's latest")
    samples: int = _f(1, "multimodal runs: K outputs per input with different style codes, as <stem>_s<k>.png",
                      range=count(1), metavar="K")
    seed: int = _f(0, "multimodal runs: seed of the style codes (reproducible)", range=count(0))
    style_from: str | Path | None = _f(None, "multimodal runs with a style encoder: take the appearance of this "
                                             "target-domain image", metavar="IMAGE")
    exemplar: str | Path | None = _f(None, "exemplar runs (--mode exemplar): the photo whose style to follow, for "
                                           "every input, or a folder of photos paired with the inputs by name",
                                     metavar="PHOTO_OR_DIR")
    tile: int | str | None = _f("auto", "translate in tiles of at most PX pixels (same result as whole-image "
                                        "inference: blended overlapping tiles for single-image runs, exact "
                                        "layer-by-layer tiles with image-wide normalisation statistics for the "
                                        "others); auto (default) tiles only images whose estimated memory exceeds "
                                        "--max-memory, none never tiles",
                                metavar="PX", type=Choice(("auto", "none", "off"), count(8)))
    skip_unreadable: bool = _f(False, "skip input images that cannot be read (with a warning) instead of stopping")
    max_memory: int | None = _f(None, "memory limit of the process, e.g. 4G (default: what it uses plus 70%% of the "
                                      "available memory); larger images are translated in tiles, with activations "
                                      "in temporary files if needed", metavar="SIZE", type=MemorySize())
    precision: str = _f("fp32", "bf16: translate under bfloat16 autocast (1.7x the images/s of fp32 at 256 px on a "
                                "CPU with AVX-512 BF16; outputs about one 8-bit level from fp32 on average; exact "
                                "layer-wise tiles stay fp32)", choices=speedups.PRECISIONS)


def translate_paths(run_dir: str | Path, input_path: str | Path, output_dir: str | Path,
                    options: TranslateOptions | None = None, *, progress: bool = True, **changes) -> list[Path]:
    """Translate an image file or a folder (recursively) into ``output_dir``; returns written paths.

    ``options`` (default :class:`TranslateOptions`), with any field changed by keyword
    (``translate_paths(run, src, out, samples=3)``). Multimodal runs only: ``samples`` > 1 writes
    ``<stem>_s<k>.png`` for k = 0..samples-1, sample k using style code k of
    ``style_codes(style_dim, samples, seed)`` (the same code for every input; reproducible);
    ``samples`` = 1 writes ``<stem>.png`` with code 0. ``style_from`` takes the style code from a
    reference target-domain image (needs a run trained with a style encoder). ``tile``,
    ``max_memory``: tiled inference for images that would not fit in memory whole
    (:func:`sesim.tiled.plan_inference`). Inputs are checked before anything is written
    (:func:`sesim.data.images.keep_readable`): an unreadable one stops the command, or is
    skipped with ``skip_unreadable``. ``precision``: ``"fp32"`` or ``"bf16"`` (see :func:`translate_tensor`).
    ``exemplar``: ``--mode exemplar`` runs only, a photo or a folder of photos paired by name
    (:mod:`sesim.translate_exemplar`). ``progress``: progress bars.
    """
    o = dataclasses.replace(options or TranslateOptions(), **changes)
    input_path, output_dir = Path(input_path), Path(output_dir)
    jobs = plan_jobs(input_path, output_dir)
    dev = resolve_device(o.device)
    generator, cfg = load_run_generator(run_dir, weights=o.weights, direction=o.direction, device=dev)
    try:  # every input is checked before anything is written
        readable, _ = keep_readable([j.source for j in jobs], skip_unreadable=o.skip_unreadable)
    except ImageError as err:
        raise TranslateError(str(err)) from None
    keep = set(readable)
    jobs = [j for j in jobs if j.source in keep]
    if not jobs:
        raise TranslateError(f"no readable image in {input_path}")
    if cfg.mode == "exemplar":
        if o.samples > 1 or o.style_from is not None:
            raise TranslateError("--samples and --style-from are for multimodal runs; an exemplar run takes its "
                                 "style from --exemplar")
        if o.exemplar is None:
            raise TranslateError(f"this run ({cfg.mode} mode) translates with an exemplar: pass --exemplar PHOTO "
                                 "(one for all inputs) or --exemplar DIR (one per input, same names)")
        try:
            exemplars = match_exemplars([j.source for j in jobs], input_path, Path(o.exemplar))
            keep_readable(sorted(set(exemplars)), skip_unreadable=False)
        except (ValueError, FileNotFoundError, NotADirectoryError) as err:
            raise TranslateError(str(err)) from None
    elif o.exemplar is not None:
        raise TranslateError(f"--exemplar needs a --mode exemplar run; this run's mode is {cfg.mode!r}")
    elif o.samples < 1:
        raise TranslateError(f"--samples must be >= 1, got {o.samples}")
    elif o.samples > 1 and o.style_from is not None:
        raise TranslateError("--style-from gives one style: it cannot be combined with --samples > 1")
    suffixes = [f"_s{k}" for k in range(o.samples)] if o.samples > 1 else [""]
    targets = {j.source: [j.target.with_name(j.target.stem + sfx + ".png") for sfx in suffixes] for j in jobs}
    existing = [t for variants in targets.values() for t in variants if t.exists()]
    if existing and not o.overwrite:
        raise TranslateError(f"{len(existing)} output file(s) already exist (e.g. {existing[0]}); nothing was written. "
                             "Pass --overwrite to replace them or choose another --output.")
    if cfg.mode == "exemplar":
        try:
            return translate_exemplar_jobs(generator, cfg.data.channels, jobs, exemplars, device=dev, progress=progress)
        except ImageError as err:
            raise TranslateError(str(err)) from None
    stride = getattr(generator, "stride", 4)
    styles = style_variants(generator, cfg, samples=o.samples, seed=o.seed, style_from=o.style_from, device=dev)
    written: list[Path] = []
    bar = tqdm(total=len(jobs) * len(suffixes), disable=not progress, unit="img")
    for group in _batches_by_size(jobs, cfg.data.channels, o.batch_size):  # each input loaded once for all styles
        x = (group[0][1][None] if len(group) == 1 else torch.stack([t for _, t in group])).to(dev)
        for k, style in enumerate(styles):
            try:
                y = translate_tensor(generator, x, stride, tile=o.tile, style=style, max_memory=o.max_memory,
                                     progress=progress, precision=o.precision).cpu()
            except ValueError as err:  # a bad --tile request, or an image that cannot fit
                raise TranslateError(f"{group[0][0].source}: {err}") from None
            for (job, _), out in zip(group, y):
                target = targets[job.source][k]
                target.parent.mkdir(parents=True, exist_ok=True)
                save_image(out, target)
                written.append(target)
            bar.update(len(group))
    bar.close()
    return written


def style_variants(generator: torch.nn.Module, cfg: TrainConfig, *, samples: int = 1, seed: int = 0,
                   style_from: str | Path | None = None, device: torch.device | str = "cpu") -> list[torch.Tensor | None]:
    """The style codes ``(1, style_dim)`` to translate with, one per output variant; ``[None]`` for
    single-modal runs (which take no code and accept neither ``samples`` > 1 nor ``style_from``)."""
    style_dim = getattr(generator, "style_dim", None)
    if style_dim is None:
        if samples > 1 or style_from is not None:
            raise TranslateError(f"--samples and --style-from need a --mode multimodal run; this run's mode is "
                                 f"{cfg.mode!r} (one output per input)")
        return [None]
    if style_from is None:
        return [code[None].to(device) for code in style_codes(style_dim, samples, seed)]
    if not generator.has_style_encoder:
        raise TranslateError("--style-from needs a run trained with a style encoder (--lambda-style > 0); this run "
                             "was trained with --lambda-style 0. Use --samples/--seed for random styles instead")
    try:
        ref = pil_to_tensor(load_image(Path(style_from), cfg.data.channels))[None].to(device)
    except ImageError as err:
        raise TranslateError(str(err)) from err
    if min(ref.shape[-2:]) < 32:
        raise TranslateError(f"--style-from image {style_from} is {tuple(ref.shape[-2:])} px; the style encoder "
                             "needs at least 32 px per side")
    with torch.inference_mode():
        return [generator.encode_style(ref)]


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

