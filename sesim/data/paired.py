"""Paired conditions and photos, plus exemplars, for exemplar-guided translation (``--mode exemplar``).

Layout: ``trainA/`` conditional inputs (label maps, edge maps, ...) and ``trainB/`` their photos,
paired by name (relative path without the extension: ``trainA/x/0001.png`` pairs with
``trainB/x/0001.jpg``); optionally a folder of exemplar photos (``--exemplars DIR``; default: the
photos of ``trainB``).

Each sample (``dataset[(position, index)]``, randomness from ``(seed, position)`` as in
:class:`~sesim.data.unpaired.UnpairedImageDataset`, so resumed runs see the same stream) is::

    {"A": condition (C, S, S), "B": its photo (C, S, S), "Z": an exemplar photo (C, S, S),
     "pseudo": bool tensor, "A_path", "B_path", "Z_path": str}

all in [-1, 1]. ``A`` and ``B`` get the same crop and flip (a photo of another size than its
condition is first resized to the condition's size); ``Z`` is another training photo drawn at
random, cropped and flipped on its own. ``pseudo`` is True for a fraction ``pseudo_exemplar`` of
the samples: then the method replaces ``Z`` by a geometrically distorted copy of ``B`` (MCL-Net's
and CoCosNet's pseudo exemplar pairs, :func:`pseudo_exemplars`), which gives the warp a known
target.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Union

import torch
import torch.nn.functional as F
from PIL import Image

from .images import EmptyFolderError, keep_readable, list_images, pil_to_tensor
from .unpaired import UnpairedImageDataset, load_fixed_images, resolve_domain_dirs

__all__ = ["PairingError", "pair_by_name", "PairedExemplarDataset", "pseudo_exemplars"]

PathLike = Union[str, os.PathLike]


class PairingError(ValueError):
    """Conditions and photos whose names do not pair up (the message lists some of each)."""


def _key(path: Path, root: Path) -> str:
    return str(path.relative_to(root).with_suffix(""))


def pair_by_name(files_a: list[Path], root_a: Path, files_b: list[Path], root_b: Path) -> list[tuple[Path, Path]]:
    """``[(condition, photo)]`` matched by relative path without extension, in ``files_a`` order.

    Raises :class:`PairingError` when any name is on one side only, or twice on one side
    (``x.png`` and ``x.jpg``)."""
    keys_a: dict[str, Path] = {}
    keys_b: dict[str, Path] = {}
    for files, root, keys in ((files_a, root_a, keys_a), (files_b, root_b, keys_b)):
        for p in files:
            k = _key(p, root)
            if k in keys:
                raise PairingError(f"{root} has two images named {k!r} ({keys[k].name} and {p.name}); each "
                                   "condition needs exactly one photo of the same name")
            keys[k] = p
    only_a = [k for k in keys_a if k not in keys_b]
    only_b = [k for k in keys_b if k not in keys_a]
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} condition(s) in {root_a} have no photo of the same name in {root_b} "
                         f"(e.g. {', '.join(only_a[:3])})")
        if only_b:
            parts.append(f"{len(only_b)} photo(s) in {root_b} have no condition in {root_a} "
                         f"(e.g. {', '.join(only_b[:3])})")
        raise PairingError("; ".join(parts) + "; --mode exemplar needs paired folders (same names, any extension)")
    return [(keys_a[k], keys_b[k]) for k in keys_a]


class PairedExemplarDataset(UnpairedImageDataset):
    """Conditions paired with photos by name, and an exemplar per sample (module doc).

    Args: as :class:`~sesim.data.unpaired.UnpairedImageDataset` (``dir_a`` conditions, ``dir_b``
    photos), plus ``exemplar_dir`` (default: ``dir_b``'s photos) and ``pseudo_exemplar`` (the
    fraction of samples flagged ``pseudo``).

    Raises (in the constructor): :class:`PairingError` for names that do not pair; the errors of
    the unpaired dataset for missing, empty or unreadable folders.
    """

    def __init__(self, dir_a: PathLike, dir_b: PathLike, *, exemplar_dir: PathLike | None = None,
                 pseudo_exemplar: float = 0.5, **kwargs: Any) -> None:
        super().__init__(dir_a, dir_b, **kwargs)
        if not 0.0 <= pseudo_exemplar <= 1.0:
            raise ValueError(f"pseudo_exemplar must be in [0, 1], got {pseudo_exemplar}")
        self.pseudo_exemplar = float(pseudo_exemplar)
        self.pairs = pair_by_name(self.files_a, self.dir_a, self.files_b, self.dir_b)
        if exemplar_dir is None:
            self.exemplar_dir, self.files_z = self.dir_b, list(self.files_b)
        else:
            self.exemplar_dir = Path(exemplar_dir)
            readable, _ = keep_readable(list_images(self.exemplar_dir), skip_unreadable=self.skip_unreadable)
            if not readable:
                raise EmptyFolderError(f"exemplar folder {self.exemplar_dir} has no readable images")
            self.files_z = readable

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        position, index = self._parse_key(key)
        rng = self.sample_rng(position)
        # fixed draw order: pseudo flag, exemplar choice, shared A/B crop + flip, exemplar crop + flip
        pseudo = rng.random() < self.pseudo_exemplar
        z_index = rng.randrange(len(self.files_z))
        path_a, path_b = self.pairs[index % len(self.pairs)]
        img_a, path_a = self._load([path_a], 0)
        img_b, path_b = self._load([path_b], 0)
        img_z, path_z = self._load(self.files_z, z_index)
        if img_b.size != img_a.size:
            img_b = img_b.resize(img_a.size, Image.Resampling.BICUBIC)
        state = rng.getstate()
        img_a = self._preprocess(img_a, rng)
        rng.setstate(state)
        img_b = self._preprocess(img_b, rng)
        img_z = self._preprocess(img_z, rng)
        return {"A": pil_to_tensor(img_a), "B": pil_to_tensor(img_b), "Z": pil_to_tensor(img_z),
                "pseudo": torch.tensor(pseudo), "A_path": str(path_a), "B_path": str(path_b), "Z_path": str(path_z)}


def pseudo_exemplars(photos: torch.Tensor, *, max_rotation: float = 10.0, max_shift: float = 0.15,
                     scale: tuple[float, float] = (0.9, 1.15),
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Geometrically distorted copies of ``photos`` ``(N, C, H, W)`` in [-1, 1] (same shape): a random
    horizontal flip, rotation (degrees), zoom and shift per image, border pixels reflected.
    Randomness from ``generator`` (default: torch's global RNG, saved with every checkpoint)."""
    n = photos.shape[0]
    dev = photos.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator).to(dev)

    angle = uniform(-max_rotation, max_rotation) * math.pi / 180
    zoom = uniform(*scale)
    flip = torch.where(torch.rand(n, generator=generator).to(dev) < 0.5, -1.0, 1.0)
    tx, ty = uniform(-max_shift, max_shift), uniform(-max_shift, max_shift)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(photos.dtype), list(photos.shape), align_corners=False)
    return F.grid_sample(photos, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def exemplar_data(cfg, train_dirs: tuple[Path, Path]) -> tuple[PairedExemplarDataset, list[torch.Tensor]]:
    """The training dataset of a ``--mode exemplar`` run (``cfg``: a :class:`~sesim.config.TrainConfig`)
    and its fixed sample-grid inputs: ``(2C, S, S)`` tensors, a condition stacked with an exemplar.

    Sample conditions are ``testA`` (else ``trainA``); their exemplars ``<data>/exemplars`` paired by
    name when that folder exists, else the photos of the same split shifted by one (so each
    condition is shown with another image's photo)."""
    d = cfg.data
    dataset = PairedExemplarDataset(
        *train_dirs, exemplar_dir=cfg.exemplar.exemplars, pseudo_exemplar=cfg.exemplar.pseudo_exemplar,
        size=d.size, load_size=cfg.load_size, preprocess=d.preprocess, flip=d.flip, channels=d.channels,
        seed=cfg.run.seed, skip_unreadable=d.skip_unreadable)
    n = cfg.run.num_samples
    if n == 0:
        return dataset, []
    try:
        cond_dir, photo_dir = resolve_domain_dirs(d.data, phase="test") if d.data else train_dirs
        list_images(cond_dir)
    except (FileNotFoundError, ValueError):
        cond_dir, photo_dir = train_dirs
    load = dict(size=d.size, channels=d.channels, limit=n, skip_unreadable=d.skip_unreadable)
    conditions = load_fixed_images(cond_dir, **load)
    paired_exemplars = Path(d.data) / "exemplars" if d.data else None
    if paired_exemplars is not None and paired_exemplars.is_dir() and cond_dir.name == "testA":
        exemplars = load_fixed_images(paired_exemplars, **load)
    else:
        photos = load_fixed_images(photo_dir, **{**load, "limit": n + 1})
        exemplars = photos[1:] + photos[:1]
    return dataset, [torch.cat([c, z]) for c, z in zip(conditions, exemplars)]
