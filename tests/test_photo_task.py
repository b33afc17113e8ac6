"""The real-photo task (scikit-image's bundled photos under a known appearance transform)."""

import numpy as np
import pytest

from lab.photo_task import (
    PHOTOS,
    appearance_transform,
    l1_error,
    make_photo_dataset,
    ssim,
    strip_boxes,
    target_errors,
)


def _folder_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


@pytest.fixture(scope="module")
def photo_data(tmp_path_factory):
    import skimage  # noqa: F401  (a test dependency: fail loudly if missing)
    root = tmp_path_factory.mktemp("photos") / "data"
    make_photo_dataset(root, size=32, n_train=6, n_test=5, seed=0)
    return root


def test_dataset_is_deterministic_and_reused(photo_data, tmp_path):
    from sesim.data.demo_scenes import load_rgb_folder

    counts = {sub: len(list((photo_data / sub).glob("*.png"))) for sub in ("trainA", "trainB", "testA", "testB", "targets/testA")}
    assert counts == {"trainA": 6, "trainB": 6, "testA": 5, "testB": 5, "targets/testA": 5}
    assert load_rgb_folder(photo_data / "trainA").shape == (6, 32, 32, 3)
    again = tmp_path / "again"
    make_photo_dataset(again, size=32, n_train=6, n_test=5, seed=0)
    assert _folder_bytes(again) == _folder_bytes(photo_data)
    other = tmp_path / "other"
    make_photo_dataset(other, size=32, n_train=6, n_test=5, seed=1)
    assert _folder_bytes(other) != _folder_bytes(photo_data)
    # a complete dataset with the same parameters is reused untouched
    stamp = (again / "trainA" / "000000.png").stat().st_mtime_ns
    make_photo_dataset(again, size=32, n_train=6, n_test=5, seed=0)
    assert (again / "trainA" / "000000.png").stat().st_mtime_ns == stamp
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x.txt").write_text("not a dataset")
    with pytest.raises(FileExistsError):
        make_photo_dataset(tmp_path / "foreign", size=32, n_train=2, n_test=2)


def test_domains_are_unpaired(photo_data):
    from sesim.data.demo_scenes import load_rgb_folder

    a = load_rgb_folder(photo_data / "trainA")
    b = load_rgb_folder(photo_data / "trainB")
    ta = appearance_transform(a)
    # no trainB image is the transform of a trainA image (they come from disjoint regions)
    dist = np.abs(ta[:, None].astype(float) - b[None].astype(float)).mean(axis=(2, 3, 4))
    assert dist.min() > 10
    # the strips are disjoint and cover each photo
    for shape in ((512, 512), (300, 451), (640, 427)):
        for order in set(PHOTOS.values()):
            boxes = strip_boxes(shape, order)
            mask = np.zeros(shape, int)
            for y0, y1, x0, x1 in boxes.values():
                mask[y0:y1, x0:x1] += 1
            assert (mask == 1).all()


def test_known_target_error_of_do_nothing_and_oracle(photo_data):
    from sesim.data.demo_scenes import load_rgb_folder

    inputs = load_rgb_folder(photo_data / "testA")
    targets = load_rgb_folder(photo_data / "targets" / "testA")
    np.testing.assert_array_equal(targets, appearance_transform(inputs))
    oracle = target_errors(targets, targets)
    assert oracle["target_l1"] == 0.0
    assert oracle["target_ssim"] == pytest.approx(1.0)
    nothing = target_errors(inputs, targets)
    assert nothing["target_l1"] > 40
    assert nothing["target_ssim"] < 0.3


def test_transform_is_per_pixel_and_strong():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    y = appearance_transform(x)
    perm = rng.permutation(8)
    np.testing.assert_array_equal(appearance_transform(x[:, perm]), y[:, perm])
    assert l1_error(x, y) > 40
    # black -> the brightest output, white -> the darkest: the negative
    assert appearance_transform(np.zeros((1, 1, 3), np.uint8)).sum() > appearance_transform(np.full((1, 1, 3), 255, np.uint8)).sum()


def test_l1_and_ssim_known_values():
    a = np.full((2, 16, 16, 3), 100, np.uint8)
    assert l1_error(a, a + 10) == pytest.approx(10.0)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(3, 24, 20, 3), dtype=np.uint8)
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, 255 - x) < 0
    with pytest.raises(ValueError):
        ssim(x, x[:, :, :10])


def test_ssim_matches_scikit_image():
    import skimage.metrics as metrics
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(3, 24, 20, 3), dtype=np.uint8)
    y = np.clip(x.astype(int) + rng.normal(0, 30, x.shape), 0, 255).astype(np.uint8)
    ref = np.mean([metrics.structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                                 use_sample_covariance=False, data_range=255) for a, b in zip(x, y)])
    assert ssim(x, y) == pytest.approx(ref, abs=1e-6)
