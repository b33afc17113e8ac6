"""Unpaired two-domain image datasets (CycleGAN / CUT layout) and a resumable sampler.

Layout: a data root holding ``trainA/``, ``trainB/`` (and ``testA/``,
``testB/``) folders of images, or two explicit folders.  Each sample pairs
one image of domain A with a randomly drawn image of domain B; both are
preprocessed (resize / crop / flip) independently and returned as float32
tensors of shape ``(C, size, size)`` with values in ``[-1, 1]``.

Determinism: every random decision of a sample (which B image, crop offsets,
flips) comes from a ``random.Random`` seeded from ``(seed, position)``, where
``position`` is the sample's index in the global training stream.  The
:class:`StreamSampler` yields ``(position, index)`` keys whose sequence does
not depend on where iteration started, so a run resumed at step ``k`` sees
exactly the batches the uninterrupted run would have seen, regardless of the
number of DataLoader workers.
"""

from __future__ import annotations

import logging
import operator
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from .images import (EmptyFolderError, ImageError, keep_readable, list_images, load_image, pil_to_tensor,
                     warn_small_images)

if TYPE_CHECKING:
    from ..config import DataConfig

__all__ = ["PREPROCESS_MODES", "resolve_domain_dirs", "preprocess_image", "UnpairedImageDataset", "load_fixed_images",
           "StreamSampler", "make_loader", "domain_dirs"]

PathLike = Union[str, os.PathLike]

logger = logging.getLogger("sesim")

#: Preprocessing modes accepted by :func:`preprocess_image`.
PREPROCESS_MODES: tuple[str, ...] = ("resize_and_crop", "scale_shortside_and_crop", "crop", "resize")
# Modes whose first step scales to ``load_size`` (so load_size >= size is required).
_LOAD_SIZE_MODES = frozenset({"resize_and_crop", "scale_shortside_and_crop"})

# Domain-separation tags for derived seeds (arbitrary constants).
_TAG_SAMPLE = 0x5E51_0001
_TAG_EPOCH = 0x5E51_0002
_MASK64 = (1 << 64) - 1

_MAX_LISTED = 20


def _derive_seed(tag: int, seed: int, counter: int, bits: int = 64) -> int:
    """Stable (cross-process, cross-platform) seed from ``(tag, seed, counter)``."""
    ss = np.random.SeedSequence([tag, int(seed) & _MASK64, int(counter) & _MASK64])
    lo, hi = (int(x) for x in ss.generate_state(2, dtype=np.uint32))
    return ((hi << 32) | lo) >> (64 - bits)


# --------------------------------------------------------------------------
# Folder layout
# --------------------------------------------------------------------------


def _describe_subfolders(root: Path) -> str:
    try:
        subs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        subs = []
    if not subs:
        return "it contains no sub-folders"
    shown = ", ".join(s + "/" for s in subs[:_MAX_LISTED])
    if len(subs) > _MAX_LISTED:
        shown += f", and {len(subs) - _MAX_LISTED} more"
    return f"it contains: {shown}"


def domain_dirs(data: "DataConfig", phase: str = "train") -> tuple[Path, Path]:
    """The source and target image folders of a run's data options (``--data`` or, for training,
    ``--dir-a``/``--dir-b``), swapped for ``--direction BtoA``. Raises as :func:`resolve_domain_dirs`."""
    if phase == "train" and (data.dir_a or data.dir_b):
        if not (data.dir_a and data.dir_b):
            raise ValueError("give both --dir-a and --dir-b (or --data DIR holding trainA/ and trainB/)")
        dir_a, dir_b = resolve_domain_dirs(dir_a=data.dir_a, dir_b=data.dir_b)
    else:
        dir_a, dir_b = resolve_domain_dirs(data.data, phase=phase)
    return (dir_b, dir_a) if data.direction == "BtoA" else (dir_a, dir_b)


