"""SpatialCorrelativeLoss (FSeSim / LSeSim) as a standalone module."""

import numpy as np
import pytest
import torch
from torch import nn

from sesim import SpatialCorrelativeLoss, VGG16Features, WeightsNotFoundError
from sesim.nets.vgg import VGG16_IMAGENET_FILE, VGG16_LAYERS


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("SESIM_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("SESIM_VGG16_WEIGHTS", raising=False)


def scenes(n, size=64, seed=0):
    """The same random layouts drawn in two very different appearances (flat vs noisy, other palette)."""
    rng = np.random.default_rng(seed)
    pal_x = np.array([[200, 40, 200], [230, 30, 30], [250, 160, 20], [20, 20, 120], [240, 240, 240]], float)
    pal_y = np.array([[120, 180, 250], [40, 140, 40], [90, 90, 90], [160, 80, 40], [250, 230, 60]], float)
    xs, ys = [], []
    for _ in range(n):
        lab = np.zeros((size, size), np.int64)
        lab[rng.integers(size // 4, 3 * size // 4):] = 1
        for _ in range(rng.integers(2, 5)):
            x0, y0 = rng.integers(0, size - 8, 2)
            w, h = rng.integers(6, size // 2, 2)
            lab[y0:y0 + h, x0:x0 + w] = rng.integers(2, 5)
        for pal, noise, out in ((pal_x, 0, xs), (pal_y, 25, ys)):
            img = np.clip(pal[lab] + noise * rng.standard_normal(lab.shape + (3,)), 0, 255)
            out.append(torch.tensor(img / 127.5 - 1).permute(2, 0, 1).float())
    return torch.stack(xs), torch.stack(ys)


def make_loss(**kw):
    torch.manual_seed(0)
    return SpatialCorrelativeLoss(weights=None, **kw)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(distance="l1"),
    dict(patch_size=None),
    dict(norm="tanh", mask_keep=0.25, layers=("relu3_1", "relu4_1", "relu4_3")),
    dict(learned=True),
    dict(sampling="grid", num_queries=64),
])
def test_identical_inputs_give_zero_loss(kw):
    loss = make_loss(**kw)
    x = torch.rand(2, 3, 48, 64) * 2 - 1
    assert loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-5)
    assert loss(x, torch.rand_like(x) * 2 - 1).item() > 1e-4


@pytest.mark.parametrize("kw", [dict(norm="centered_l2"), dict(norm="l2"), dict(norm="tanh", patch_size=None),
                                dict(distance="l1", norm="centered_l2")])
def test_aligned_cross_domain_pairs_score_lower_than_unaligned(kw):
    x, y = scenes(16)
    loss = make_loss(**kw)
    with torch.no_grad():
        aligned = torch.stack([loss(x[i:i + 1], y[i:i + 1]) for i in range(16)])
        unaligned = torch.stack([loss(x[i:i + 1], y.roll(1, 0)[i:i + 1]) for i in range(16)])
    assert (aligned < unaligned).float().mean() >= 0.9
    assert aligned.mean() < 0.75 * unaligned.mean()


def test_gradients_reach_translation_only():
    loss = make_loss(learned=True)
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    y = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    loss(x, y).backward()
    assert x.grad is None
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.extractor.parameters())
    assert all(not p.requires_grad for p in loss.extractor.parameters())
    # the generator's loss uses the heads but never gives them gradients
    assert all(p.grad is None for p in loss.head_parameters())


def test_details_expose_maps_and_per_query_losses():
    loss = make_loss(num_queries=20, patch_size=4)
    x, y = torch.rand(2, 3, 64, 32) * 2 - 1, torch.rand(2, 3, 64, 32) * 2 - 1
    out = loss(x, y, return_details=True)
    assert set(out.per_query) == {"relu3_1", "relu4_1"}
    m = out.maps_x["relu3_1"]
    assert (m.height, m.width) == (16, 8) and m.maps.shape == (2, 20, 16)
    assert out.per_query["relu3_1"].shape == (2, 20)
    mean = sum(d.mean() for d in out.per_query.values()) / 2
    assert torch.allclose(out.loss, mean)
    # the same queries and windows were used for both images
    assert torch.equal(out.maps_x["relu4_1"].queries, out.maps_y["relu4_1"].queries)
    # maps() reproduces the forward maps for given queries
    again = loss.maps(x, {name: lm.queries for name, lm in out.maps_x.items()})
    torch.testing.assert_close(again["relu3_1"].maps, m.maps)


