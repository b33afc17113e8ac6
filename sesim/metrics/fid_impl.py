"""The two FID implementations sesim supports, named by how an image reaches the Inception network.

Both use TensorFlow's 2015-12-05 Inception-v3 graph (2048-d pool3 features); they differ in the
resize to 299 x 299 and in the file the weights come from, and their numbers differ by several
FID points on the same images (Parmar et al., "On Aliased Resizing and Surprising Subtleties in
GAN Evaluation", CVPR 2022), so every sesim output names the one it used:

``legacy`` -- **pytorch-fid-compatible** (what the CycleGAN / CUT / F-LSeSim / UNSB papers report):
    uint8 -> ``[0, 1]`` -> ``F.interpolate(bilinear, align_corners=False)`` to 299 x 299 with **no
    antialiasing** -> ``2 x - 1`` -> pytorch-fid's weights ``pt_inception-2015-12-05-6726825d.pth``
    (:class:`sesim.nets.inception.FIDInceptionV3`, checked against pytorch-fid in
    ``tests/test_fid_agreement.py``).
``clean`` -- **clean-fid's "clean" mode** (what CycleGAN-Turbo reports): each channel as a float32
    PIL image resized with PIL's **antialiased bicubic** filter to 299 x 299, clipped to
    ``[0, 255]``, not quantised -> ``(x - 128) / 128`` -> clean-fid's TorchScript Inception
    ``inception-2015-12-05.pt`` (NVIDIA's port of the same graph). This runs the ``clean-fid``
    package's own code (``cleanfid.resize.make_resizer("PIL", False, "bicubic", (299, 299))`` and
    ``cleanfid.inception_torchscript.InceptionV3W(folder, download=False)``), offline, with the
    file found locally: ``--clean-inception-weights``, ``$SESIM_CLEAN_INCEPTION_WEIGHTS``, clean-fid's
    own download place (``/tmp/inception-2015-12-05.pt`` on Linux) or the torch hub cache.

The visible difference (``tests/test_fid_impl.py``, the relation the paper documents): when an
image is *downsampled* to 299 px, the legacy resize aliases detail above the new grid's Nyquist
frequency into spurious patterns while the clean resize filters it out (a flat grey 512 px image
and the same image with a 1-pixel checkerboard differ by ~16 grey levels on average after the
legacy resize and by ~0.01 after the clean one); when it is *upsampled* (256 -> 299, the usual
case for 256 px translations) the two agree closely on smooth content.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from ..nets.weightfiles import require_weights_file
from .features import Extractor, get_extractor

__all__ = ["FID_IMPLEMENTATIONS", "CLEAN_INCEPTION_FILE", "CLEAN_INCEPTION_ENV", "IMPLEMENTATION_TEXT",
           "legacy_resize", "clean_resize", "find_clean_inception", "fid_extractor"]

FID_IMPLEMENTATIONS = ("legacy", "clean")
CLEAN_INCEPTION_FILE = "inception-2015-12-05.pt"
CLEAN_INCEPTION_ENV = "SESIM_CLEAN_INCEPTION_WEIGHTS"
FID_SIZE = 299

#: one line per implementation, for report headers
IMPLEMENTATION_TEXT = {
    "legacy": "legacy (pytorch-fid-compatible): bilinear resize to 299x299 without antialiasing "
              "(F.interpolate, align_corners=False), pytorch-fid weights",
    "clean": "clean (clean-fid 'clean' mode, run through the clean-fid package): per-channel PIL bicubic "
             "(antialiased) float resize to 299x299, no quantisation, clean-fid's TorchScript Inception",
}


def _check(images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
        raise ValueError(f"expected (N, 3, H, W) uint8 images, got {images.dtype} {tuple(images.shape)}")
    return images


def legacy_resize(images: torch.Tensor) -> torch.Tensor:
    """The legacy resize: ``(N, 3, H, W)`` uint8 -> ``(N, 3, 299, 299)`` float32 in ``[0, 255]`` (the
    exact input of :class:`~sesim.nets.inception.FIDInceptionV3`, before its ``2 x - 1``, times 255)."""
    from ..nets.inception import FIDInceptionV3

    return (FIDInceptionV3.preprocess(_check(images)) + 1.0) * 127.5


def clean_resize(images: torch.Tensor) -> torch.Tensor:
    """clean-fid's clean resize: ``(N, 3, H, W)`` uint8 -> ``(N, 3, 299, 299)`` float32 in ``[0, 255]``."""
    from cleanfid.resize import make_resizer

    resize = make_resizer("PIL", False, "bicubic", (FID_SIZE, FID_SIZE))
    out = [resize(img.permute(1, 2, 0).numpy()) for img in _check(images)]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def clean_fid_download_places() -> list[Path]:
    """Where clean-fid itself saves ``inception-2015-12-05.pt`` (``/tmp`` on Linux and macOS, the temp folder)."""
    return list(dict.fromkeys([Path("/tmp") / CLEAN_INCEPTION_FILE, Path(tempfile.gettempdir()) / CLEAN_INCEPTION_FILE]))