def resolve_domain_dirs(data: PathLike | None = None, dir_a: PathLike | None = None, dir_b: PathLike | None = None, *,
                        phase: str = "train") -> tuple[Path, Path]:
    """Return the image folders of domains A and B.

    Explicit ``dir_a`` / ``dir_b`` win; a missing one is taken from the
    CycleGAN/CUT layout under ``data``: ``data/{phase}A`` and
    ``data/{phase}B`` (``trainA``, ``trainB``, ``testA``, ``testB``).

    Raises:
        ValueError: neither ``data`` nor both of ``dir_a``/``dir_b`` given.
        FileNotFoundError: the root or a domain folder does not exist; the
            message lists the sub-folders the root does contain.
        NotADirectoryError: a path exists but is a file.
    """
    if dir_a is None or dir_b is None:  # the missing folder(s) come from the data root
        if data is None:
            missing = " and ".join(n for n, v in (("dir_a (--dir-a)", dir_a), ("dir_b (--dir-b)", dir_b)) if v is None)
            raise ValueError(f"no data location given for {missing}: pass a data root (--data) containing "
                             f"{phase}A/ and {phase}B/, or both domain folders explicitly (--dir-a, --dir-b)")
        root = Path(data)
        layout = (f"expected layout: <data>/{phase}A/ and <data>/{phase}B/ (CycleGAN/CUT style: trainA/, trainB/, "
                  "testA/, testB/), or pass the folders explicitly with --dir-a/--dir-b")
        if not root.exists():
            raise FileNotFoundError(f"data root {root} does not exist (resolved: {root.absolute()}); {layout}")
        if not root.is_dir():
            raise NotADirectoryError(f"data root {root} is a file, not a folder; {layout}")

    resolved: list[Path] = []
    for letter, explicit in (("A", dir_a), ("B", dir_b)):
        if explicit is None:
            path = root / f"{phase}{letter}"
            if not path.is_dir():
                what = "is a file, not a folder" if path.exists() else "is missing"
                raise FileNotFoundError(f"domain {letter} folder {path} {what}: data root {root} has no "
                                        f"{phase}{letter}/ folder ({_describe_subfolders(root)}); {layout}")
        else:
            path = Path(explicit)
            if not path.exists():
                raise FileNotFoundError(f"domain {letter} folder {path} does not exist (resolved: {path.absolute()}); "
                                        f"check --dir-{letter.lower()}")
            if not path.is_dir():
                raise NotADirectoryError(f"domain {letter} folder {path} is a file, not a folder of images")
        resolved.append(path)
    return resolved[0], resolved[1]


# --------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------


def _check_positive(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_sizes(mode: str, size: int, load_size: int) -> None:
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"unknown preprocess mode {mode!r}; choose one of: {', '.join(PREPROCESS_MODES)}")
    _check_positive("size", size)
    if mode in _LOAD_SIZE_MODES:
        _check_positive("load_size", load_size)
        if load_size < size:
            raise ValueError(f"preprocess mode {mode!r} needs load_size >= size (the crop is taken from the image "
                             f"scaled to load_size), got load_size={load_size} < size={size}; raise load_size "
                             "(CycleGAN uses load_size=286 for size=256) or lower size")


def _random_crop(img: Image.Image, rng: random.Random, size: int) -> Image.Image:
    w, h = img.size
    x = rng.randint(0, w - size)
    y = rng.randint(0, h - size)
    return img.crop((x, y, x + size, y + size))


def _resize_square(img: Image.Image, side: int) -> Image.Image:
    """Resize (bicubic) to ``side`` x ``side``, aspect not kept."""
    return img if img.size == (side, side) else img.resize((side, side), Image.Resampling.BICUBIC)


def _scale_short_side(img: Image.Image, target: int) -> Image.Image:
    """Resize (bicubic) so the short side equals ``target``, keeping aspect."""
    w, h = img.size
    if min(w, h) == target:
        return img
    if w <= h:
        new = (target, max(target, round(h * target / w)))
    else:
        new = (max(target, round(w * target / h)), target)
    return img.resize(new, Image.Resampling.BICUBIC)


def draft_size_for(mode: str, size: int, load_size: int) -> tuple[int, int] | None:
    """JPEG draft size that cannot change the result's scale, or None.

    For the modes that rescale anyway, decoding at a reduced (1/2, 1/4, 1/8)
    scale is harmless as long as both sides stay at least as large as the
    first resize target.  ``"crop"`` crops at native resolution, so no draft.
    """
    if mode in _LOAD_SIZE_MODES:
        return (load_size, load_size)
    if mode == "resize":
        return (size, size)
    return None


