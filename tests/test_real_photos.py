"""On real photos, the default structure loss sees layout, not appearance -- and random features do not.

Real photographs bundled with scikit-image, cropped at two sizes and redrawn as tinted pencil and
soft charcoal drawings (``tests/photo_pairs.py``; the full measurement with more crops and every
backbone choice is ``bench/backbones.py``). The default loss (no backbone or weight arguments; on a
machine without the VGG16 file that is the pretrained EfficientNet-Lite0) must prefer the own
drawing over another photo's and over a shifted copy; randomly initialised VGG16 features -- what
the offline fallback used to be -- must not reach the same bar, so a silent fall-back to random
features would fail this file.
"""

import pytest
import torch

from photo_pairs import charcoal_sketch, crop_sets, layout_aucs, pencil_sketch, per_image_distance
from sesim import SpatialCorrelativeLoss

pytest.importorskip("skimage")

BAR = 0.95


@pytest.fixture(scope="module")
def crops():
    return crop_sets(sizes=(128, 256), per_photo=2)


@pytest.mark.parametrize("restyle", [pencil_sketch, charcoal_sketch], ids=["pencil", "charcoal"])
def test_default_loss_ranks_the_same_layout_first(crops, restyle):
    loss = SpatialCorrelativeLoss().eval()
    assert loss.extractor.weights_source != "random"
    aucs = layout_aucs(per_image_distance(loss), crops, restyle)
    assert aucs["auc_other"] >= BAR, aucs
    assert aucs["auc_shift"] >= BAR, aucs


@pytest.mark.parametrize("norm", ["l2", "centered_l2"])
def test_random_vgg16_features_do_not_reach_the_bar(crops, norm):
    """The same protocol on the 128 px crops (VGG16 at 256 px would make this the slowest test)."""
    torch.manual_seed(0)
    loss = SpatialCorrelativeLoss(backbone="vgg16", weights="random", norm=norm).eval()
    aucs = layout_aucs(per_image_distance(loss), [s for s in crops if s.size == 128], charcoal_sketch)
    assert min(aucs["auc_other"], aucs["auc_shift"]) < BAR, aucs
