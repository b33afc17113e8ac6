"""Image files: discovery, robust decoding, and tensor conversion.

Everything the training code sees is a float32 tensor of shape ``(C, H, W)``
with values in ``[-1, 1]`` (the range of the generator's ``tanh`` output),
where ``C`` is 3 (RGB) or 1 (greyscale).  This module turns arbitrary image
files into exactly that, with every colour-mode conversion made explicit:

* EXIF orientation is applied.
* Transparency (``RGBA``, ``LA``, ``PA``, ``P``/``L``/``RGB`` with a
  ``transparency`` key) is alpha-composited over **white**.
* ``P`` (palette) is expanded through its palette; ``1`` (bilevel) becomes
  ``L`` with values 0/255; ``L`` becomes RGB by replicating the channel;
  RGB becomes ``L`` by ITU-R 601 luma (``PIL.Image.convert("L")``).
* 16-bit greyscale (``I;16*``, and ``I`` holding values in 0..65535) is
  scaled to 8 bit by dividing by 257 (65535 -> 255); ``I`` data outside that
  range and ``F`` (float) data are min-max scaled to 0..255.
* ``CMYK``, ``YCbCr``, ``LAB`` and ``HSV`` are converted to RGB.

Any failure to read a file raises :class:`ImageError` whose message names the
file and the reason.  The Pillow decompression-bomb limit can be changed with
the ``SESIM_MAX_IMAGE_PIXELS`` environment variable (an integer pixel count,
or ``none`` to disable the check).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Union

import numpy as np
import torch
from PIL import Image, ImageOps

__all__ = ["IMAGE_EXTENSIONS", "ImageError", "EmptyFolderError", "list_images", "load_image", "check_image",
           "check_images", "format_bad_files", "keep_readable", "warn_small_images", "pil_to_tensor", "tensor_to_pil",
           "save_image"]

PathLike = Union[str, os.PathLike]

_log = logging.getLogger("sesim")

#: Lower-case file suffixes treated as images (matching is case-insensitive).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".gif"})

_EXT_HINT = "(" + ", ".join(sorted(IMAGE_EXTENSIONS)) + ")"

#: Environment variable overriding ``PIL.Image.MAX_IMAGE_PIXELS``.
MAX_PIXELS_ENV = "SESIM_MAX_IMAGE_PIXELS"

# Modes with an alpha channel that we composite over white.
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# EXIF orientations that swap width and height.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})


class ImageError(ValueError):
    """An image file could not be read or decoded (message names the file)."""


class EmptyFolderError(ValueError):
    """A folder holds no image files (message says what it holds instead)."""


# --------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------


def list_images(folder: PathLike, *, recursive: bool = True) -> list[Path]:
    """Return the image files under ``folder``, sorted by relative path.

    Files are recognised by suffix (see :data:`IMAGE_EXTENSIONS`, matched
    case-insensitively).  Hidden files and hidden sub-folders (name starting
    with ``.``) are ignored.  With ``recursive=True`` sub-folders are searched
    too: symlinked folders are followed only while they stay inside ``folder``
    (a link such as ``trainA/loop -> ..`` would otherwise add the other
    domain's images; such links are skipped with a warning), loops are cut,
    and a file reached twice (hard links, symlinks) is listed once.  Symlinked
    *files* are listed wherever they point.  The order is deterministic:
    sorted by the relative path's components.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        NotADirectoryError: ``folder`` is a file.
        EmptyFolderError: no image files were found; the message says what
            the folder does hold.
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"image folder {root} does not exist (resolved: {root.absolute()}); check the path")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is a file, not a folder; pass the folder that contains the images")

    others: Counter[str] = Counter()  # suffixes of non-image, non-hidden files
    n_hidden = 0
    n_subdirs = 0  # sub-folders not searched (recursive=False)
    # (device, inode) -> candidates: a file reached twice (hard link, symlink) is listed once, under
    # its first real (not symlinked) relative path
    by_file: dict[tuple[int, int], list[tuple[bool, tuple[str, ...], Path]]] = {}
    outside: list[str] = []  # symlinked folders leading out of the root (not followed)
    root_real = os.path.realpath(root)
    seen_dirs = {root_real}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        base = Path(dirpath)
        keep = []
        for d in sorted(dirnames, key=lambda d: ((base / d).is_symlink(), d)):  # real folders first
            if d.startswith("."):
                continue
            real = os.path.realpath(base / d)
            if not recursive:
                n_subdirs += 1
            elif real in seen_dirs:  # a loop, or a folder already visited through another link
                continue
            elif (base / d).is_symlink() and os.path.commonpath([real, root_real]) != root_real:
                outside.append(f"{base / d} -> {real}")
            else:
                seen_dirs.add(real)
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = base / name
            if name.startswith("."):
                n_hidden += 1
            elif path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
                others[path.suffix.lower() or "(no extension)"] += 1
            else:  # is_file() followed any symlink, so stat() finds the file
                st = path.stat()
                by_file.setdefault((st.st_dev, st.st_ino), []).append(
                    (path.is_symlink(), path.relative_to(root).parts, path))

    n_twice = sum(len(c) - 1 for c in by_file.values())
    if outside:
        _log.warning("%s: not following %d symlinked folder(s) that lead outside it (e.g. %s)", root,
                     len(outside), outside[0])
    if n_twice:
        _log.warning("%s: %d image file(s) reached twice (hard links or symlinks) are listed once", root, n_twice)

    if not by_file:
        n_other = sum(others.values())
        if n_other == 0:
            what = "is empty"
            if n_hidden:
                what += f" (apart from {n_hidden} hidden file(s), which are ignored)"
        else:
            kinds = ", ".join(f"{ext} x{cnt}" for ext, cnt in others.most_common(5))
            what = f"holds {n_other} file(s) but none has an image extension {_EXT_HINT}; found: {kinds}"
        hint = "put the training images (e.g. .png/.jpg) in it"
        if n_subdirs:
            hint += f", or search its {n_subdirs} sub-folder(s) with recursive=True"
        raise EmptyFolderError(f"image folder {root} {what}; {hint}")
    # each file under its first real path (the smallest candidate), in the order of the relative paths
    return [path for _, path in sorted(min(candidates)[1:] for candidates in by_file.values())]