def preprocess_image(img: Image.Image, rng: random.Random, *, size: int, load_size: int, mode: str = "resize_and_crop",
                     flip: bool = True) -> Image.Image:
    """Resize / crop / flip a PIL image to ``size`` x ``size``.

    Modes:
        ``"resize_and_crop"``: bicubic resize to ``load_size`` x ``load_size``
        (aspect not kept, CycleGAN default), then a random ``size`` crop.
        ``"scale_shortside_and_crop"``: bicubic resize so the short side is
        ``load_size`` (aspect kept), then a random ``size`` crop.
        ``"crop"``: random ``size`` crop of the original; an image whose short
        side is below ``size`` is first upscaled so the short side is ``size``.
        ``load_size`` is ignored.
        ``"resize"``: bicubic resize to ``size`` x ``size``, no crop.

    Afterwards, if ``flip``, the image is mirrored horizontally with
    probability 0.5.  All randomness is drawn from ``rng`` (crop x, crop y,
    then flip), so equal ``rng`` states give equal outputs.

    Returns:
        A PIL image of the same mode, ``size`` x ``size`` pixels.

    Raises:
        ValueError: unknown ``mode``, or ``load_size < size`` for a mode that
            crops from a ``load_size`` image.
    """
    _check_sizes(mode, size, load_size)
    if mode == "resize":
        img = _resize_square(img, size)
    elif mode == "resize_and_crop":
        img = _random_crop(_resize_square(img, load_size), rng, size)
    elif mode == "scale_shortside_and_crop":
        img = _random_crop(_scale_short_side(img, load_size), rng, size)
    else:  # "crop"
        img = _random_crop(img if min(img.size) >= size else _scale_short_side(img, size), rng, size)
    if flip and rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


# --------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------