def find_clean_inception(path: str | os.PathLike | None = None) -> Path:
    """Locate clean-fid's ``inception-2015-12-05.pt`` (see the module doc) or raise ``WeightsNotFoundError``."""
    return require_weights_file(
        CLEAN_INCEPTION_FILE, "clean-fid Inception-v3 (TorchScript)", path=path, env=CLEAN_INCEPTION_ENV,
        flag="--clean-inception-weights", extra=clean_fid_download_places(),
        source_hint="It is the TorchScript Inception clean-fid downloads on its first run (NVIDIA's "
                    "stylegan2-ada-pytorch metrics file inception-2015-12-05.pt); copy it from a machine that "
                    "has run clean-fid (it sits in /tmp there). --fid-impl legacy needs only the pytorch-fid file.")


def fid_extractor(implementation: str = "legacy", *, inception_weights: str | os.PathLike | None = None,
                  clean_inception_weights: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu") -> Extractor:
    """The FID Inception :class:`~sesim.metrics.features.Extractor` of ``implementation`` (module doc).

    Its ``tag`` is ``"inception"`` (metrics named ``fid``/``kid``), ``implementation`` and
    ``weights_file`` say which pipeline and file. Raises ``WeightsNotFoundError`` naming the missing file.
    """
    if implementation == "legacy":
        return get_extractor("inception", inception_weights=inception_weights, device=device)
    if implementation != "clean":
        raise ValueError(f"unknown FID implementation {implementation!r}; choose from {', '.join(FID_IMPLEMENTATIONS)}")
    path = find_clean_inception(clean_inception_weights)
    if path.name != CLEAN_INCEPTION_FILE:
        raise ValueError(f"{path}: clean-fid loads its Inception by file name; rename or link it to "
                         f"{path.parent / CLEAN_INCEPTION_FILE}")
    from cleanfid.inception_torchscript import InceptionV3W

    with warnings.catch_warnings():  # TorchScript is deprecated in recent torch, but it is clean-fid's format
        warnings.simplefilter("ignore", FutureWarning)
        net = InceptionV3W(str(path.parent), download=False, resize_inside=False).to(device).eval()

    @torch.no_grad()
    def features(images: torch.Tensor) -> torch.Tensor:
        return net(clean_resize(images).to(device))

    from importlib.metadata import version

    description = (f"Inception-v3 pool3 (TF 2015-12-05 graph, clean-fid {version('clean-fid')} "
                   f"TorchScript {CLEAN_INCEPTION_FILE}); uint8 -> per-channel PIL bicubic float 299x299 "
                   f"(antialiased, clipped, not quantised) -> (x-128)/128; file {path}")
    return Extractor("inception", description, features, weights_file=str(path), implementation="clean")
