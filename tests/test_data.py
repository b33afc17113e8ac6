"""Tests for the image-folder data layer (sesim.data.images / sesim.data.unpaired).

All images are generated on the fly in ``tmp_path``; everything is small
except one 3000x2000 JPEG used to exercise draft decoding.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sesim.data.images import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS_ENV,
    EmptyFolderError,
    ImageError,
    list_images,
    load_image,
    pil_to_tensor,
    save_image,
    tensor_to_pil,
)
from sesim.data.unpaired import (
    PREPROCESS_MODES,
    StreamSampler,
    UnpairedImageDataset,
    make_loader,
    preprocess_image,
    resolve_domain_dirs,
)

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _noise(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    rs = np.random.RandomState(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    return rs.randint(0, 256, size=shape, dtype=np.uint8)


def _write_noise(path: Path, h: int = 24, w: int = 32, seed: int = 0, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_noise(h, w, seed, 3 if mode == "RGB" else 1), mode=mode).save(path)
    return path


def _make_domains(root: Path, n_a: int = 3, n_b: int = 4, size=(24, 32)) -> tuple[Path, Path]:
    h, w = size
    for i in range(n_a):
        _write_noise(root / "trainA" / f"a{i}.png", h, w, seed=i)
    for i in range(n_b):
        _write_noise(root / "trainB" / f"b{i}.png", h + 4, w - 4, seed=100 + i)
    return root / "trainA", root / "trainB"


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img)


# --------------------------------------------------------------------------
# list_images
# --------------------------------------------------------------------------


def test_image_extensions_are_lowercase_and_complete():
    assert isinstance(IMAGE_EXTENSIONS, frozenset)
    for ext in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".gif"):
        assert ext in IMAGE_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTENSIONS)


def test_list_images_sorted_recursive_case_insensitive_hidden_ignored(tmp_path):
    for rel in ["b.png", "A.JPG", "sub/c.Png", "sub/deeper/d.webp", "z/a.bmp"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "e.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("hi")

    rels = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert rels == ["A.JPG", "b.png", "sub/c.Png", "sub/deeper/d.webp", "z/a.bmp"]

    flat = [p.name for p in list_images(tmp_path, recursive=False)]
    assert flat == ["A.JPG", "b.png"]


def test_list_images_missing_and_file(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        list_images(missing)
    f = tmp_path / "file.png"
    f.write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="file.png"):
        list_images(f)


def test_list_images_empty_folder(tmp_path):
    empty = tmp_path / "emptydir"
    empty.mkdir()
    with pytest.raises(EmptyFolderError) as ei:
        list_images(empty)
    assert "emptydir" in str(ei.value) and "is empty" in str(ei.value)


def test_list_images_only_non_images(tmp_path):
    d = tmp_path / "textonly"
    d.mkdir()
    for i in range(3):
        (d / f"n{i}.txt").write_text("x")
    with pytest.raises(EmptyFolderError) as ei:
        list_images(d)
    msg = str(ei.value)
    assert "textonly" in msg
    assert "3 file" in msg and ".png" in msg and ".txt" in msg


# --------------------------------------------------------------------------
# load_image: mode conversions
# --------------------------------------------------------------------------


def test_greyscale_png_replicated_to_rgb_and_kept_for_channels_1(tmp_path):
    grey = np.array([[0, 50, 100], [150, 200, 255]], dtype=np.uint8)
    p = tmp_path / "g.png"
    Image.fromarray(grey, mode="L").save(p)

    rgb = load_image(p)
    assert rgb.mode == "RGB" and rgb.size == (3, 2)
    a = _arr(rgb)
    for c in range(3):
        np.testing.assert_array_equal(a[:, :, c], grey)

    g = load_image(p, channels=1)
    assert g.mode == "L"
    np.testing.assert_array_equal(_arr(g), grey)


def test_rgb_to_grey_uses_601_luma(tmp_path):
    p = tmp_path / "c.png"
    Image.new("RGB", (2, 1), (255, 0, 0)).save(p)
    g = load_image(p, channels=1)
    assert g.mode == "L"
    assert _arr(g)[0, 0] == round(0.299 * 255)  # 76


def test_rgba_transparent_pixel_becomes_white(tmp_path):
    arr = np.zeros((1, 3, 4), dtype=np.uint8)
    arr[0, 0] = (10, 20, 30, 0)  # fully transparent -> white
    arr[0, 1] = (10, 20, 30, 255)  # opaque -> unchanged
    arr[0, 2] = (0, 0, 0, 128)  # half black over white -> ~127
    p = tmp_path / "rgba.png"
    Image.fromarray(arr, mode="RGBA").save(p)

    out = _arr(load_image(p))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (10, 20, 30)
    assert all(abs(int(v) - 127) <= 1 for v in out[0, 2])

    grey = _arr(load_image(p, channels=1))
    assert grey[0, 0] == 255


def test_la_transparent_becomes_white(tmp_path):
    p = tmp_path / "la.png"
    im = Image.new("LA", (2, 1), (0, 0))
    im.putpixel((1, 0), (40, 255))
    im.save(p)
    out = _arr(load_image(p, channels=1))
    assert out.tolist() == [[255, 40]]


def _palette_image() -> Image.Image:
    im = Image.new("P", (3, 1))
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9)
    im.putpalette(palette)
    im.putpixel((0, 0), 0)
    im.putpixel((1, 0), 1)
    im.putpixel((2, 0), 2)
    return im


def test_palette_without_transparency(tmp_path):
    p = tmp_path / "pal.png"
    _palette_image().save(p)
    with Image.open(p) as im:
        assert im.mode == "P"
    out = _arr(load_image(p))
    assert [tuple(v) for v in out[0]] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_with_transparency_becomes_white(tmp_path, suffix):
    p = tmp_path / f"palt{suffix}"
    _palette_image().save(p, transparency=1)  # green index is transparent
    with Image.open(p) as im:
        assert im.mode == "P" and "transparency" in im.info
    out = _arr(load_image(p))
    assert [tuple(v) for v in out[0]] == [(255, 0, 0), (255, 255, 255), (0, 0, 255)]


def test_bilevel_to_grey(tmp_path):
    p = tmp_path / "bw.png"
    im = Image.new("1", (2, 1), 0)
    im.putpixel((1, 0), 1)
    im.save(p)
    assert _arr(load_image(p, channels=1)).tolist() == [[0, 255]]


def test_16bit_grey_png_scaled_by_257(tmp_path):
    vals = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(vals).save(p)
    with Image.open(p) as im:
        assert im.mode.startswith("I")  # 'I;16' in current Pillow
    out = load_image(p, channels=1)
    assert out.mode == "L"
    assert _arr(out).tolist() == [[0, 1, 128, 255]]
    rgb = _arr(load_image(p))
    assert rgb[0, :, 1].tolist() == [0, 1, 128, 255]


def test_16bit_big_endian_and_int32_and_float_tiff(tmp_path):
    # 'I;16B' in memory (via TIFF): same scaling.
    be = Image.fromarray(np.array([[0, 65535]], dtype=">u2"))
    assert be.mode == "I;16B"
    p_be = tmp_path / "be.tif"
    be.save(p_be)
    assert _arr(load_image(p_be, channels=1)).tolist() == [[0, 255]]

    # 'I' holding values beyond 16 bit -> min-max scaled.
    p_i = tmp_path / "i32.tif"
    Image.fromarray(np.array([[-100000, 0, 100000]], dtype=np.int32)).save(p_i)
    assert _arr(load_image(p_i, channels=1)).tolist() == [[0, 128, 255]]

    # 'I' holding 16-bit data -> /257 like I;16.
    p_i16 = tmp_path / "i16in32.tif"
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32)).save(p_i16)
    assert _arr(load_image(p_i16, channels=1)).tolist() == [[0, 128, 255]]

    # 'F' -> min-max scaled.
    p_f = tmp_path / "f.tif"
    Image.fromarray(np.array([[-1.0, 0.0, 1.0]], dtype=np.float32)).save(p_f)
    assert _arr(load_image(p_f, channels=1)).tolist() == [[0, 128, 255]]


def test_cmyk_jpeg_to_rgb(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(p, quality=95)  # pure red
    with Image.open(p) as im:
        assert im.mode == "CMYK"
    out = _arr(load_image(p))
    r, g, b = (int(v) for v in out[4, 4])
    assert r > 230 and g < 25 and b < 25


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((2, 4, 3), dtype=np.uint8)  # 4 wide, 2 high
    arr[0, 0] = 255  # top-left marker
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    p = tmp_path / "rot.png"
    im.save(p, exif=exif)
    out = load_image(p)
    assert out.size == (2, 4)
    # After a 90 degree clockwise rotation the top-left marker is at top-right.
    assert tuple(_arr(out)[0, 1]) == (255, 255, 255)
    assert tuple(_arr(out)[0, 0]) == (0, 0, 0)


# --------------------------------------------------------------------------
# load_image: failures
# --------------------------------------------------------------------------


def test_garbage_file_raises_image_error_naming_file(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(b"this is definitely not a png file" * 10)
    with pytest.raises(ImageError) as ei:
        load_image(p)
    assert "x.png" in str(ei.value) and "cannot read image" in str(ei.value)
    assert isinstance(ei.value, ValueError)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image_raises(tmp_path, suffix):
    full = _write_noise(tmp_path / f"full{suffix}", 64, 64, seed=3)
    data = full.read_bytes()
    p = tmp_path / f"trunc{suffix}"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=f"trunc\\{suffix}"):
        load_image(p)


def test_missing_file_raises_image_error(tmp_path):
    with pytest.raises(ImageError, match="ghost.png"):
        load_image(tmp_path / "ghost.png")


def test_bad_channels_value(tmp_path):
    p = _write_noise(tmp_path / "a.png")
    with pytest.raises(ValueError, match="channels"):
        load_image(p, channels=4)


def test_decompression_bomb_message_and_env_override(tmp_path, monkeypatch):
    p = _write_noise(tmp_path / "big.png", 40, 40)  # 1600 px
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restore after
    monkeypatch.setenv(MAX_PIXELS_ENV, "100")  # 1600 > 2 * 100 -> error
    with pytest.raises(ImageError) as ei:
        load_image(p)
    msg = str(ei.value)
    assert "big.png" in msg and "1600" in msg
    assert "MAX_IMAGE_PIXELS" in msg and MAX_PIXELS_ENV in msg

    monkeypatch.setenv(MAX_PIXELS_ENV, "none")
    assert load_image(p).size == (40, 40)

    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match=MAX_PIXELS_ENV):
        load_image(p)


# --------------------------------------------------------------------------
# tensors and saving
# --------------------------------------------------------------------------


def test_pil_tensor_roundtrip_and_range(tmp_path):
    arr = _noise(5, 7, seed=1)
    arr[0, 0] = (0, 128, 255)
    t = pil_to_tensor(Image.fromarray(arr))
    assert t.shape == (3, 5, 7) and t.dtype == torch.float32
    assert t[:, 0, 0].tolist() == pytest.approx([-1.0, 128 / 127.5 - 1.0, 1.0], abs=1e-6)
    assert t.min() >= -1 and t.max() <= 1
    back = tensor_to_pil(t)
    assert back.mode == "RGB"
    np.testing.assert_array_equal(_arr(back), arr)

    g = pil_to_tensor(Image.fromarray(arr[:, :, 0], mode="L"))
    assert g.shape == (1, 5, 7)
    assert tensor_to_pil(g).mode == "L"

    with pytest.raises(ValueError, match="RGBA"):
        pil_to_tensor(Image.new("RGBA", (2, 2)))


def test_tensor_to_pil_clamps_and_rejects_bad_shape():
    t = torch.tensor([[[-5.0, 0.0, 5.0]]])
    assert _arr(tensor_to_pil(t)).tolist() == [[0, 128, 255]]
    with pytest.raises(ValueError, match="C, H, W"):
        tensor_to_pil(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError):
        tensor_to_pil(torch.zeros(4, 4))


def test_tensor_to_pil_in_row_bands_equals_the_whole_image_formula():
    t = torch.randn(3, 600, 7) * 0.8  # several 256-row bands
    t[0, 300, 3] = float("nan")
    expected = ((torch.nan_to_num(t, nan=-1.0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)
    assert np.array_equal(_arr(tensor_to_pil(t)), expected.numpy())


def test_save_image_creates_parents(tmp_path):
    t = pil_to_tensor(Image.fromarray(_noise(6, 5, seed=2)))
    out = tmp_path / "a" / "b" / "img.png"
    save_image(t, out)
    with Image.open(out) as im:
        np.testing.assert_array_equal(_arr(im.convert("RGB")), _arr(tensor_to_pil(t)))
    save_image(Image.new("L", (3, 3), 7), tmp_path / "c" / "g.jpg")
    with Image.open(tmp_path / "c" / "g.jpg") as im:
        assert im.format == "JPEG"
    with pytest.raises(ValueError, match="suffix"):
        save_image(t, tmp_path / "bad.xyz")


# --------------------------------------------------------------------------
# preprocessing
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_tiny_image_yields_full_size_crop(mode):
    img = Image.fromarray(_noise(7, 5, seed=4))  # 5 wide, 7 high
    out = preprocess_image(img, random.Random(0), size=16, load_size=20, mode=mode)
    assert out.size == (16, 16) and out.mode == "RGB"


def test_preprocess_modes_geometry():
    # 40x20 image with a horizontal ramp: shortside scaling keeps aspect.
    ramp = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (20, 1))
    img = Image.fromarray(ramp, mode="L")
    out = preprocess_image(
        img, random.Random(1), size=8, load_size=10, mode="scale_shortside_and_crop", flip=False
    )
    assert out.size == (8, 8)
    # Scaled to 20x10: the crop spans 8 of 20 columns -> narrow value range.
    a = _arr(out).astype(int)
    assert a[0, -1] - a[0, 0] < 0.5 * 255
    # 'crop' takes native pixels: each output row is a slice of the ramp.
    out = preprocess_image(img, random.Random(2), size=8, load_size=8, mode="crop", flip=False)
    row = _arr(out)[0]
    starts = [i for i in range(33) if np.array_equal(ramp[0, i : i + 8], row)]
    assert starts, "crop mode must not resample"
    # 'resize' is deterministic and crop-free.
    r1 = preprocess_image(img, random.Random(0), size=8, load_size=8, mode="resize", flip=False)
    r2 = preprocess_image(img, random.Random(99), size=8, load_size=8, mode="resize", flip=False)
    np.testing.assert_array_equal(_arr(r1), _arr(r2))


def test_preprocess_flip_and_rng_only():
    arr = np.zeros((4, 4), dtype=np.uint8)
    arr[:, :2] = 255  # left half white
    img = Image.fromarray(arr, mode="L")
    seen = set()
    for s in range(40):
        out = _arr(preprocess_image(img, random.Random(s), size=4, load_size=4, mode="resize"))
        seen.add(int(out[0, 0]))
        again = _arr(preprocess_image(img, random.Random(s), size=4, load_size=4, mode="resize"))
        np.testing.assert_array_equal(out, again)
    assert seen == {0, 255}  # both flipped and unflipped occur
    for s in range(10):
        out = _arr(preprocess_image(img, random.Random(s), size=4, load_size=4, mode="resize", flip=False))
        np.testing.assert_array_equal(out, arr)


def test_preprocess_errors():
    img = Image.new("RGB", (8, 8))
    with pytest.raises(ValueError) as ei:
        preprocess_image(img, random.Random(0), size=4, load_size=4, mode="zoom")
    for m in PREPROCESS_MODES:
        assert m in str(ei.value)
    for m in ("resize_and_crop", "scale_shortside_and_crop"):
        with pytest.raises(ValueError, match="load_size"):
            preprocess_image(img, random.Random(0), size=8, load_size=4, mode=m)


# --------------------------------------------------------------------------
# resolve_domain_dirs
# --------------------------------------------------------------------------


def test_resolve_domain_dirs_layout_and_explicit(tmp_path):
    a, b = _make_domains(tmp_path / "data", 1, 1)
    assert resolve_domain_dirs(tmp_path / "data") == (a, b)
    other = tmp_path / "other"
    other.mkdir()
    assert resolve_domain_dirs(tmp_path / "data", dir_b=other) == (a, other)
    assert resolve_domain_dirs(dir_a=b, dir_b=a) == (b, a)
    (tmp_path / "data" / "testA").mkdir()
    (tmp_path / "data" / "testB").mkdir()
    assert resolve_domain_dirs(tmp_path / "data", phase="test") == (
        tmp_path / "data" / "testA",
        tmp_path / "data" / "testB",
    )


def test_resolve_domain_dirs_errors(tmp_path):
    with pytest.raises(ValueError, match="--data"):
        resolve_domain_dirs()
    with pytest.raises(ValueError):
        resolve_domain_dirs(dir_a=tmp_path)
    with pytest.raises(FileNotFoundError, match="missing_root"):
        resolve_domain_dirs(tmp_path / "missing_root")

    root = tmp_path / "horse2zebra"
    (root / "trainA").mkdir(parents=True)
    (root / "testA").mkdir()
    with pytest.raises(FileNotFoundError) as ei:
        resolve_domain_dirs(root)
    msg = str(ei.value)
    assert "trainB" in msg  # what is missing
    assert "testA/" in msg and "trainA/" in msg  # what the root holds
    assert "--dir-a" in msg  # the alternative


# --------------------------------------------------------------------------
# UnpairedImageDataset
# --------------------------------------------------------------------------


def test_dataset_shapes_ranges_and_len(tmp_path):
    a, b = _make_domains(tmp_path, n_a=3, n_b=5)
    ds = UnpairedImageDataset(a, b, size=16, load_size=20)
    assert len(ds) == 5
    s = ds[4]
    assert set(s) == {"A", "B", "A_path", "B_path"}
    for k in ("A", "B"):
        assert s[k].shape == (3, 16, 16) and s[k].dtype == torch.float32
        assert s[k].min() >= -1.0 and s[k].max() <= 1.0
    assert Path(s["A_path"]).name == "a1.png"  # index 4 % 3
    assert Path(s["B_path"]).parent == b
    with pytest.raises(IndexError):
        ds[5]

    g = UnpairedImageDataset(a, b, size=8, load_size=8, channels=1, preprocess="resize")
    assert g[0]["A"].shape == (1, 8, 8) and g[0]["B"].shape == (1, 8, 8)


def test_dataset_determinism(tmp_path):
    a, b = _make_domains(tmp_path, n_a=3, n_b=6)
    ds1 = UnpairedImageDataset(a, b, size=12, load_size=20, seed=7)
    ds2 = UnpairedImageDataset(a, b, size=12, load_size=20, seed=7)
    for key in [(0, 0), (5, 1), (123, 2)]:
        s1, s2 = ds1[key], ds2[key]
        assert torch.equal(s1["A"], s2["A"]) and torch.equal(s1["B"], s2["B"])
        assert s1["B_path"] == s2["B_path"]
    # Int key == (i, i).
    assert torch.equal(ds1[2]["A"], ds1[(2, 2)]["A"])
    # Same A image at different positions gets different crops (and B draws).
    outs = [ds1[(p, 0)] for p in range(6)]
    assert all(o["A_path"] == outs[0]["A_path"] for o in outs)
    assert len({o["A"].numpy().tobytes() for o in outs}) > 1
    assert len({o["B_path"] for o in outs}) > 1
    # A different seed changes the randomness.
    ds3 = UnpairedImageDataset(a, b, size=12, load_size=20, seed=8)
    assert any(not torch.equal(ds1[(p, 0)]["A"], ds3[(p, 0)]["A"]) for p in range(4))


def test_dataset_bad_file_reported_or_skipped(tmp_path, caplog):
    a, b = _make_domains(tmp_path, n_a=3, n_b=2)
    (b / "broken.png").write_bytes(b"garbage garbage")
    with pytest.raises(ImageError) as ei:
        UnpairedImageDataset(a, b, size=8, load_size=10)
    msg = str(ei.value)
    assert "broken.png" in msg and "skip_unreadable" in msg and "--skip-unreadable" in msg
    assert "b0.png" not in msg

    with caplog.at_level(logging.WARNING, logger="sesim"):
        ds = UnpairedImageDataset(a, b, size=8, load_size=10, skip_unreadable=True)
    assert [p.name for p in ds.files_b] == ["b0.png", "b1.png"]
    assert "broken.png" in caplog.text


def test_dataset_many_bad_files_listed_compactly(tmp_path):
    a, b = _make_domains(tmp_path, n_a=1, n_b=1)
    for i in range(25):
        (a / f"bad{i:02d}.jpg").write_bytes(b"nope")
    with pytest.raises(ImageError) as ei:
        UnpairedImageDataset(a, b, size=8, load_size=10)
    msg = str(ei.value)
    assert "25" in msg and "bad00.jpg" in msg and "and 5 more" in msg and "bad24.jpg" not in msg


def test_dataset_all_bad_after_skip_is_empty(tmp_path):
    a, b = _make_domains(tmp_path, n_a=1, n_b=1)
    (b / "b0.png").write_bytes(b"nope")
    with pytest.raises(EmptyFolderError, match="trainB"):
        UnpairedImageDataset(a, b, size=8, load_size=10, skip_unreadable=True)


def test_dataset_decode_error_names_file(tmp_path, caplog):
    a, b = _make_domains(tmp_path, n_a=2, n_b=1)
    data = (a / "a0.png").read_bytes()
    (a / "a0.png").write_bytes(data[: len(data) // 2])  # header fine, pixels truncated
    with pytest.raises(ImageError, match="a0.png: Truncated File Read; remove or fix it"):
        UnpairedImageDataset(a, b, size=8, load_size=10)  # the pre-flight check decodes enough to see it
    # a file that breaks after the check (check=False here) fails when read, naming the file
    ds = UnpairedImageDataset(a, b, size=8, load_size=10, check=False)
    with pytest.raises(ImageError, match="a0.png"):
        ds[0]
    assert ds[1]["A_path"].endswith("a1.png")
    # With skip_unreadable, the undecodable file is replaced by the next one.
    skip = UnpairedImageDataset(a, b, size=8, load_size=10, skip_unreadable=True, check=False)
    with caplog.at_level(logging.WARNING, logger="sesim"):
        s = skip[0]
    assert s["A_path"].endswith("a1.png") and "a0.png" in caplog.text
    assert torch.equal(s["A"], skip[(0, 1)]["A"])


def test_dataset_folder_errors(tmp_path):
    _, b = _make_domains(tmp_path, n_a=1, n_b=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmptyFolderError, match="is empty"):
        UnpairedImageDataset(empty, b)
    txt = tmp_path / "txt"
    txt.mkdir()
    (txt / "readme.txt").write_text("x")
    with pytest.raises(EmptyFolderError, match="image extension"):
        UnpairedImageDataset(txt, b)
    with pytest.raises(FileNotFoundError, match="absent"):
        UnpairedImageDataset(tmp_path / "absent", b)
    with pytest.raises(ValueError, match="load_size"):
        UnpairedImageDataset(b, b, size=32, load_size=16)


def test_dataset_large_jpeg_uses_draft(tmp_path):
    a = tmp_path / "A"
    a.mkdir()
    x = np.linspace(0, 255, 3000, dtype=np.float32)
    y = np.linspace(0, 255, 2000, dtype=np.float32)
    arr = np.stack(np.broadcast_arrays(x[None, :], y[:, None], (x[None, :] + y[:, None]) / 2), -1)
    Image.fromarray(arr.astype(np.uint8)).save(a / "big.jpg", quality=80)
    full = load_image(a / "big.jpg", draft_size=None)
    assert full.size == (3000, 2000)
    drafted = load_image(a / "big.jpg", draft_size=(286, 286))
    # JPEG draft picks the largest 1/2^k reduction keeping both sides >= 286: 1/4.
    assert drafted.size == (750, 500)
    ds = UnpairedImageDataset(a, a, size=256, load_size=286)
    s = ds[0]
    assert s["A"].shape == (3, 256, 256) and s["B"].shape == (3, 256, 256)
    assert s["A"].min() >= -1 and s["A"].max() <= 1


# --------------------------------------------------------------------------
# StreamSampler and make_loader
# --------------------------------------------------------------------------


def _take(it, k):
    return [next(it) for _ in range(k)]


def test_stream_sampler_permutations_and_suffix():
    n = 5
    full = _take(iter(StreamSampler(n, seed=3)), 4 * n)
    assert [p for p, _ in full] == list(range(4 * n))
    epochs = [[i for _, i in full[e * n : (e + 1) * n]] for e in range(4)]
    for ep in epochs:
        assert sorted(ep) == list(range(n))
    assert len({tuple(ep) for ep in epochs}) > 1  # reshuffled per epoch
    for start in (1, 4, 5, 7, 13):
        suffix = _take(iter(StreamSampler(n, seed=3, start=start)), 4 * n - start)
        assert suffix == full[start:]
    other = _take(iter(StreamSampler(n, seed=4)), 4 * n)
    assert other != full
    assert not hasattr(StreamSampler(n, 0), "__len__")
    with pytest.raises(ValueError):
        StreamSampler(0, 0)


def test_make_loader_workers_identical_and_resume(tmp_path):
    a, b = _make_domains(tmp_path, n_a=3, n_b=4)
    ds = UnpairedImageDataset(a, b, size=8, load_size=12, seed=1)

    it0 = iter(make_loader(ds, batch_size=2, seed=5, workers=0))
    first0, second0 = next(it0), next(it0)
    assert first0["A"].shape == (2, 3, 8, 8) and first0["B"].shape == (2, 3, 8, 8)
    assert isinstance(first0["A_path"], list) and len(first0["A_path"]) == 2
    assert first0["A"].min() >= -1 and first0["A"].max() <= 1

    loader1 = make_loader(ds, batch_size=2, seed=5, workers=1)
    assert loader1.persistent_workers
    it1 = iter(loader1)
    first1 = next(it1)
    for k in ("A", "B"):
        assert torch.equal(first0[k], first1[k])
    assert first0["A_path"] == first1["A_path"] and first0["B_path"] == first1["B_path"]
    del it1, loader1

    resumed = next(iter(make_loader(ds, batch_size=2, seed=5, start_step=1)))
    for k in ("A", "B"):
        assert torch.equal(resumed[k], second0[k])
    assert resumed["A_path"] == second0["A_path"]