class UnpairedImageDataset(Dataset):
    """Unpaired samples from two image folders (domains A and B).

    ``dataset[key]`` with ``key = (position, index)`` (or an int ``i``
    meaning ``(i, i)``) returns::

        {"A": Tensor(C, size, size), "B": Tensor(C, size, size),
         "A_path": str, "B_path": str}

    with float32 values in ``[-1, 1]`` (C = ``channels``).  A is
    ``files_a[index % len(files_a)]``; B is drawn at random from
    ``files_b``.  All randomness (B choice, crops, flips) comes from a
    ``random.Random`` seeded from ``(seed, position)``, so the same
    ``(seed, position, index)`` gives identical tensors in any process.

    ``len(dataset) = max(len(files_a), len(files_b))``.

    Args:
        dir_a, dir_b: image folders (searched recursively).
        size: output side length.
        load_size: intermediate size for the ``*_and_crop`` modes.
        preprocess: one of :data:`PREPROCESS_MODES`.
        flip: random horizontal flips.
        channels: 3 (RGB) or 1 (greyscale).
        seed: base seed of all per-sample randomness.
        skip_unreadable: drop files whose header cannot be read (with a
            warning on the ``"sesim"`` logger) instead of failing; files that
            pass the header check but fail to decode later are replaced by
            the next readable file of the same domain (also with a warning).
        check: open every file's header in the constructor, so broken files
            are reported before training starts.

    Raises (in the constructor):
        FileNotFoundError, NotADirectoryError, EmptyFolderError: see
            :func:`sesim.data.images.list_images`.
        ImageError: unreadable files found with ``check=True`` and
            ``skip_unreadable=False``; lists them all.
        ValueError: invalid sizes / mode / channels.
    """

    def __init__(self, dir_a: PathLike, dir_b: PathLike, *, size: int = 256, load_size: int = 286,
                 preprocess: str = "resize_and_crop", flip: bool = True, channels: int = 3, seed: int = 0,
                 skip_unreadable: bool = False, check: bool = True) -> None:
        _check_sizes(preprocess, size, load_size)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}")
        self.dir_a, self.dir_b = Path(dir_a), Path(dir_b)
        self.size, self.load_size, self.preprocess, self.flip = size, load_size, preprocess, bool(flip)
        self.channels, self.seed, self.skip_unreadable = channels, operator.index(seed), bool(skip_unreadable)
        self._draft_size = draft_size_for(preprocess, size, load_size)
        self._known_bad: set[Path] = set()

        files_a = list_images(self.dir_a)
        files_b = list_images(self.dir_b)
        if check:  # decode enough of every file to catch broken ones before training
            _, sizes = keep_readable(files_a + files_b, skip_unreadable=skip_unreadable)
            files_a = [p for p in files_a if p in sizes]
            files_b = [p for p in files_b if p in sizes]
            for folder, files in ((self.dir_a, files_a), (self.dir_b, files_b)):
                if not files:
                    raise EmptyFolderError(f"image folder {folder} has no readable images left after skipping "
                                           "unreadable files; check the files listed in the warning above")
                warn_small_images(folder, {p: sizes[p] for p in files}, size)
        self.files_a: list[Path] = files_a
        self.files_b: list[Path] = files_b

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(dir_a={str(self.dir_a)!r} [{len(self.files_a)} images], "
                f"dir_b={str(self.dir_b)!r} [{len(self.files_b)} images], size={self.size}, "
                f"load_size={self.load_size}, preprocess={self.preprocess!r}, flip={self.flip}, "
                f"channels={self.channels}, seed={self.seed})")

    def sample_rng(self, position: int) -> random.Random:
        """The ``random.Random`` holding all randomness of stream position ``position``."""
        return random.Random(_derive_seed(_TAG_SAMPLE, self.seed, position))

    def _parse_key(self, key: Any) -> tuple[int, int]:
        if isinstance(key, tuple):
            if len(key) != 2:
                raise TypeError(f"dataset key must be an int or (position, index), got {key!r}")
            position, index = operator.index(key[0]), operator.index(key[1])
            if position < 0 or index < 0:
                raise IndexError(f"position and index must be >= 0, got {key!r}")
            return position, index
        if isinstance(key, torch.Tensor) and key.numel() == 1:
            key = int(key.item())
        i = operator.index(key)
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {key} out of range for dataset of length {n}")
        return i, i

    def _load(self, files: list[Path], i: int) -> tuple[Image.Image, Path]:
        """Load ``files[i]``; with skip_unreadable, fall through to the next good file."""
        n = len(files)
        for step in range(n):
            path = files[(i + step) % n]
            if path in self._known_bad:
                continue
            try:
                return load_image(path, self.channels, draft_size=self._draft_size), path
            except ImageError as exc:
                if not self.skip_unreadable:
                    raise ImageError(f"{exc}\nRemove or fix the file, or pass skip_unreadable=True "
                                     "(CLI flag --skip-unreadable) to skip unreadable files.") from exc
                self._known_bad.add(path)
                logger.warning("skipping unreadable image: %s", exc)
        raise ImageError(f"no readable image left among the {n} file(s) of {files[0].parent if n else '?'}; "
                         "every file failed to decode")

    def _preprocess(self, img: Image.Image, rng: random.Random) -> Image.Image:
        """:func:`preprocess_image` with this dataset's sizes, mode and flips."""
        return preprocess_image(img, rng, size=self.size, load_size=self.load_size, mode=self.preprocess,
                                flip=self.flip)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        position, index = self._parse_key(key)
        rng = self.sample_rng(position)
        # Fixed draw order: B choice, A crop/flip, B crop/flip.
        b_index = rng.randrange(len(self.files_b))
        img_a, path_a = self._load(self.files_a, index % len(self.files_a))
        img_b, path_b = self._load(self.files_b, b_index)
        return {"A": pil_to_tensor(self._preprocess(img_a, rng)), "B": pil_to_tensor(self._preprocess(img_b, rng)),
                "A_path": str(path_a), "B_path": str(path_b)}


