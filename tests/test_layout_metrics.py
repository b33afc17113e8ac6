import numpy as np
import pytest
import torch

from sesim.data.demo_scenes import (
    CLASSES,
    load_layouts,
    load_rgb_folder,
    make_demo_dataset,
    render_photo,
)
from sesim.metrics.layout import (
    PixelClassifier,
    appearance_distance,
    mean_iou,
    pixel_accuracy,
    pixel_features,
    structure_appearance_report,
)

K = len(CLASSES)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    make_demo_dataset(root, size=64, n_train=200, n_test=24, seed=0)
    d = {
        "trainB": load_rgb_folder(root / "trainB"),
        "trainB_lay": load_layouts(root / "layouts/trainB"),
        "testA": load_rgb_folder(root / "testA"),
        "testA_lay": load_layouts(root / "layouts/testA"),
        "testB": load_rgb_folder(root / "testB"),
        "testB_lay": load_layouts(root / "layouts/testB"),
    }
    d["clf"] = PixelClassifier(K).fit(d["trainB"], d["trainB_lay"])
    return d


def test_pixel_accuracy_and_miou_by_hand():
    true = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    assert pixel_accuracy(pred, true) == pytest.approx(4 / 6)
    # class 0: inter 1, union 3; class 1: inter 2, union 3; class 2: inter 1, union 2
    assert mean_iou(pred, true, 3) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    # classes absent from both are ignored (class 3 and 4 here)
    assert mean_iou(pred, true, 5) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert mean_iou(true, true, 5) == 1.0
    assert pixel_accuracy(true, true) == 1.0
    with pytest.raises(ValueError):
        pixel_accuracy(pred, true[:1])


def test_features_are_appearance_only():
    img = np.full((1, 16, 16, 3), 100, np.uint8)
    f = pixel_features(img)
    assert f.shape == (1, 16, 16, 12)
    # a flat image gives the same features everywhere (no position leaks in)
    assert torch.allclose(f, f[:, :1, :1].expand_as(f), atol=1e-5)
    assert f[..., 6:].max() < 1e-2  # zero texture


def test_classifier_on_real_photos_of_new_layouts(demo):
    clf = demo["clf"]
    pred = clf.predict(demo["testB"])
    assert pred.shape == demo["testB_lay"].shape and pred.dtype == np.int64
    assert pixel_accuracy(pred, demo["testB_lay"]) >= 0.9
    assert mean_iou(pred, demo["testB_lay"], K) >= 0.75
    # photos of the testA layouts (i.e. a perfect translation of testA) also score high
    rng = np.random.default_rng(99)
    perfect = np.stack([render_photo(lay, rng) for lay in demo["testA_lay"]])
    assert pixel_accuracy(clf.predict(perfect), demo["testA_lay"]) >= 0.9


def test_classifier_rejects_labels_and_wrong_layouts(demo):
    clf = demo["clf"]
    # the do-nothing translator: label renderings of the right layouts
    acc_labels = pixel_accuracy(clf.predict(demo["testA"]), demo["testA_lay"])
    assert acc_labels <= 0.5
    # right appearance, wrong layout: photos scored against shuffled layouts
    pred = clf.predict(demo["testB"])
    shuffled = np.roll(demo["testB_lay"], 1, axis=0)
    acc_real = pixel_accuracy(pred, demo["testB_lay"])
    acc_shuf = pixel_accuracy(pred, shuffled)
    assert acc_shuf <= 0.7 and acc_shuf < acc_real - 0.25
    assert mean_iou(pred, shuffled, K) <= 0.45


def test_classifier_state_dict_roundtrip(demo):
    clf = demo["clf"]
    clone = PixelClassifier(K).load_state_dict(clf.state_dict())
    x = demo["testB"][:4]
    np.testing.assert_array_equal(clone.predict(x), clf.predict(x))
    proba = clone.predict_proba(x)
    assert proba.shape == x.shape[:3] + (K,)
    np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-4)
    with pytest.raises(RuntimeError):
        PixelClassifier(K).predict(x)


def test_appearance_distance(demo):
    photos_a, photos_b, labels = demo["testB"], demo["trainB"][:48], demo["testA"]
    assert appearance_distance(photos_a, photos_a) == pytest.approx(0.0, abs=1e-9)
    d_pp = appearance_distance(photos_a, photos_b)
    d_lp = appearance_distance(labels, photos_b)
    assert 0 < d_pp < 12
    assert d_lp > 40
    assert d_lp > 5 * d_pp
    # symmetric and deterministic
    assert appearance_distance(photos_b, labels) == pytest.approx(d_lp)
    assert appearance_distance(labels, photos_b, seed=0) == d_lp


def test_structure_appearance_report(demo):
    clf, real_b = demo["clf"], demo["trainB"]
    rng = np.random.default_rng(5)
    perfect = np.stack([render_photo(lay, rng) for lay in demo["testA_lay"]])
    good = structure_appearance_report(perfect, demo["testA_lay"], clf, real_b)
    identity = structure_appearance_report(demo["testA"], demo["testA_lay"], clf, real_b)
    assert set(good) == {"pixel_accuracy", "mean_iou", "appearance_distance"}
    assert good["pixel_accuracy"] > identity["pixel_accuracy"] + 0.4
    assert good["mean_iou"] > identity["mean_iou"] + 0.4
    assert good["appearance_distance"] * 5 < identity["appearance_distance"]
