"""--mode exemplar building blocks: marginal contrastive and contextual losses, self-correlation maps,
the correspondence warp, the SPADE generator, paired data and pseudo exemplars."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from sesim.data.paired import PairedExemplarDataset, PairingError, pseudo_exemplars
from sesim.losses.contextual import contextual_loss, contextual_similarity
from sesim.losses.marginal_contrastive import MarginalContrastiveLoss, marginal_infonce
from sesim.nets.correspondence import CorrespondenceNet, self_correlation
from sesim.nets.exemplar_translator import ExemplarTranslator
from sesim.ops.infonce import patch_infonce
from sesim.ops.selfsim import self_similarity


def test_zero_margin_is_plain_infonce_and_the_margin_raises_the_loss():
    torch.manual_seed(0)
    x, y = torch.randn(2, 20, 8), torch.randn(2, 20, 8)
    plain = marginal_infonce(x, y, margin=0.0, temperature=0.1)
    assert torch.allclose(plain, patch_infonce(x, y, temperature=0.1), atol=1e-5)  # the LSeSim InfoNCE
    # by hand for one anchor: the positive's angle grows by m
    a, p = torch.nn.functional.normalize(x[0], dim=1), torch.nn.functional.normalize(y[0], dim=1)
    cos = a @ p.T
    logits = cos[3].clone()
    logits[3] = math.cos(math.acos(float(cos[3, 3])) + 0.4)
    expected = -torch.log_softmax(logits / 0.1, 0)[3]
    assert torch.allclose(marginal_infonce(x, y, margin=0.4, temperature=0.1)[0, 3], expected, atol=1e-4)
    assert (marginal_infonce(x, y, margin=0.4, temperature=0.1) > plain).all()


def test_marginal_loss_prefers_aligned_features_and_has_finite_gradients_at_identity():
    torch.manual_seed(0)
    f = torch.randn(1, 16, 4, 4, requires_grad=True)
    loss = MarginalContrastiveLoss(margin=0.4)
    aligned = loss(f, f)  # cos = 1 on the positives: the margin's sin(theta) term is at its singular point
    shuffled = loss(f, f.flatten(2)[:, :, torch.randperm(16)].view_as(f))
    assert aligned < shuffled
    aligned.backward()
    assert torch.isfinite(f.grad).all()
    # the positive logit falls monotonically with the angle, also past theta = pi - m (no wrap-around of cos)
    from sesim.losses.marginal_contrastive import _margin_cosine

    theta = torch.linspace(0, math.pi, 200)
    logit = _margin_cosine(torch.cos(theta), 0.4)
    assert (logit.diff() < 0).all()
    assert torch.allclose(logit[:100], torch.cos(theta[:100] + 0.4), atol=1e-5)


def test_contextual_loss_matches_sets_not_positions():
    torch.manual_seed(0)
    y = torch.randn(2, 8, 6, 6)
    perm = torch.randperm(36)
    shuffled = y.flatten(2)[:, :, perm].view_as(y)
    layers = ("a",)
    same = contextual_loss({"a": y}, {"a": y}, layers)
    assert torch.allclose(contextual_loss({"a": shuffled}, {"a": y}, layers), same, atol=1e-5)  # positions ignored
    other = contextual_loss({"a": torch.randn(2, 8, 6, 6)}, {"a": y}, layers)
    assert same < 0.05 < other
    assert torch.allclose(contextual_similarity(y, y), torch.ones(2), atol=1e-3)
    with pytest.raises(ValueError, match="weight"):
        contextual_loss({"a": y}, {"a": y}, layers, weights=[1.0, 2.0])


def test_self_correlation_is_the_global_self_similarity_of_the_structure_ops():
    f = torch.randn(2, 5, 3, 4)
    ref = self_similarity(f, torch.arange(12), None, norm="l2")
    assert torch.allclose(self_correlation(f), ref, atol=1e-6)
    assert torch.allclose(torch.diagonal(self_correlation(f), dim1=1, dim2=2), torch.ones(2, 12), atol=1e-6)


def test_warp_mixes_exemplar_colours_and_the_cycle_returns_to_the_exemplar_grid():
    torch.manual_seed(0)
    net = CorrespondenceNet(3, 3, grid=16, channels=8, scm=True, scm_dim=12, temperature=0.01).eval()
    x, z = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 24, 20) * 2 - 1  # an exemplar of another size
    c = net(x, z, cycle=True)
    assert c.warped.shape == c.exemplar.shape == c.cycled.shape == (2, 3, 4, 4)
    assert c.descriptors_x.shape == (2, 8 + 12, 4, 4) and c.similarity.shape == (2, 16, 16)
    lo, hi = c.exemplar.amin(dim=(2, 3), keepdim=True), c.exemplar.amax(dim=(2, 3), keepdim=True)
    assert ((c.warped >= lo - 1e-5) & (c.warped <= hi + 1e-5)).all()  # convex combinations of exemplar cells
    assert torch.allclose(c.weights(0.01).sum(dim=2), torch.ones(2, 16))
    # the exemplar matched with itself through E_Z on both sides: a sharp softmax warps it onto itself
    fz, dz = net.encode(z, condition=False)
    sim = torch.bmm(dz.flatten(2).transpose(1, 2), dz.flatten(2)) / dz.flatten(2).norm(dim=1).pow(2).unsqueeze(1)
    assert (sim.argmax(dim=2) == torch.arange(16)).all()


def test_translator_keeps_the_condition_size_and_uses_the_exemplar():
    torch.manual_seed(0)
    for correspondence in (True, False):
        g = ExemplarTranslator(3, 3, grid=16, correspondence=correspondence, channels=8, scm_dim=8, ngf=8, n_up=2,
                               hidden=8).eval()
        x = torch.rand(2, 3, 24, 32) * 2 - 1
        with torch.no_grad():
            a, b = g(x, torch.rand(1, 3, 16, 16) * 2 - 1), g(x, -torch.rand(1, 3, 40, 30))
        assert a.shape == b.shape == x.shape and a.abs().max() <= 1
        assert (a - b).abs().mean() > 1e-4  # the exemplar matters
    with pytest.raises(ValueError, match="channel"):
        g(x, torch.rand(1, 1, 16, 16))


def _write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_paired_folders_pair_by_name_with_the_same_crop(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        img = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
        _write(tmp_path / "trainA" / f"s/{i}.png", img)
        _write(tmp_path / "trainB" / f"s/{i}.jpg" if i == 0 else tmp_path / "trainB" / f"s/{i}.png", img)
    ds = PairedExemplarDataset(tmp_path / "trainA", tmp_path / "trainB", size=32, load_size=40,
                               preprocess="resize_and_crop", seed=3, pseudo_exemplar=0.5)
    assert len(ds) == 3
    flags = []
    for pos in range(12):
        s = ds[(pos, pos % 3)]
        assert s["A"].shape == s["B"].shape == s["Z"].shape == (3, 32, 32)
        if pos % 3:  # lossless pairs: the same crop and flip on both
            assert torch.equal(s["A"], s["B"])
        flags.append(bool(s["pseudo"]))
    assert any(flags) and not all(flags)
    assert torch.equal(ds[(5, 1)]["Z"], ds[(5, 1)]["Z"])  # deterministic per stream position


def test_unpaired_names_are_one_clear_error(tmp_path):
    img = np.zeros((16, 16, 3), np.uint8)
    for name in ("a", "b", "c"):
        _write(tmp_path / "trainA" / f"{name}.png", img)
    for name in ("a", "x"):
        _write(tmp_path / "trainB" / f"{name}.png", img)
    with pytest.raises(PairingError, match=r"2 condition\(s\) .* no photo .*b, c.*1 photo\(s\) .* no condition .*x"):
        PairedExemplarDataset(tmp_path / "trainA", tmp_path / "trainB", size=16, load_size=16)


def test_pseudo_exemplars_are_distorted_copies():
    torch.manual_seed(0)
    y = torch.rand(3, 3, 32, 32) * 2 - 1
    z = pseudo_exemplars(y, generator=torch.Generator().manual_seed(1))
    assert z.shape == y.shape and z.abs().max() <= 1 + 1e-5
    assert ((z - y).abs().mean(dim=(1, 2, 3)) > 0.05).all()
    assert torch.equal(z, pseudo_exemplars(y, generator=torch.Generator().manual_seed(1)))
    # colours are kept (a geometric change only): channel means move little
    assert (z.mean(dim=(2, 3)) - y.mean(dim=(2, 3))).abs().max() < 0.1
