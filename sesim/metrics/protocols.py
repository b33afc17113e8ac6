"""Evaluation protocols by name: which images, at which size, scored how -- as the papers did it.

``sesim evaluate --protocol NAME`` fixes what a published number depends on besides the model:
the image sets and their counts, the resolution and the resize filter, the metrics and the FID
implementation. Each protocol is written down with its sources in ``docs/protocols.md``.

================  ==============================================  ===========  =========================
protocol          images                                          size (HxW)   metrics
================  ==============================================  ===========  =========================
``horse2zebra``   all 120 test horses translated vs all 140       256 x 256    KID, FID (legacy)
                  test zebras (CycleGAN's testA / testB)
``cat2dog``       AFHQ val: 500 cats translated vs 500 dogs       256 x 256    KID, FID (legacy)
``cityscapes``    label -> photo on the 500 val label maps vs     256 x 256    KID, FID (legacy); DRN-D-22
                  the 500 val photos; segmentation at 128 x 256                mIoU, pixel acc., class acc.
                  against the 19-class train-id labels                         + real-photo upper bound
================  ==============================================  ===========  =========================

Inputs are resized to the protocol size with PIL bicubic before translation (CycleGAN/CUT test
options: ``load_size = crop_size``); real images not already at that size are resized the same way.
For Cityscapes segmentation the translations and the real photos are resized to 128 x 256 with PIL
bilinear and the label maps with nearest-neighbour (as fyu/drn's transforms and the CUT-lineage
evaluations do). A protocol run with other counts is scored but every output lists the deviation.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["Protocol", "PROTOCOLS", "get_protocol", "count_deviations", "prepare_folder"]


@dataclass(frozen=True)
class Protocol:
    """A named evaluation protocol (see the module doc). Sizes are ``(height, width)``."""

    name: str
    title: str
    size: tuple[int, int]
    n_source: int
    n_real: int
    metrics: tuple[str, ...]
    data: str
    sources: tuple[str, ...]
    fid_impl: str = "legacy"
    segmentation_size: tuple[int, int] | None = None
    num_classes: int = 19
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> dict:
        return asdict(self)


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol(
        "horse2zebra", "horse -> zebra (CycleGAN's horse2zebra test split)", (256, 256), 120, 140, ("kid", "fid"),
        "testA: the 120 test horses (translated); testB: the 140 test zebras (real)",
        ("CUT (Park et al., ECCV 2020), Sec. 4 and Table 1: FID with pytorch-fid on the test set at 256 px",
         "F-LSeSim test_fid.py scores every saved epoch; the best epoch is the one reported "
         "(F-LSeSim#1, CUT#65, UNSB#9)"),
        notes=("120 and 140 images are far fewer than FID's 2048 feature dimensions: FID is biased upward and "
               "only comparable at these exact counts; KID is unbiased",)),
    Protocol(
        "cat2dog", "cat -> dog (AFHQ validation split)", (256, 256), 500, 500, ("kid", "fid"),
        "the AFHQ val split (StarGAN v2): 500 cats (translated) and 500 dogs (real), as testA / testB",
        ("CUT (Park et al., ECCV 2020), Table 1 (AFHQ Cat -> Dog) and the QS-Attn / DCLGAN tables that reuse it",
         "AFHQ (Choi et al., StarGAN v2, CVPR 2020): 512 px images, resized to 256"),
        notes=("AFHQ images are 512 px: inputs and real dogs are resized to 256 x 256 (PIL bicubic)",)),
    Protocol(
        "cityscapes", "Cityscapes label -> photo (the 500 validation images)", (256, 256), 500, 500,
        ("kid", "fid", "segmentation"),
        "the 500 Cityscapes val label maps (translated) vs their 500 photos (real, FID); segmentation labels: "
        "19-class train-id maps (255 = void) of the same images, named like the label maps (--labels)",
        ("CUT (Park et al., ECCV 2020), Sec. 4: FID, and mAP / pixAcc / classAcc of a DRN-D-22 "
         "(Yu et al. 2017) at 128 x 256; FID at 256 x 256 (CUT#104)",
         "NEGCUT#3: images and labels resized to 128 x 256 before DRN; F-LSeSim#8: DRN-D-22 vs DRN-D-105 "
         "give different numbers (D-105 matches CUT's table in some users' hands)",
         "DCLGAN#7: the val split and its JPEG/PNG format change FID (49 vs 55 vs 140)"),
        segmentation_size=(128, 256),
        notes=("segmentation: DRN-D-22 Cityscapes weights (drn_d_22_cityscapes.pth) from the user; the row "
               "'real photos' is the same network on the real val photos, the upper bound",
               "mIoU here is the mean over classes of TP / (TP + FP + FN) from one confusion matrix over the set "
               "(fyu/drn's per_class_iu, what CUT calls mAP)")),
)}


def get_protocol(name: str | Protocol | None) -> Protocol | None:
    """A protocol by name (``None`` -> ``None``); unknown names raise ``ValueError`` listing the known ones."""
    if name is None or isinstance(name, Protocol):
        return name
    key = name.strip().lower()
    if key in PROTOCOLS:
        return PROTOCOLS[key]
    raise ValueError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}")


def count_deviations(protocol: Protocol, n_source: int | None, n_real: int | None) -> list[str]:
    """Sentences naming each count that differs from the protocol's (empty when all match)."""
    out = []
    if n_source is not None and n_source != protocol.n_source:
        out.append(f"protocol {protocol.name} translates {protocol.n_source} images; this evaluation has {n_source}")
    if n_real is not None and n_real != protocol.n_real:
        out.append(f"protocol {protocol.name} compares with {protocol.n_real} real images; this evaluation has "
                   f"{n_real}")
    if out:
        out.append("numbers are not comparable to the protocol's published values")
    return out


_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def prepare_folder(src: str | os.PathLike, dst: str | os.PathLike, size: tuple[int, int], *,
                   resample: str = "bicubic", labels: bool = False) -> int:
    """Copy every image of ``src`` (recursive) into ``dst`` as PNG at ``size`` = ``(H, W)``, same relative
    names; returns the count. RGB images (``labels=False``) or single-channel class-id maps
    (``labels=True``, always nearest-neighbour). A ``dst`` prepared before with the same source listing
    and settings is reused."""
    from ..data.images import list_images, load_image

    src, dst = Path(src), Path(dst)
    files = list_images(src)
    stamp = {"src": str(src.resolve()), "files": [str(p.relative_to(src)) for p in files],
             "mtimes": [p.stat().st_mtime_ns for p in files], "size": list(size),
             "resample": "nearest" if labels else resample, "labels": labels}
    marker = dst / ".sesim-prepared.json"
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == stamp:
                return len(files)
        except ValueError:
            pass
    dst.mkdir(parents=True, exist_ok=True)
    height, width = size
    for path in files:
        target = dst / path.relative_to(src).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        if labels:
            with Image.open(path) as im:
                arr = np.asarray(im)
            if arr.ndim != 2:
                raise ValueError(f"label map {path} must be single-channel class ids, got shape {arr.shape}")
            img = Image.fromarray(arr)
            img = img if img.size == (width, height) else img.resize((width, height), Image.NEAREST)
        else:
            img = load_image(path, 3)
            if img.size != (width, height):
                img = img.resize((width, height), _RESAMPLE[resample])
        img.save(target)
    marker.write_text(json.dumps(stamp))
    return len(files)