def test_contrastive_loss_trains_heads_only_and_decreases():
    loss = make_loss(learned=True, num_queries=32)
    x, _ = scenes(4, size=32, seed=3)
    other = x.flip(0)
    jitter = lambda t: (t * torch.empty(t.shape[0], 3, 1, 1).uniform_(0.5, 1.0)).clamp(-1, 1)
    opt = torch.optim.Adam(loss.head_parameters(), lr=1e-3)
    x_in = x.clone().requires_grad_()
    first = loss.contrastive_loss(x_in, jitter(x), other)
    first.backward()
    assert x_in.grad is None or x_in.grad.abs().sum() == 0
    assert all(p.grad is not None for p in loss.head_parameters())
    assert all(p.grad is None for p in loss.extractor.parameters())
    torch.manual_seed(1)
    values = []
    for _ in range(30):
        opt.zero_grad()
        value = loss.contrastive_loss(x, jitter(x), other)
        value.backward()
        opt.step()
        values.append(value.item())
    assert np.mean(values[-5:]) < np.mean(values[:5])
    per_query = loss.contrastive_loss(x, jitter(x), other, return_per_query=True)
    assert per_query["relu3_1"].shape == (4, 32)


def test_source_features_from_the_head_step_give_the_same_loss():
    """LSeSim's step reuses the backbone features of the source from the head objective."""
    loss = make_loss(learned=True, num_queries=16)
    x, y = scenes(2, size=32, seed=4)
    y = y.requires_grad_()
    torch.manual_seed(5)
    _, feats = loss.contrastive_loss(x, x.flip(3), y.detach(), return_source_features=True)
    assert set(feats) == set(loss.layers) and all(not f.requires_grad for f in feats.values())
    torch.manual_seed(6)
    reused = loss(x, y, source_features=feats)
    torch.manual_seed(6)
    fresh = loss(x, y)
    torch.testing.assert_close(reused, fresh, rtol=1e-5, atol=1e-6)
    (g_reused,) = torch.autograd.grad(reused, y)
    (g_fresh,) = torch.autograd.grad(fresh, y)
    torch.testing.assert_close(g_reused, g_fresh, rtol=1e-4, atol=1e-7)
    trained = SpatialCorrelativeLoss(weights=None, learned=True, train_backbone=True, num_queries=16)
    assert trained.contrastive_loss(x, x.flip(3), return_source_features=True)[1] is None  # would be stale


def test_translation_features_serve_both_steps_with_the_same_values():
    """``features(y)`` passed in place of ``y`` gives forward's value and gradient into ``y``."""
    loss = make_loss(learned=True, num_queries=16)
    x, y = scenes(2, size=32, seed=7)
    y = y.requires_grad_()
    q = {name: torch.randperm(16 if name == "relu4_1" else 64)[:16] for name in loss.layers}
    fy = loss.features(y)
    assert all(f.requires_grad for f in fy.values())
    assert not any(p.requires_grad for p in loss.extractor.parameters())  # frozen again afterwards
    via = loss(loss.features(x).detach(), fy, queries=q)
    direct = loss(x, y, queries=q)
    torch.testing.assert_close(via, direct, rtol=1e-6, atol=1e-7)
    (g_via,) = torch.autograd.grad(via, y)
    (g_direct,) = torch.autograd.grad(direct, y)
    torch.testing.assert_close(g_via, g_direct, rtol=1e-5, atol=1e-8)


def test_pairs_equal_the_stacked_batch_and_run_the_backbone_once():
    """A list of positive pairs is the public code's stacked ``--augment`` batch (source twice), with
    every distinct image through the backbone once, in one call."""
    loss = make_loss(learned=True, num_queries=16, positive_vs_other=True)
    x, y = scenes(1, size=32, seed=8)
    b, _ = scenes(1, size=32, seed=9)
    x_aug, b_aug = (x * 0.8).clamp(-1, 1), (b * 0.9 + 0.05).clamp(-1, 1)
    q = {name: torch.randperm(16 if name == "relu4_1" else 64)[:16] for name in loss.layers}
    calls = []
    loss.extractor.register_forward_hook(lambda _m, inp, _o: calls.append(inp[0].shape[0]))
    pairs = loss.contrastive_loss(x, [y, x_aug], [b, b_aug], queries=q)
    assert calls == [5]  # x, y, x_aug, b, b_aug
    stacked = loss.contrastive_loss(torch.cat([x, x]), torch.cat([y, x_aug]), torch.cat([b, b_aug]), queries=q)
    torch.testing.assert_close(pairs, stacked, rtol=1e-6, atol=1e-7)
    heads = list(loss.head_parameters())
    for ga, gb in zip(torch.autograd.grad(pairs, heads), torch.autograd.grad(stacked, heads)):
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-8)
    calls.clear()
    fy = loss.features(y)
    again = loss.contrastive_loss(x, [fy, x_aug], [b, b_aug], queries=q)  # features given: not recomputed
    assert calls == [1, 4]
    torch.testing.assert_close(again, pairs, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="one per pair"):
        loss.contrastive_loss(x, [y, x_aug], [b])


def test_contrastive_loss_needs_heads():
    with pytest.raises(RuntimeError, match="learned=True"):
        make_loss().contrastive_loss(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))


def test_greyscale_and_shape_checks():
    loss = make_loss()
    g = torch.rand(2, 1, 32, 32) * 2 - 1
    assert loss(g, g).item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="shapes differ"):
        loss(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 64))


