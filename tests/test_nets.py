"""Tests for the ResNet generator, the PatchGAN discriminator and weight initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sesim.nets.init import INIT_KINDS, init_weights
from sesim.nets.patchgan import PatchDiscriminator
from sesim.nets.resnet_generator import ResnetGenerator


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny convs are far faster single-threaded (OpenMP spin-waits dominate on a busy 2-core box)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def small_gen() -> ResnetGenerator:
    torch.manual_seed(0)
    return ResnetGenerator(ngf=8, n_blocks=3).eval()


@pytest.fixture(scope="module")
def small_disc() -> PatchDiscriminator:
    torch.manual_seed(0)
    return PatchDiscriminator(ndf=8, n_layers=3)


# ------------------------------------------------------------------ generator
@pytest.mark.parametrize("hw", [(32, 32), (64, 64), (32, 48), (48, 32)])
def test_generator_shape(small_gen: ResnetGenerator, hw: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *hw) * 2 - 1
    with torch.no_grad():
        y = small_gen(x)
    assert y.shape == (2, 3, *hw)


def test_generator_channels() -> None:
    g = ResnetGenerator(in_channels=1, out_channels=2, ngf=4, n_blocks=1)
    assert g(torch.zeros(1, 1, 16, 16)).shape == (1, 2, 16, 16)
    with pytest.raises(ValueError, match="input channels"):
        g(torch.zeros(1, 3, 16, 16))


@pytest.mark.parametrize("hw", [(30, 32), (32, 34), (33, 33)])
def test_generator_rejects_non_multiple_of_stride(small_gen: ResnetGenerator, hw: tuple[int, int]) -> None:
    assert small_gen.stride == 4
    with pytest.raises(ValueError, match="multiples of 4"):
        small_gen(torch.zeros(1, 3, *hw))
    with pytest.raises(ValueError, match="multiples of 4"):
        small_gen.encode(torch.zeros(1, 3, *hw), ["stem"])


def test_generator_rejects_too_small_input(small_gen: ResnetGenerator) -> None:
    with pytest.raises(ValueError, match=">= 8"):
        small_gen(torch.zeros(1, 3, 4, 8))


def test_generator_output_range(small_gen: ResnetGenerator) -> None:
    # Large inputs and large weights push the tanh into saturation; output must stay in [-1, 1].
    g = ResnetGenerator(ngf=8, n_blocks=2, norm="none")
    init_weights(g, "normal", gain=1.0)
    y = g(torch.randn(2, 3, 32, 32) * 10)
    assert y.min() >= -1 and y.max() <= 1
    assert y.abs().max() > 0.99  # saturation actually reached, so the bound was tested
    y2 = small_gen(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert y2.min() >= -1 and y2.max() <= 1


def test_generator_param_count_default() -> None:
    assert n_params(ResnetGenerator(ngf=64, n_blocks=9)) == 11_378_179


def test_generator_param_count_formula() -> None:
    """Closed-form count for instance norm (biases everywhere, no norm params)."""
    for ngf, nb in [(8, 0), (16, 2), (32, 6)]:
        c1, c2, c4 = ngf, 2 * ngf, 4 * ngf
        expected = (
            (3 * c1 * 49 + c1)
            + (c1 * c2 * 9 + c2)
            + (c2 * c4 * 9 + c4)
            + nb * 2 * (c4 * c4 * 9 + c4)
            + (c4 * c2 * 9 + c2)
            + (c2 * c1 * 9 + c1)
            + (c1 * 3 * 49 + 3)
        )
        assert n_params(ResnetGenerator(ngf=ngf, n_blocks=nb)) == expected


def test_generator_norm_variants() -> None:
    g_inst = ResnetGenerator(ngf=8, n_blocks=1, norm="instance")
    g_batch = ResnetGenerator(ngf=8, n_blocks=1, norm="batch")
    g_none = ResnetGenerator(ngf=8, n_blocks=1, norm="none")
    assert g_inst.down1.conv.bias is not None and g_none.down1.conv.bias is not None
    assert g_batch.down1.conv.bias is None and isinstance(g_batch.down1.norm, nn.BatchNorm2d)
    norm = g_inst.blocks.block1.body.norm1
    assert isinstance(norm, nn.InstanceNorm2d) and not norm.affine and not norm.track_running_stats
    assert n_params(g_inst) == n_params(g_none)
    for g in (g_inst, g_batch, g_none):
        assert g(torch.zeros(2, 3, 16, 16)).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="norm"):
        ResnetGenerator(norm="group")


def test_generator_padding_variants() -> None:
    g_zero = ResnetGenerator(ngf=8, n_blocks=1, padding="zero")
    g_refl = ResnetGenerator(ngf=8, n_blocks=1, padding="reflect")
    assert isinstance(g_refl.stem.pad, nn.ReflectionPad2d)
    assert isinstance(g_refl.blocks.block1.body.pad2, nn.ReflectionPad2d)
    assert not hasattr(g_zero.stem, "pad")
    assert n_params(g_zero) == n_params(g_refl)
    assert g_zero(torch.zeros(1, 3, 16, 16)).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="padding"):
        ResnetGenerator(padding="circular-ish")


def test_generator_named_layers(small_gen: ResnetGenerator) -> None:
    names = dict(small_gen.named_modules())
    for name in ["stem.conv", "down1.conv", "down2.norm", "blocks.block3", "up1.conv", "up2.relu", "to_rgb.conv"]:
        assert name in names, name
    assert isinstance(small_gen.up1.conv, nn.ConvTranspose2d)
    assert isinstance(small_gen.to_rgb.tanh, nn.Tanh)


def test_encode_layers_and_channels(small_gen: ResnetGenerator) -> None:
    ngf = small_gen.ngf
    assert small_gen.layer_names() == [
        "input", "stem", "down1", "down2", "block1", "block2", "block3", "up1", "up2", "output"
    ]  # fmt: skip
    expected = {
        "input": (3, 32, 48),
        "stem": (ngf, 32, 48),
        "down1": (2 * ngf, 16, 24),
        "down2": (4 * ngf, 8, 12),
        "block2": (4 * ngf, 8, 12),
        "up1": (2 * ngf, 16, 24),
        "up2": (ngf, 32, 48),
        "output": (3, 32, 48),
    }
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        feats = small_gen.encode(x, list(expected))
        full = small_gen(x)
    assert list(feats) == list(expected)
    for name, shape in expected.items():
        assert feats[name].shape == (2, *shape), name
        assert small_gen.layer_channels()[name] == shape[0]
    torch.testing.assert_close(feats["output"], full)
    assert torch.equal(feats["input"], x)


def test_encode_matches_manual_forward_and_stops_early(small_gen: ResnetGenerator) -> None:
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        manual = small_gen.blocks.block1(small_gen.down2(small_gen.down1(small_gen.stem(x))))
        feats = small_gen.encode(x, ["block1", "stem"])
    assert list(feats) == ["block1", "stem"]
    torch.testing.assert_close(feats["block1"], manual)

    calls: list[str] = []
    hooks = [
        getattr(small_gen, n).register_forward_hook(lambda *_, n=n: calls.append(n))
        for n in ("stem", "down1", "down2", "up1", "up2", "to_rgb")
    ]
    hooks.append(small_gen.blocks.block3.register_forward_hook(lambda *_: calls.append("block3")))
    try:
        with torch.no_grad():
            small_gen.encode(x, ["down1"])
    finally:
        for h in hooks:
            h.remove()
    assert calls == ["stem", "down1"]


def test_encode_rejects_unknown_layer(small_gen: ResnetGenerator) -> None:
    with pytest.raises(ValueError, match="block4"):
        small_gen.encode(torch.zeros(1, 3, 16, 16), ["block4"])


# -------------------------------------------------------------- discriminator
@pytest.mark.parametrize("hw,out", [((32, 32), (2, 2)), ((64, 64), (6, 6)), ((32, 48), (2, 4))])
def test_discriminator_shape(small_disc: PatchDiscriminator, hw: tuple[int, int], out: tuple[int, int]) -> None:
    y = small_disc(torch.rand(3, 3, *hw) * 2 - 1)
    assert y.shape == (3, 1, *out)
    assert small_disc.output_size(*hw) == out


def test_discriminator_outputs_raw_logits() -> None:
    d = PatchDiscriminator(ndf=8, norm="none")
    init_weights(d, "normal", gain=0.5)
    y = d(torch.randn(2, 3, 32, 32) * 5)
    assert (y < 0).any() and (y.abs() > 1).any()  # not squashed by a sigmoid


def test_discriminator_too_small_input(small_disc: PatchDiscriminator) -> None:
    with pytest.raises(ValueError, match="too small"):
        small_disc(torch.zeros(1, 3, 16, 16))


def test_discriminator_param_count_default() -> None:
    assert n_params(PatchDiscriminator(ndf=64, n_layers=3)) == 2_764_737


def test_discriminator_structure() -> None:
    d = PatchDiscriminator(ndf=8, n_layers=3)
    assert d.layer_names() == ["stem", "down1", "down2", "conv_s1", "head"]
    assert not hasattr(d.stem, "norm")
    assert isinstance(d.stem.act, nn.LeakyReLU) and d.stem.act.negative_slope == 0.2
    widths = [d.stem.conv.out_channels, d.down1.conv.out_channels, d.down2.conv.out_channels]
    assert widths == [8, 16, 32]
    assert d.conv_s1.conv.out_channels == 64 and d.conv_s1.conv.stride == (1, 1)
    assert d.head.conv.out_channels == 1 and not isinstance(list(d.head.children())[-1], nn.Sigmoid)
    # width is capped at 8 * ndf
    d5 = PatchDiscriminator(ndf=4, n_layers=5)
    assert d5.down4.conv.out_channels == 32 and d5.conv_s1.conv.out_channels == 32
    db = PatchDiscriminator(ndf=8, norm="batch")
    assert db.down1.conv.bias is None and db.stem.conv.bias is not None


@pytest.mark.parametrize("n_layers,rf", [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_receptive_field(n_layers: int, rf: int) -> None:
    assert PatchDiscriminator(ndf=4, n_layers=n_layers).receptive_field() == rf


def test_receptive_field_empirical() -> None:
    """The gradient of one output logit w.r.t. the input covers exactly receptive_field() pixels per side."""
    d = PatchDiscriminator(in_channels=1, ndf=4, n_layers=2, norm="none")
    init_weights(d, "normal", gain=0.5)
    x = torch.randn(1, 1, 96, 96, requires_grad=True)
    y = d(x)
    i, j = y.shape[-2] // 2, y.shape[-1] // 2
    y[0, 0, i, j].backward()
    nz = x.grad[0, 0].abs() > 0
    rows = nz.any(dim=1).nonzero()
    cols = nz.any(dim=0).nonzero()
    assert int(rows.max() - rows.min() + 1) == d.receptive_field() == 34
    assert int(cols.max() - cols.min() + 1) == 34


# ------------------------------------------------------------------ training
def test_gradient_step_reduces_loss() -> None:
    torch.manual_seed(0)
    g = ResnetGenerator(ngf=8, n_blocks=2)
    d = PatchDiscriminator(ndf=8, n_layers=2)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    target = torch.zeros(2, 3, 16, 16)

    def loss_fn() -> torch.Tensor:
        return (g(x) - target).pow(2).mean() + d(g(x)).pow(2).mean()

    opt = torch.optim.SGD(list(g.parameters()) + list(d.parameters()), lr=1e-3)
    before = loss_fn()
    opt.zero_grad()
    before.backward()
    # the whole graph is connected: every parameter received a gradient
    for name, p in list(g.named_parameters()) + list(d.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    opt.step()
    with torch.no_grad():
        after = loss_fn()
    assert after < 0.95 * before.item()


# ---------------------------------------------------------------------- init
def test_init_normal_std() -> None:
    torch.manual_seed(0)
    g = init_weights(ResnetGenerator(ngf=16, n_blocks=1), "normal", gain=0.02)
    w = g.down2.conv.weight
    assert w.std().item() == pytest.approx(0.02, rel=0.05)
    assert w.mean().abs().item() < 0.002
    assert torch.count_nonzero(g.down2.conv.bias) == 0
    assert g.to_rgb.conv.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_init_xavier_std() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)
    init_weights(conv, "xavier", gain=0.02)
    fan_in, fan_out = 64 * 9, 128 * 9
    expected = 0.02 * math.sqrt(2.0 / (fan_in + fan_out))
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.05)
    assert torch.count_nonzero(conv.bias) == 0


def test_init_kaiming_std() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(200, 300)
    init_weights(lin, "kaiming", gain=0.02)  # gain is ignored for kaiming
    assert lin.weight.std().item() == pytest.approx(math.sqrt(2.0 / 200), rel=0.05)


def test_init_orthogonal() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3)  # flattened (32, 144): rows orthogonal
    init_weights(conv, "orthogonal", gain=0.5)
    w = conv.weight.reshape(32, -1)
    torch.testing.assert_close(w @ w.T, 0.25 * torch.eye(32), atol=1e-5, rtol=0)


def test_init_batchnorm_and_return_value() -> None:
    torch.manual_seed(0)
    d = PatchDiscriminator(ndf=64, norm="batch")
    for bn in (d.down1.norm, d.down2.norm, d.conv_s1.norm):
        bn.bias.data.fill_(3.0)
    out = init_weights(d, "xavier", gain=0.02)
    assert out is d
    gamma = torch.cat([d.down1.norm.weight, d.down2.norm.weight, d.conv_s1.norm.weight])
    assert gamma.mean().item() == pytest.approx(1.0, abs=0.005)
    assert gamma.std().item() == pytest.approx(0.02, rel=0.15)
    assert torch.count_nonzero(d.down2.norm.bias) == 0


def test_init_all_kinds_and_unknown() -> None:
    for kind in INIT_KINDS:
        torch.manual_seed(0)
        g = init_weights(ResnetGenerator(ngf=4, n_blocks=1), kind)
        assert torch.isfinite(g(torch.zeros(1, 3, 16, 16))).all()
    with pytest.raises(ValueError, match="normal.*xavier.*kaiming.*orthogonal"):
        init_weights(nn.Linear(2, 2), "uniform")


@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_on_the_group_norm_kernel_matches_torch(affine):
    from sesim.nets.norm import InstanceNorm2d

    torch.manual_seed(0)
    x = (torch.randn(2, 6, 9, 7) * 3 + 1).requires_grad_()
    ours, ref = InstanceNorm2d(6, affine=affine), nn.InstanceNorm2d(6, affine=affine)
    if affine:
        with torch.no_grad():
            for m in (ours, ref):
                m.weight.copy_(torch.linspace(0.5, 2, 6))
                m.bias.copy_(torch.linspace(-1, 1, 6))
    y, y_ref = ours(x), ref(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    (gx_ref,) = torch.autograd.grad(y_ref, x, g)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-4, atol=1e-5)
    assert isinstance(ours, nn.InstanceNorm2d) and ours.state_dict().keys() == ref.state_dict().keys()
    # running statistics and unbatched input take PyTorch's own path
    tracked = InstanceNorm2d(6, track_running_stats=True)
    tracked(x.detach())
    assert tracked.running_mean.abs().sum() > 0
    torch.testing.assert_close(ours(x[0]), ref(x[0]), rtol=1e-5, atol=1e-5)
