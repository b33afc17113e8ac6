"""The images in the page's strip: ``--input`` files, or a run's own sample images.

Every image is a ``(C, H, W)`` tensor in [-1, 1] with the run's channel count. ``--input`` images
are resized so that their longer side is ``size`` pixels (aspect kept; ``size = 0`` keeps them as
they are); a run's sample images are shown at the size the run trained on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..data.images import IMAGE_EXTENSIONS, EmptyFolderError, ImageError, list_images, load_image, pil_to_tensor
from ..train import TrainingError, sample_inputs
from .runs import ViewError, ViewRun

log = logging.getLogger("sesim")

#: at most this many images of an ``--input`` folder are put in the strip
MAX_IMAGES = 200
#: side of the images of a single-image run (its training size is a patch size)
SINGLE_IMAGE_SIDE = 256


@dataclass
class ViewImage:
    """An image of the strip: ``name`` to show, ``image`` ``(C, H, W)`` in [-1, 1]."""

    name: str
    image: torch.Tensor


def _read(path: Path, channels: int, size: int) -> torch.Tensor:
    """The image file, longer side resized to ``size`` (``0``: as it is), ``(C, H, W)`` in [-1, 1]."""
    img = load_image(path, channels)
    if size > 0 and max(img.size) != size:
        scale = size / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
    return pil_to_tensor(img)


def _one_image(path: Path, channels: int, size: int) -> list[ViewImage]:
    try:
        return [ViewImage(path.name, _read(path, channels, size))]
    except ImageError as err:
        raise ViewError(str(err)) from None


def load_inputs(path: str | Path, channels: int, size: int) -> list[ViewImage]:
    """``--input``: one image file or a folder (searched recursively, first :data:`MAX_IMAGES`).

    Unreadable files of a folder are skipped with one warning line each; an unreadable single file,
    an empty folder or a folder of only unreadable files is a :class:`ViewError`.
    """
    path = Path(path)
    if not path.exists():
        raise ViewError(f"--input {path} does not exist")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ViewError(f"--input {path} does not have an image extension ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return _one_image(path, channels, size)
    try:
        files = list_images(path)
    except (EmptyFolderError, NotADirectoryError) as err:
        raise ViewError(str(err)) from None
    if len(files) > MAX_IMAGES:
        log.warning("--input %s holds %d images; showing the first %d", path, len(files), MAX_IMAGES)
    files = files[:MAX_IMAGES]
    images = []
    for file in files:
        try:
            images.append(ViewImage(str(file.relative_to(path)), _read(file, channels, size)))
        except ImageError as err:
            log.warning("skipping %s", err)
    if not images:
        raise ViewError(f"none of the {len(files)} image file(s) in {path} could be read")
    return images


def run_images(run: ViewRun) -> list[ViewImage]:
    """A run's own sample images: the ones its sample grids show (test images from its data
    folder, else training images), read from the data folder when it is still there, else cut out
    of the newest sample grid in the run folder."""
    cfg = run.cfg
    if cfg.mode == "single-image":
        source = Path(cfg.data.dir_a or "")
        if source.is_file():
            return _one_image(source, cfg.data.channels, SINGLE_IMAGE_SIDE)
        tensors = []
    else:
        try:
            tensors = sample_inputs(cfg)
        except (TrainingError, ImageError, OSError, ValueError) as err:
            log.info("the data folder of run %s is not readable here (%s); using its sample grids", run.name, err)
            tensors = []
    if not tensors:
        tensors = run.snapshot_inputs()
    if not tensors:
        raise ViewError(f"run {run.name} has no sample images to show (its data folder {cfg.data.data or cfg.data.dir_a} "
                        "is not here and it has no samples/step_*.png); give --input IMAGE_OR_FOLDER")
    return [ViewImage(f"sample {i + 1}", t) for i, t in enumerate(tensors)]