def test_custom_extractor():
    class Tiny(nn.Module):
        out_channels = {"a": 8}

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            return {"a": self.conv(x)}

    loss = SpatialCorrelativeLoss(extractor=Tiny(), layers=None, patch_size=5, num_queries=10)
    assert loss.layers == ("a",)
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16, requires_grad=True)
    loss(x, y).backward()
    assert y.grad is not None and all(p.grad is None for p in loss.extractor.parameters())


def test_layer_names_validated():
    with pytest.raises(ValueError, match="relu3_1"):
        make_loss(layers=("relu9_9",))
    with pytest.raises(ValueError):
        make_loss(norm="softmax")
    assert VGG16Features.stride("relu3_1") == 4 and VGG16Features.stride("relu4_3") == 8
    assert VGG16Features.stride("relu1_1") == 1 and VGG16Features.stride("pool5") == 32
    assert VGG16Features(["relu2_2"], None).out_channels == {"relu2_2": 128}


# -- weight loading -----------------------------------------------------------------------------

def _torchvision_state(upto="relu1_2"):
    import torchvision

    torch.manual_seed(5)
    full = torchvision.models.vgg16(weights=None).features.state_dict()
    last = VGG16_LAYERS.index(upto)
    return {f"features.{k}": v for k, v in full.items() if int(k.split(".")[0]) <= last}


def test_missing_imagenet_weights_error_names_file_and_places(tmp_path):
    with pytest.raises(WeightsNotFoundError) as err:
        VGG16Features(["relu1_2"], "imagenet")
    message = str(err.value)
    assert VGG16_IMAGENET_FILE in message
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in message
    assert "SESIM_VGG16_WEIGHTS" in message and "SESIM_OFFLINE" in message


def test_imagenet_weights_loaded_from_torch_hub_cache(tmp_path):
    state = _torchvision_state()
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(state, cache / VGG16_IMAGENET_FILE)
    vgg = VGG16Features(["relu1_2"], "imagenet")
    assert vgg.weights_source == "imagenet"
    assert torch.equal(vgg.body.conv1_2.weight, state["features.2.weight"])
    assert torch.equal(vgg.body.conv1_1.bias, state["features.0.bias"])
    assert VGG16Features(["relu1_2"], "auto").weights_source == "imagenet"


def test_weights_from_env_and_explicit_path(tmp_path, monkeypatch):
    state = _torchvision_state()
    path = tmp_path / "my_vgg.pth"
    torch.save(state, path)
    assert torch.equal(VGG16Features(["relu1_2"], path).body.conv1_1.weight, state["features.0.weight"])
    monkeypatch.setenv("SESIM_VGG16_WEIGHTS", str(path))
    assert torch.equal(VGG16Features(["relu1_2"], "imagenet").body.conv1_1.weight, state["features.0.weight"])
    monkeypatch.setenv("SESIM_VGG16_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(WeightsNotFoundError, match="nope.pth"):
        VGG16Features(["relu1_2"], "imagenet")
    with pytest.raises(WeightsNotFoundError, match="missing.pth"):
        VGG16Features(["relu1_2"], tmp_path / "missing.pth")
    # a state dict that does not hold the requested layers is refused clearly
    with pytest.raises(ValueError, match="conv2_1"):
        VGG16Features(["relu2_1"], path)


def test_random_weights_only_when_asked():
    assert VGG16Features(["relu1_1"], None).weights_source == "random"
    assert VGG16Features(["relu1_1"], "random").weights_source == "random"
    with pytest.raises(WeightsNotFoundError):  # "auto" looks for the file, it never falls back to random
        VGG16Features(["relu1_1"], "auto")


def test_trainable_backbone_option():
    loss = make_loss(learned=True, train_backbone=True, layers=("relu2_1",), num_queries=8)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    loss.contrastive_loss(x, x.flip(1), x.flip(3)).backward()
    assert all(p.grad is not None for p in loss.extractor.parameters())
    params = list(loss.head_parameters())
    assert len(params) == len(list(loss.heads.parameters())) + len(list(loss.extractor.parameters()))
    for p in params:
        p.grad = None
    y = (torch.rand(1, 3, 16, 16) * 2 - 1).requires_grad_()
    loss(x, y).backward()
    assert y.grad is not None and all(p.grad is None for p in params)
    assert all(p.requires_grad for p in loss.extractor.parameters())  # restored after forward
    with pytest.raises(ValueError, match="learned"):
        make_loss(train_backbone=True)


def test_sampled_keys_ablation_compares_sampled_locations_with_each_other():
    loss = make_loss(keys="sampled", num_queries=12, layers=("relu2_1",))
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    out = loss(x, x.flip(3), return_details=True)
    m = out.maps_x["relu2_1"]
    assert m.maps.shape == (1, 12, 12)
    f = torch.nn.functional.normalize(loss.extractor(x)["relu2_1"], dim=1).flatten(2)[0]  # (C, HW)
    q = f[:, m.queries]
    torch.testing.assert_close(m.maps[0], q.T @ q, atol=1e-5, rtol=1e-5)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-5)
