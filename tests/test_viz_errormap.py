"""Per-location error maps of content losses (paper Fig. 5) on the built-in demo scenes.

The property the figure is about: a structure loss should light up little for the same layout in
another domain (flat labels vs. photo-like rendering) and more for a different layout, while pixel
L1 is large in both cases. Checked with a randomly initialised VGG16 (no ImageNet weights here).
"""

import numpy as np
import pytest
import torch

from sesim.data.demo_scenes import random_layout, render_labels, render_photo
from sesim.losses.patchnce import PatchSampleMLP
from sesim.losses.spatial import SpatialCorrelativeLoss
from sesim.nets.resnet_generator import ResnetGenerator
from sesim.nets.vgg import VGG16Features
from sesim.viz.errormap import l1_error, patchnce_error, perceptual_error, sesim_error

SEEDS = range(6)


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1


def _triplets(size=64):
    """(labels of layout 1, photo of layout 1, photo of another layout) per seed."""
    out = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        first, other = random_layout(rng, size), random_layout(rng, size)
        out.append((_t(render_labels(first)), _t(render_photo(first, rng)), _t(render_photo(other, rng))))
    return out


@pytest.fixture(scope="module")
def triplets():
    return _triplets()


@pytest.fixture(scope="module")
def random_vgg():
    torch.manual_seed(0)
    return VGG16Features(("relu3_1", "relu3_3", "relu4_1"), None)


def _fsesim(vgg, norm):
    return SpatialCorrelativeLoss(("relu3_1", "relu4_1"), extractor=vgg, norm=norm).eval()


def test_fsesim_separates_layouts_across_domains_and_l1_does_not(triplets, random_vgg):
    fsesim = _fsesim(random_vgg, "centered_l2")
    same = np.array([sesim_error(a, b_same, fsesim).mean() for a, b_same, _ in triplets])
    diff = np.array([sesim_error(a, b_diff, fsesim).mean() for a, _, b_diff in triplets])
    l1_same = np.array([l1_error(a, b_same).mean() for a, b_same, _ in triplets])
    l1_diff = np.array([l1_error(a, b_diff).mean() for a, _, b_diff in triplets])
    # FSeSim: the same layout rendered as labels and as a photo costs clearly less than another layout
    assert (same < diff).sum() >= len(SEEDS) - 1
    assert same.mean() < 0.75 * diff.mean()
    # L1: the cross-domain pair with the *same* layout is as expensive as a different layout, and large
    assert l1_same.mean() > 0.4
    assert l1_same.mean() > 0.85 * l1_diff.mean()
    assert l1_same.mean() / l1_diff.mean() > same.mean() / diff.mean() + 0.2


def test_plain_l2_maps_of_random_features_are_nearly_flat(triplets, random_vgg):
    """Why ``feature_norm=auto`` mean-centres random features: the ReLU features of a random VGG16
    share a large positive component, every location's cosine to every other is high, the maps are
    almost constant and their distance is ~0 for any pair of images (the ordering same < other
    mostly survives, 23/24 demo pairs, but at ~1/100 of the magnitude)."""
    a, b_same, b_diff = triplets[0]
    f = random_vgg(a[None])["relu3_1"].flatten(2)
    f = torch.nn.functional.normalize(f, dim=1)
    assert (f.transpose(1, 2) @ f).mean() > 0.5
    plain = _fsesim(random_vgg, "l2")
    centred = _fsesim(random_vgg, "centered_l2")
    assert sesim_error(a, b_diff, plain).mean() < 0.02 < sesim_error(a, b_diff, centred).mean()


def test_error_maps_have_the_layer_resolution_and_localise_a_change(random_vgg):
    rng = np.random.default_rng(1)
    a = _t(render_photo(random_layout(rng, 64), rng))
    b = a.clone()
    b[:, 8:24, 40:56] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]  # paint a red square
    fsesim = _fsesim(random_vgg, "centered_l2")
    err = sesim_error(a, b, fsesim)
    assert err.shape == (16, 16)  # relu3_1 of a 64 px image (relu4_1's 8 x 8 is resized and averaged)
    assert err[2:6, 10:14].mean() > 2 * np.median(err)
    pix = l1_error(a, b)
    assert pix.shape == (64, 64) and pix[8:24, 40:56].min() > 0 and pix[:8].max() == 0
    perc = perceptual_error(a, b, random_vgg, ["relu3_3"])
    assert perc.shape == (16, 16) and perc[2:6, 10:14].mean() > 2 * np.median(perc)
    # identical images: no error for the direct comparisons
    assert sesim_error(a, a, fsesim).max() < 1e-4
    assert perceptual_error(a, a, random_vgg, ["relu3_3"]).max() == 0 and l1_error(a, a).max() == 0


def test_patchnce_error_is_lower_for_the_same_image():
    torch.manual_seed(0)
    g = ResnetGenerator(3, 3, ngf=8, n_blocks=2).eval()
    layers = ("input", "down1", "block2")
    mlp = PatchSampleMLP({n: g.layer_channels()[n] for n in layers}, 32).eval()
    rng = np.random.default_rng(0)
    a = _t(render_photo(random_layout(rng, 32), rng))
    b = _t(render_photo(random_layout(rng, 32), rng))
    same = patchnce_error(a, a, g.encode, mlp, layers)
    other = patchnce_error(a, b, g.encode, mlp, layers)
    assert same.shape == other.shape == (32, 32) and np.isfinite(other).all()
    assert same.mean() < other.mean()


def test_mismatched_images_are_refused(random_vgg):
    with pytest.raises(ValueError, match="same shape"):
        l1_error(torch.zeros(3, 16, 16), torch.zeros(3, 16, 20))
    with pytest.raises(ValueError, match="same shape"):
        sesim_error(torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 16, 16), _fsesim(random_vgg, "l2"))
