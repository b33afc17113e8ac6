"""Data correctness before training: the pre-flight decode check, symlinks and duplicates in the
folder walk, small images, and --skip-unreadable wherever images are read (translate's inputs: a
case of the reliability suite, bench/reliability.py)."""

import logging
import os

import numpy as np
import pytest
from PIL import Image

from sesim.data.images import ImageError, check_image, keep_readable, list_images, load_image
from sesim.data.unpaired import UnpairedImageDataset, load_fixed_images
from sesim.train import train
from test_train import tiny_config


def _image(path, size=(40, 36), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(len(str(path))).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, fmt)
    return path


def _truncate(path, keep=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_the_preflight_check_catches_truncated_files_that_pass_the_header(tmp_path, suffix):
    path = _truncate(_image(tmp_path / f"x{suffix}", (200, 150)))
    with Image.open(path) as im:  # the header alone looks fine
        assert im.size == (200, 150)
    with pytest.raises(ImageError, match=f"x{suffix}: .*[Tt]runcated"):
        check_image(path)
    assert check_image(_image(tmp_path / f"ok{suffix}", (200, 150))) == (200, 150)


def test_the_jpeg_check_copes_with_thumbnails_trailers_and_progressive_files(tmp_path):
    import io

    def jpeg(size, **kw):
        buf = io.BytesIO()
        arr = np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).save(buf, "JPEG", **kw)
        return buf.getvalue()

    main_image, thumb = jpeg((160, 120)), jpeg((16, 12))
    app1 = b"Exif\0\0" + thumb  # an embedded thumbnail has its own scan and end-of-image markers
    with_thumb = main_image[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + main_image[2:]
    cases = {"thumb.jpg": (with_thumb, True), "thumb_cut.jpg": (with_thumb[:-400], False),
             "trailer.jpg": (main_image + b"vendor trailer \xff\x00", True),
             "progressive.jpg": (jpeg((160, 120), progressive=True), True),
             "progressive_cut.jpg": (jpeg((160, 120), progressive=True)[:-2000], False)}
    for name, (data, readable) in cases.items():
        (tmp_path / name).write_bytes(data)
        if readable:
            assert check_image(tmp_path / name) == (160, 120), name
        else:
            with pytest.raises(ImageError, match="truncated"):
                check_image(tmp_path / name)
            with pytest.raises(ImageError, match="truncated"):  # what training would hit later
                load_image(tmp_path / name)


def test_one_unreadable_file_is_one_line_naming_it_and_the_flag(tmp_path):
    good = _image(tmp_path / "a.png")
    bad = _truncate(_image(tmp_path / "b.jpg", (120, 90)))
    with pytest.raises(ImageError) as info:
        keep_readable([good, bad])
    assert "\n" not in str(info.value) and "b.jpg" in str(info.value) and "--skip-unreadable" in str(info.value)
    assert keep_readable([good, bad], skip_unreadable=True)[0] == [good]


def test_a_symlink_loop_does_not_pull_the_other_domain_in(tmp_path, caplog):
    root = tmp_path / "data"
    _image(root / "trainA" / "a.png")
    _image(root / "trainB" / "b1.png")
    _image(root / "trainB" / "b2.png")
    os.symlink("..", root / "trainA" / "loop")  # trainA/loop/trainB/b1.png would be "domain A"
    with caplog.at_level(logging.WARNING, logger="sesim"):
        files = list_images(root / "trainA")
    assert [p.name for p in files] == ["a.png"]
    assert "not following 1 symlinked folder" in caplog.text and "loop" in caplog.text


def test_links_inside_the_folder_are_followed_but_no_file_is_listed_twice(tmp_path):
    root = tmp_path / "trainA"
    _image(root / "sub" / "a.png")
    os.symlink("sub", root / "alias")  # the same folder under a second name
    os.link(root / "sub" / "a.png", root / "hard.png")  # the same file under a second name
    elsewhere = _image(tmp_path / "store" / "photo.png")
    os.symlink(elsewhere, root / "linked.png")  # a symlinked *file* may point anywhere (shared image stores)
    files = list_images(root)
    # sub/a.png, alias/a.png and hard.png are one file: listed once, under its first real relative path
    assert [str(p.relative_to(root)) for p in files] == ["hard.png", "linked.png"]


def test_images_smaller_than_the_crop_are_reported_with_an_example(tmp_path, caplog):
    a, b = tmp_path / "A", tmp_path / "B"
    _image(a / "big.png", (64, 64))
    _image(a / "small.png", (20, 30))
    _image(b / "b.png", (64, 64))
    with caplog.at_level(logging.WARNING, logger="sesim"):
        UnpairedImageDataset(a, b, size=32, load_size=36)
    assert "1 of 2 images in" in caplog.text and "small.png is 20x30" in caplog.text and "32 px crop" in caplog.text


def test_skip_unreadable_also_covers_the_sample_images_taken_from_trainA(tmp_path):
    """No testA: sample grids fall back to trainA, whose first file is truncated."""
    root = tmp_path / "data"
    _truncate(_image(root / "trainA" / "a0.jpg", (48, 40)))
    for i in range(1, 4):
        _image(root / "trainA" / f"a{i}.png")
        _image(root / "trainB" / f"b{i}.png")
    cfg = tiny_config(root, tmp_path / "runs")
    cfg.update("run", dict(steps=1, num_samples=2))
    with pytest.raises(ImageError, match="a0.jpg"):
        train(cfg, progress=False)
    assert not (tmp_path / "runs" / "r").exists()
    cfg.update("data", dict(skip_unreadable=True))
    run = train(cfg, progress=False)
    assert (run / "samples" / "step_0000001.png").exists()
    shown = load_fixed_images(root / "trainA", size=32, limit=2, skip_unreadable=True)
    assert len(shown) == 2
