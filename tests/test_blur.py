"""Anti-aliased resampling (sesim/nets/blur.py) and the --antialias generator / discriminator."""

import pytest
import torch

from sesim.nets.blur import BlurDownsample, BlurUpsample
from sesim.nets.patchgan import PatchDiscriminator
from sesim.nets.resnet_generator import ResnetGenerator


@pytest.mark.parametrize("h,w", [(8, 8), (7, 10), (2, 3)])
def test_blur_resampling_shapes_and_constants(h, w):
    x = torch.full((2, 3, h, w), 0.7)
    down, up = BlurDownsample(3)(x), BlurUpsample(3)(x)
    assert down.shape == (2, 3, (h + 1) // 2, (w + 1) // 2) and up.shape == (2, 3, 2 * h, 2 * w)
    torch.testing.assert_close(down, torch.full_like(down, 0.7))  # filters sum to 1, borders included
    torch.testing.assert_close(up, torch.full_like(up, 0.7))
    assert not list(BlurDownsample(3).state_dict()) and not list(BlurUpsample(3).state_dict())  # fixed, not saved


def test_blur_downsample_is_the_binomial_filter_then_subsampling():
    x = torch.randn(1, 1, 9, 9, dtype=torch.float64)
    k = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"),
                                     (torch.outer(k, k) / 16).view(1, 1, 3, 3))[..., ::2, ::2]
    torch.testing.assert_close(BlurDownsample(1).double()(x), ref)


def test_blur_upsample_has_no_checkerboard_on_an_impulse_free_ramp():
    """A linear ramp upsampled must stay a (sub-sampled) linear ramp inside: no period-2 pattern."""
    ramp = torch.arange(8, dtype=torch.float64).view(1, 1, 1, 8).expand(1, 1, 6, 8)
    up = BlurUpsample(1).double()(ramp)[0, 0, 3, 2:-2]
    steps = up.diff()
    torch.testing.assert_close(steps, torch.full_like(steps, 0.5))


def test_antialiased_networks_keep_shapes_names_and_parameter_counts():
    plain, aa = ResnetGenerator(3, 3, 8, 2), ResnetGenerator(3, 3, 8, 2, antialias=True)
    x = torch.rand(2, 3, 32, 44) * 2 - 1
    assert aa(x).shape == x.shape
    assert sum(p.numel() for p in aa.parameters()) == sum(p.numel() for p in plain.parameters())
    assert isinstance(aa.down1.blur, BlurDownsample) and isinstance(aa.up1.blur, BlurUpsample)
    assert {k: v.shape for k, v in aa.encode(x, ["down1", "block1"]).items()} == \
        {k: v.shape for k, v in plain.encode(x, ["down1", "block1"]).items()}
    d = PatchDiscriminator(3, 8, 3, antialias=True)
    for h, w in ((32, 40), (64, 64), (70, 51)):
        assert tuple(d(torch.rand(1, 3, h, w)).shape[-2:]) == d.output_size(h, w)
    assert d.receptive_field() > PatchDiscriminator(3, 8, 3).receptive_field() == 70


def test_antialias_option_trains_and_exports(tiny_dataset, tmp_path):
    pytest.importorskip("onnxruntime")
    from sesim.export import export_run
    from sesim.train import train
    from test_train import tiny_config

    cfg = tiny_config(tiny_dataset, tmp_path / "runs")
    cfg.update("model", {"antialias": True})
    cfg.update("run", {"steps": 2})
    run = train(cfg, progress=False)
    path = export_run(run, None, fmt="onnx")
    import numpy as np
    import onnxruntime

    from sesim.translate import load_run_generator

    generator, _ = load_run_generator(run)
    assert isinstance(generator.down1.blur, BlurDownsample)  # translate rebuilds the anti-aliased network
    x = torch.rand(1, 3, 36, 52) * 2 - 1
    with torch.no_grad():
        expected = generator(x).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_nearest_upsampling_generator_has_no_checkerboard_at_initialisation():
    """Resize-convolution (``upsample="nearest"``): same shapes and parameters as the transposed-conv
    generator, and, unlike it, an untrained network maps a constant image to an image without a
    period-2 pattern (every output pixel sees the same taps)."""
    torch.manual_seed(0)
    x = torch.full((1, 3, 32, 32), 0.3)

    def period2(g):
        g = g.eval()
        with torch.no_grad():
            y = g.up2(g.up1(torch.full((1, 32, 8, 8), 0.5)))[0, :, 4:-4, 4:-4]  # a constant bottleneck
        even, odd = y[:, ::2, ::2], y[:, 1::2, 1::2]
        return float((even.mean((1, 2)) - odd.mean((1, 2))).abs().max())

    plain, near = ResnetGenerator(3, 3, 8, 2, norm="none"), ResnetGenerator(3, 3, 8, 2, norm="none", upsample="nearest")
    assert near(x).shape == x.shape and isinstance(near.up1.resize, torch.nn.Upsample)
    assert sum(p.numel() for p in near.parameters()) == sum(p.numel() for p in plain.parameters())
    assert period2(near) < 1e-6 < 1e-3 < period2(plain)
    with pytest.raises(ValueError, match="upsample"):
        ResnetGenerator(3, 3, 8, 2, upsample="bicubic")