def load_fixed_images(folder: PathLike, *, size: int, channels: int = 3, limit: int | None = None,
                      skip_unreadable: bool = False) -> list[torch.Tensor]:
    """The first ``limit`` readable images of ``folder`` (sorted), each resized to ``size`` x ``size``
    (bicubic, no crop or flip): fixed inputs for sample grids and test-set scores.

    Returns ``(C, size, size)`` float32 tensors in [-1, 1]. Unreadable files raise
    :class:`ImageError` naming the file, or with ``skip_unreadable`` are skipped (with a warning)
    and the next readable file is taken.
    """
    _check_positive("size", size)
    out: list[torch.Tensor] = []
    for path in list_images(folder):
        if limit is not None and len(out) >= limit:
            break
        try:
            img = load_image(path, channels)
        except ImageError as exc:
            if not skip_unreadable:
                raise ImageError(f"{exc}; remove or fix it, or pass --skip-unreadable to skip unreadable "
                                 "files") from None
            logger.warning("skipping unreadable image: %s", exc)
            continue
        out.append(pil_to_tensor(_resize_square(img, size)))
    return out


# --------------------------------------------------------------------------
# Sampler and loader
# --------------------------------------------------------------------------


class StreamSampler(Sampler):
    """Infinite, resumable stream of ``(position, index)`` dataset keys.

    The index sequence is the concatenation of per-epoch permutations of
    ``range(n)``; epoch ``e``'s permutation comes from a ``torch.Generator``
    seeded from ``(seed, e)``.  Position ``p`` lies in epoch ``p // n`` at
    offset ``p % n``, so iterating from ``start=k`` yields exactly the suffix
    (from item ``k``) of the stream iterated from 0.  Has no ``__len__``.
    """

    def __init__(self, n: int, seed: int, start: int = 0, *, rank: int = 0, world_size: int = 1,
                 batch_size: int = 1) -> None:
        n = operator.index(n)
        start = operator.index(start)
        if n < 1:
            raise ValueError(f"StreamSampler needs n >= 1 items, got n={n}")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        self.n = n
        self.seed = operator.index(seed)
        self.start = start
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size

    def permutation(self, epoch: int) -> list[int]:
        """The index order of epoch ``epoch`` (a permutation of ``range(n)``)."""
        g = torch.Generator()
        g.manual_seed(_derive_seed(_TAG_EPOCH, self.seed, epoch, bits=63))
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """Distributed training: the global stream is dealt out in chunks of ``batch_size``
        positions, chunk ``k`` going to rank ``k % world_size``; ``start`` is a global position."""
        epoch, offset = divmod(self.start, self.n)
        chunk = self.batch_size * self.world_size
        while True:
            perm = self.permutation(epoch)
            base = epoch * self.n
            for i in range(offset, self.n):
                p = base + i
                if self.world_size == 1 or (p % chunk) // self.batch_size == self.rank:
                    yield p, perm[i]
            offset = 0
            epoch += 1


def make_loader(dataset: Dataset, *, batch_size: int, seed: int, start_step: int = 0, workers: int = 0,
                pin_memory: bool = False, rank: int = 0, world_size: int = 1) -> DataLoader:
    """An infinite DataLoader over ``dataset`` that resumes exactly at ``start_step``.

    Uses ``StreamSampler(len(dataset), seed, start=start_step * batch_size)``
    and default collation, so for :class:`UnpairedImageDataset` each batch is
    ``{"A": Tensor(B, C, H, W), "B": Tensor(B, C, H, W), "A_path": list[str],
    "B_path": list[str]}`` in ``[-1, 1]``.  Batch contents do not depend on
    ``workers``.  Iterate with ``next(it)``; the loader never ends and has no
    ``len()``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    n = len(dataset)  # type: ignore[arg-type]
    if n < 1:
        raise ValueError("cannot make a loader for an empty dataset")
    # under distributed training each step consumes world_size * batch_size global positions
    sampler = StreamSampler(n, seed, start=start_step * batch_size * world_size, rank=rank,
                            world_size=world_size, batch_size=batch_size)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=pin_memory,
        persistent_workers=workers > 0, drop_last=False,
        # its own generator: creating an iterator must not draw from torch's global RNG, or a
        # resumed run (which restores that RNG first) would diverge from an uninterrupted one
        generator=torch.Generator().manual_seed(seed),
    )