# --------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------


def _apply_pixel_limit_from_env() -> None:
    """Honour ``SESIM_MAX_IMAGE_PIXELS`` by setting ``PIL.Image.MAX_IMAGE_PIXELS``."""
    raw = os.environ.get(MAX_PIXELS_ENV, "")
    value = raw.strip().lower()
    if not value:
        return
    if value in {"none", "off", "0", "-1", "unlimited"}:
        Image.MAX_IMAGE_PIXELS = None
        return
    try:
        Image.MAX_IMAGE_PIXELS = int(float(value))
    except ValueError:
        raise ValueError(f"environment variable {MAX_PIXELS_ENV}={raw!r} is not a pixel count; set it to an integer "
                         "(e.g. 400000000) or 'none' to disable the limit") from None


def _minmax_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Linearly map the finite range of ``arr`` onto 0..255 (NaN -> 0)."""
    a = arr.astype(np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return np.zeros(a.shape, dtype=np.uint8)
    lo = float(a[finite].min())
    hi = float(a[finite].max())
    a = np.where(finite, a, lo)
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    out = np.rint((a - lo) * (255.0 / (hi - lo)))
    return np.clip(out, 0, 255).astype(np.uint8)


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """Convert 'I;16*', 'I' or 'F' greyscale to an 8-bit 'L' image."""
    arr = np.asarray(img)
    if arr.ndim != 2:  # pragma: no cover - defensive
        raise ValueError(f"unexpected array shape {arr.shape} for mode {img.mode}")
    if img.mode.startswith("I") and arr.min() >= 0 and arr.max() <= 65535:  # all of 'I;16*', some of 'I'
        out = np.rint(arr.astype(np.float64) / 257.0).astype(np.uint8)
    else:  # 'I' outside 0..65535, 'F' and anything float-like
        out = _minmax_to_uint8(arr)
    return Image.fromarray(np.ascontiguousarray(out), mode="L")


def _to_target_mode(img: Image.Image, channels: int) -> Image.Image:
    """Deliberately convert a decoded image to 'RGB' (channels=3) or 'L' (1)."""
    mode = img.mode
    if mode in _ALPHA_MODES or ("transparency" in img.info and mode in {"P", "L", "RGB"}):
        if mode == "La":  # premultiplied LA: Pillow only converts it to LA
            img = img.convert("LA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode.startswith("I") or mode == "F":
        img = _high_depth_to_l(img)
    elif mode not in {"L", "RGB"}:  # palette, CMYK, YCbCr, LAB, HSV, RGBX and anything unusual
        img = img.convert("RGB")
    target = "RGB" if channels == 3 else "L"
    return img if img.mode == target else img.convert(target)  # L -> RGB replicates; RGB -> L is 601 luma


def _read_error(path: Path, exc: Exception) -> ImageError:
    """The :class:`ImageError` for a file Pillow could not open or decode: the file, then the reason."""
    if isinstance(exc, Image.DecompressionBombError):
        reason = (f"{exc} It exceeds PIL.Image.MAX_IMAGE_PIXELS (currently {Image.MAX_IMAGE_PIXELS}) by more than "
                  f"2x. If the file is trusted, raise PIL.Image.MAX_IMAGE_PIXELS or set the environment variable "
                  f"{MAX_PIXELS_ENV} (e.g. {MAX_PIXELS_ENV}=1000000000, or 'none').")
    elif isinstance(exc, FileNotFoundError):
        reason = "file does not exist"
    elif isinstance(exc, Image.UnidentifiedImageError):
        reason = "not a recognised image format (the file may be corrupt or not an image despite its extension)"
    else:
        reason = (str(exc) or type(exc).__name__).splitlines()[0]
    return ImageError(f"cannot read image {path}: {reason}")


def load_image(path: PathLike, channels: int = 3, *, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image file into a fully loaded PIL image of mode 'RGB' or 'L'.

    Args:
        path: image file.
        channels: 3 for an 'RGB' result, 1 for an 'L' (greyscale) result.
        draft_size: optional ``(width, height)``.  For JPEGs, Pillow may then
            decode at 1/2, 1/4 or 1/8 scale as long as the result stays at
            least this large (``PIL.Image.Image.draft``).  Use it when the
            caller will downscale to roughly this size anyway.  The size is
            in display orientation (EXIF rotation is accounted for).

    Returns:
        A PIL image, mode 'RGB' (channels=3) or 'L' (channels=1), 8 bit per
        channel, values 0..255, independent of the file (already loaded).

    Raises:
        ImageError: the file is missing, not an image, truncated, uses an
            unsupported mode, or exceeds the decompression-bomb pixel limit.
            The message starts with ``cannot read image <path>:``.
        ValueError: ``channels`` is not 1 or 3.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}")
    _apply_pixel_limit_from_env()
    path = Path(path)
    try:
        with Image.open(path) as img:
            if draft_size is not None and img.format in ("JPEG", "MPO"):
                w, h = int(draft_size[0]), int(draft_size[1])
                try:
                    orientation = img.getexif().get(0x0112, 1)
                except Exception:  # malformed EXIF: ignore for drafting
                    orientation = 1
                if orientation in _TRANSPOSING_ORIENTATIONS:
                    w, h = h, w
                img.draft(None, (max(1, w), max(1, h)))
            img.load()  # full decode inside the try: truncation raises here
            try:
                ImageOps.exif_transpose(img, in_place=True)
            except Exception:  # malformed EXIF orientation: keep pixels as stored
                pass
            out = _to_target_mode(img, channels)
            if out is img:  # detach from the (closing) file object
                out = out.copy()
    except Exception as exc:  # OSError (truncated), DecompressionBombError, SyntaxError, ValueError, ...
        raise _read_error(path, exc) from exc
    return out


def check_image(path: PathLike) -> tuple[int, int]:
    """Decode enough of ``path`` to find a broken file, cheaply; returns its stored ``(width, height)``.

    PNG: every chunk is read and its CRC checked (``Image.verify``; no pixel decoding), so a
    truncated or bit-flipped file fails. JPEG: the file must hold an end-of-image marker after its
    last start-of-scan marker (neither can occur inside entropy-coded data, which escapes 0xFF
    bytes), which a truncated file does not ("image file is truncated" once training reads it).
    Other formats: a full decode. ``bench/preflight.py`` measures the cost.

    Raises:
        ImageError: the file cannot be read; the message names it and the reason.
    """
    path = Path(path)
    _apply_pixel_limit_from_env()
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w < 1 or h < 1:
                raise ValueError(f"image has zero size {w}x{h}")
            if img.format == "PNG":
                img.verify()
            elif img.format in ("JPEG", "MPO"):
                data = path.read_bytes()
                last_scan = data.rfind(b"\xff\xda")
                if last_scan < 0 or data.rfind(b"\xff\xd9") < last_scan:
                    raise OSError("image file is truncated (no end-of-image marker after the last scan)")
            else:
                img.load()
    except Exception as exc:  # OSError (truncated), DecompressionBombError, SyntaxError, ...
        raise _read_error(path, exc) from exc
    return w, h


def check_images(files: Iterable[PathLike]) -> tuple[list[Path], list[tuple[Path, str]], dict[Path, tuple[int, int]]]:
    """:func:`check_image` every file: ``(readable files, [(unreadable file, reason)], {file: (w, h)})``."""
    good: list[Path] = []
    bad: list[tuple[Path, str]] = []
    sizes: dict[Path, tuple[int, int]] = {}
    for path in map(Path, files):
        try:
            sizes[path] = check_image(path)
        except ImageError as exc:
            bad.append((path, str(exc).split(": ", 2)[-1]))
        else:
            good.append(path)
    return good, bad, sizes


def format_bad_files(bad: list[tuple[Path, str]], limit: int = 20) -> str:
    """One indented line per unreadable file (``path: reason``), at most ``limit`` of them."""
    lines = [f"  {p}: {reason}" for p, reason in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more")
    return "\n".join(lines)


def keep_readable(files: Iterable[PathLike], *, skip_unreadable: bool = False
                  ) -> tuple[list[Path], dict[Path, tuple[int, int]]]:
    """The readable ``files`` (:func:`check_images`) and their ``(width, height)``.

    Raises:
        ImageError: some file is unreadable and ``skip_unreadable`` is False; the first line
            names one file and what to do, further lines list the others. With
            ``skip_unreadable``, they are dropped with a warning instead.
    """
    good, bad, sizes = check_images(files)
    if bad and not skip_unreadable:
        first = f"cannot read image {bad[0][0]}: {bad[0][1]}"
        if len(bad) == 1:
            raise ImageError(f"{first}; remove or fix it, or pass --skip-unreadable (skip_unreadable=True from "
                             "Python) to skip unreadable files")
        raise ImageError(f"{len(bad)} unreadable image files (e.g. {first}); remove or fix them, or pass "
                         f"--skip-unreadable (skip_unreadable=True from Python) to skip them:\n"
                         f"{format_bad_files(bad)}")
    if bad:
        _log.warning("skipping %d unreadable image file(s):\n%s", len(bad), format_bad_files(bad))
    return good, sizes


def warn_small_images(folder: PathLike, sizes: dict[Path, tuple[int, int]], side: int) -> int:
    """Log how many images are smaller than ``side`` px (on their short side), with an example;
    returns the count."""
    small = [(p, wh) for p, wh in sizes.items() if min(wh) < side]
    if small:
        path, (w, h) = small[0]
        _log.warning("%d of %d images in %s are smaller than the %d px crop (e.g. %s is %dx%d); they are upscaled "
                     "(blurry); lower --size or remove them", len(small), len(sizes), folder, side, path, w, h)
    return len(small)


# --------------------------------------------------------------------------
# Tensor conversion and saving
# --------------------------------------------------------------------------


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """Convert an 'RGB' or 'L' PIL image to a float32 tensor.

    Returns:
        Tensor of shape ``(C, H, W)`` (C=3 for 'RGB', C=1 for 'L'), dtype
        float32, values ``v / 127.5 - 1`` in ``[-1, 1]`` (0 -> -1, 255 -> 1).

    Raises:
        ValueError: the image has another mode (use :func:`load_image`,
            which converts any file to 'RGB' or 'L').
    """
    if img.mode not in ("RGB", "L"):
        raise ValueError(f"pil_to_tensor expects an 'RGB' or 'L' image, got mode {img.mode!r}; load files with "
                         "sesim.data.images.load_image or call img.convert('RGB')")
    arr = np.array(img, dtype=np.uint8, copy=True)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    src = torch.from_numpy(arr).permute(2, 0, 1)
    # one float32 copy, scaled in place (large images: no temporaries of the image's size)
    return torch.empty(src.shape, dtype=torch.float32).copy_(src).div_(127.5).sub_(1.0)


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """Convert a ``(C, H, W)`` tensor in ``[-1, 1]`` to a PIL image.

    Values are clamped to ``[-1, 1]`` (NaN -> -1), mapped to 0..255 with
    ``(v + 1) * 127.5`` and rounded.  C=1 gives mode 'L', C=3 gives 'RGB'.
    A leading batch dimension of size 1 (``(1, C, H, W)``) is accepted.

    Raises:
        ValueError: the tensor is not ``(C, H, W)`` with C in {1, 3}.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"tensor_to_pil expects a torch.Tensor, got {type(t).__name__}")
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"tensor_to_pil expects shape (C, H, W) with C = 1 or 3, got {tuple(t.shape)}")
    x = t.detach()
    c, h, w = x.shape
    arr = np.empty((h, w, c), dtype=np.uint8)
    for r in range(0, h, 256):  # in row bands: no float temporaries of the whole image's size
        band = torch.nan_to_num(x[:, r:r + 256].to("cpu", torch.float32), nan=-1.0).clamp_(-1.0, 1.0)
        arr[r:r + 256] = band.add_(1.0).mul_(127.5).round_().to(torch.uint8).permute(1, 2, 0).numpy()
    if c == 1:
        return Image.fromarray(arr[:, :, 0], mode="L")
    return Image.fromarray(arr, mode="RGB")


def save_image(img_or_tensor: Image.Image | torch.Tensor, path: PathLike) -> Path:
    """Save a PIL image or a ``(C, H, W)`` tensor in ``[-1, 1]`` to ``path``.

    Parent folders are created.  The file format follows the suffix
    (``.png``, ``.jpg``, ...).  Returns the path written.

    Raises:
        ValueError: the suffix is not a format Pillow can write, or the
            image cannot be stored in that format.
    """
    path = Path(path)
    img = tensor_to_pil(img_or_tensor) if isinstance(img_or_tensor, torch.Tensor) else img_or_tensor
    if not isinstance(img, Image.Image):
        raise TypeError(f"save_image expects a PIL image or a torch.Tensor, got {type(img_or_tensor).__name__}")
    Image.init()
    fmt = Image.EXTENSION.get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"cannot save image {path}: unknown or unwritable file suffix {path.suffix!r}; use e.g. "
                         ".png or .jpg")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "JPEG" and img.mode not in ("RGB", "L", "CMYK"):
        img = img.convert("RGB")
    try:
        img.save(path, format=fmt)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"cannot save image {path} as {fmt}: {exc}") from exc
    return path
