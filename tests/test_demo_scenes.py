import json
import time

import numpy as np
import pytest

from sesim.data.demo_scenes import (
    BUILDING,
    CLASSES,
    GRASS,
    LABEL_PALETTE,
    SKY,
    decode_labels,
    load_layouts,
    load_rgb_folder,
    make_demo_dataset,
    random_layout,
    render_labels,
    render_photo,
)


def _scene(seed, size=64):
    rng = np.random.default_rng(seed)
    lay = random_layout(rng, size)
    return lay, render_labels(lay), render_photo(lay, rng)


def test_deterministic_given_seed():
    a = _scene(7)
    b = _scene(7)
    c = _scene(8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[2], c[2])


def test_layout_contents_and_variety():
    rng = np.random.default_rng(0)
    lays = np.stack([random_layout(rng, 64) for _ in range(60)])
    assert lays.shape == (60, 64, 64) and lays.dtype == np.uint8
    assert lays.max() < len(CLASSES)
    for lay in lays:
        present = set(np.unique(lay).tolist())
        assert SKY in present and GRASS in present and BUILDING in present
        assert len(present) >= 3
        assert lay[0].tolist().count(SKY) + lay[0].tolist().count(BUILDING) == 64  # top row is sky/buildings
        assert SKY not in lay[-1]  # bottom row is ground
    # all classes occur somewhere, and layouts vary a lot
    assert set(np.unique(lays).tolist()) == set(range(len(CLASSES)))
    sky_frac = (lays == SKY).mean(axis=(1, 2))
    assert sky_frac.max() - sky_frac.min() > 0.25
    diffs = [(lays[i] != lays[i + 1]).mean() for i in range(len(lays) - 1)]
    assert np.mean(diffs) > 0.2


def test_label_and_photo_rendering():
    lay, lab, photo = _scene(3)
    assert lab.shape == photo.shape == (64, 64, 3)
    assert lab.dtype == photo.dtype == np.uint8
    np.testing.assert_array_equal(lab, LABEL_PALETTE[lay])
    np.testing.assert_array_equal(decode_labels(lab), lay)
    with pytest.raises(ValueError):
        decode_labels(photo)
    # photos are textured, labels are flat
    grass = lay == GRASS
    assert photo[grass].astype(float).std(0).mean() > 8
    assert lab[grass].astype(float).std(0).max() == 0
    # the sky looks like a sky (blue dominant), not like its label colour
    sky = photo[lay == SKY].astype(float).mean(0)
    assert sky[2] > sky[0]
    assert np.abs(sky - LABEL_PALETTE[SKY]).mean() > 50


def test_photo_render_is_fast():
    rng = np.random.default_rng(1)
    lays = [random_layout(rng, 64) for _ in range(40)]
    render_photo(lays[0], rng)
    t = time.perf_counter()
    for lay in lays:
        render_photo(lay, rng)
    per = (time.perf_counter() - t) / len(lays)
    assert per < 0.025  # ~3 ms normally; generous for busy CI machines


def test_make_demo_dataset(tmp_path):
    root = tmp_path / "demo"
    meta = make_demo_dataset(root, size=32, n_train=12, n_test=5, seed=3)
    counts = {"trainA": 12, "trainB": 12, "testA": 5, "testB": 5,
              "layouts/trainB": 12, "layouts/testA": 5, "layouts/testB": 5}
    for sub, n in counts.items():
        files = sorted(p.name for p in (root / sub).glob("*.png"))
        assert len(files) == n, sub
        assert files[0] == "000000.png"
    on_disk = json.loads((root / "meta.json").read_text())
    assert on_disk == meta
    assert meta["classes"] == list(CLASSES)
    assert meta["palette"] == LABEL_PALETTE.tolist()
    assert meta["size"] == 32 and meta["seed"] == 3 and meta["n_train"] == 12
    assert isinstance(meta["description"], str) and meta["description"]

    train_a = load_rgb_folder(root / "trainA")
    train_b = load_rgb_folder(root / "trainB")
    test_a = load_rgb_folder(root / "testA")
    lay_b = load_layouts(root / "layouts/trainB")
    lay_ta = load_layouts(root / "layouts/testA")
    assert train_a.shape == (12, 32, 32, 3) and lay_b.shape == (12, 32, 32)
    # label images use palette colours only, and match the stored test layouts
    lay_a = decode_labels(train_a)
    np.testing.assert_array_equal(decode_labels(test_a), lay_ta)
    # unpaired: trainA and trainB show different layouts
    assert all(not np.array_equal(lay_a[i], lay_b[i]) for i in range(12))
    assert (lay_a != lay_b).mean() > 0.15
    # the photos are renderings of the stored layouts: sky pixels are bluish on average
    sky = train_b[lay_b == SKY].astype(float).mean(0)
    assert sky[2] > sky[0] + 30

    # deterministic: same parameters elsewhere give identical files
    make_demo_dataset(tmp_path / "demo2", size=32, n_train=12, n_test=5, seed=3)
    np.testing.assert_array_equal(load_rgb_folder(tmp_path / "demo2" / "trainB"), train_b)
    make_demo_dataset(tmp_path / "demo3", size=32, n_train=12, n_test=5, seed=4)
    assert not np.array_equal(load_rgb_folder(tmp_path / "demo3" / "trainB"), train_b)


def test_make_demo_dataset_reuse_and_refuse(tmp_path):
    root = tmp_path / "demo"
    meta = make_demo_dataset(root, size=24, n_train=4, n_test=2, seed=0)
    probe = root / "trainB" / "000000.png"
    mtime = probe.stat().st_mtime_ns
    meta_mtime = (root / "meta.json").stat().st_mtime_ns
    time.sleep(0.02)
    again = make_demo_dataset(root, size=24, n_train=4, n_test=2, seed=0)
    assert again == meta
    assert probe.stat().st_mtime_ns == mtime
    assert (root / "meta.json").stat().st_mtime_ns == meta_mtime

    # other parameters: a previous demo dataset is rebuilt in place
    other = make_demo_dataset(root, size=24, n_train=3, n_test=2, seed=0)
    assert other["n_train"] == 3
    assert len(list((root / "trainA").glob("*.png"))) == 3

    # a non-empty folder that is not a demo dataset is refused and left alone
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not really a jpeg")
    with pytest.raises(FileExistsError):
        make_demo_dataset(foreign, size=24, n_train=2, n_test=1)
    assert sorted(p.name for p in foreign.iterdir()) == ["holiday.jpg"]

    # an empty existing folder is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    make_demo_dataset(empty, size=24, n_train=2, n_test=1)
    assert (empty / "meta.json").is_file()
