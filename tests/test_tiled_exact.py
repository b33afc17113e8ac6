"""Tiled inference equals whole-image inference for every generator kind (sesim/layerwise.py,
sesim/tiled.py), on odd, non-square sizes; memory estimates and the tiling decision."""

import pytest
import torch
import torch.nn.functional as F

from sesim.layerwise import Conv, ConvT, NotTileableError, Pad, Upsample, plan_memory, program_for, run_program
from sesim.memory import current_rss, format_size, parse_size, whole_image_bytes
from sesim.nets.munit import MultimodalGenerator
from sesim.nets.resnet_generator import ResnetGenerator
from sesim.nets.stylegan2 import StyleGAN2Generator
from sesim.tiled import plan_inference
from sesim.translate import translate_tensor


def _randomise(g: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial biases, affine terms and running statistics, so borders and norms matter."""
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if p.dim() == 1 or "style" in name:
                p.normal_(0, 0.5)
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return g.eval()


GENERATORS = {
    "resnet-instance": lambda: ResnetGenerator(3, 3, ngf=4, n_blocks=2),
    "resnet-instance-antialias": lambda: ResnetGenerator(3, 3, ngf=4, n_blocks=2, antialias=True),
    "resnet-instance-nearest": lambda: ResnetGenerator(3, 3, ngf=4, n_blocks=1, upsample="nearest"),  # demo preset
    "resnet-batch": lambda: ResnetGenerator(3, 3, ngf=4, n_blocks=1, norm="batch"),
    "resnet-grey": lambda: ResnetGenerator(1, 1, ngf=4, n_blocks=1),
    "munit": lambda: MultimodalGenerator(3, 3, ngf=4, n_res=2, style_dim=4, mlp_dim=8),
    "stylegan2": lambda: StyleGAN2Generator(3, 3, ngf=4, n_down=2, n_blocks=2),
}


@pytest.mark.parametrize("kind", list(GENERATORS))
@pytest.mark.parametrize("height,width,tile", [(37, 53, 16), (61, 29, 24)])
def test_tiled_equals_whole_image(kind, height, width, tile):
    torch.manual_seed(0)
    g = _randomise(GENERATORS[kind]())
    stride = g.stride
    channels = 1 if kind == "resnet-grey" else 3
    if kind == "stylegan2":  # blended tiles must be wider than twice the receptive radius (37 px here)
        height, width, tile = 3 * height, 3 * width, 96
    x = torch.rand(2, channels, height, width) * 2 - 1
    style = torch.randn(1, 4) if kind == "munit" else None
    whole = translate_tensor(g, x, stride, tile=None, style=style)
    tiled = translate_tensor(g, x, stride, tile=tile, style=style)
    assert tiled.shape == whole.shape == (2, channels, height, width) and max(height, width) > tile
    assert (tiled - whole).abs().max() < 2e-5


def test_the_statistics_matter_independent_tiles_differ():
    """Normalising each tile with its own statistics is visibly wrong, so the test above can fail."""
    g = _randomise(ResnetGenerator(3, 3, ngf=4, n_blocks=2))
    x = torch.rand(1, 3, 48, 64) * 2 - 1
    with torch.inference_mode():
        whole = g(x)
        naive = torch.cat([g(x[..., :, :32]), g(x[..., :, 32:])], dim=3)
    assert (naive - whole).abs().max() > 1e-2


def test_activations_spilled_to_files_give_the_same_result(tmp_path):
    g = _randomise(ResnetGenerator(3, 3, ngf=4, n_blocks=2))
    x = torch.rand(1, 3, 44, 36) * 2 - 1
    with torch.inference_mode():
        whole = g(x)
        calls = []
        out = run_program(program_for(g), x, tile=8, spill=True, spill_dir=str(tmp_path),
                          progress=lambda done, total: calls.append((done, total)))
    assert (out - whole).abs().max() < 2e-5
    assert not list(tmp_path.iterdir())  # the tile files are unlinked at once
    assert calls[-1][0] == calls[-1][1] > 10 and len(calls) == calls[-1][1]


@pytest.mark.parametrize("mode", ["reflect", "replicate", "zeros"])
def test_padding_of_any_box_matches_padding_the_whole_image(mode):
    """Pad.apply on a box (fast F.pad path and the gather fallback) equals cropping the padded image."""
    torch.manual_seed(0)
    n_h, n_w, p = 9, 7, 3
    x = torch.randn(1, 2, n_h, n_w)
    full = F.pad(x, (p, p, p, p), mode="constant" if mode == "zeros" else mode)
    op = Pad(p, mode)
    for r0 in range(0, n_h + 2 * p - 1):
        for r1 in (r0 + 1, min(r0 + 5, n_h + 2 * p), n_h + 2 * p):
            for c0, c1 in ((0, 2), (1, n_w + 2 * p), (n_w + p, n_w + 2 * p)):
                src = (op.needs((r0, r1), n_h), op.needs((c0, c1), n_w))
                got = op.apply(x[:, :, src[0][0]:src[0][1], src[1][0]:src[1][1]], src, ((r0, r1), (c0, c1)), (n_h, n_w))
                assert torch.equal(got, full[:, :, r0:r1, c0:c1]), (r0, r1, c0, c1)


@pytest.mark.parametrize("op,whole", [
    (Conv(torch.randn(3, 2, 3, 3), torch.randn(3), stride=2), lambda x, w, b: F.conv2d(x, w, b, 2)),
    (ConvT(torch.randn(2, 3, 3, 3), torch.randn(3), stride=2, padding=1, output_padding=1),
     lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1)),
    (Upsample(2), None),
])
def test_spatial_layers_on_boxes_match_the_whole_image(op, whole):
    torch.manual_seed(1)
    x = torch.randn(1, 2, 11, 10)
    full = F.interpolate(x, scale_factor=2, mode="nearest") if whole is None else whole(x, op.weight, op.bias)
    n_out = (op.out_len(11), op.out_len(10))
    assert tuple(full.shape[-2:]) == n_out
    for r0, r1 in ((0, 3), (2, 5), (n_out[0] - 3, n_out[0])):
        for c0, c1 in ((0, n_out[1]), (1, 4)):
            src = (op.needs((r0, r1), 11), op.needs((c0, c1), 10))
            got = op.apply(x[:, :, src[0][0]:src[0][1], src[1][0]:src[1][1]], src, ((r0, r1), (c0, c1)), (11, 10))
            torch.testing.assert_close(got, full[:, :, r0:r1, c0:c1])


def test_unknown_generators_are_refused_clearly():
    with pytest.raises(NotTileableError, match="no exact tiled program"):
        program_for(torch.nn.Conv2d(3, 3, 3))


def test_memory_estimate_grows_with_pixels_and_bounds_the_activations():
    g = ResnetGenerator(3, 3, ngf=8, n_blocks=1).eval()
    small = whole_image_bytes(g, (1, 3, 256, 256))
    large = whole_image_bytes(g, (1, 3, 512, 512))
    assert 3.9 < large / small < 4.1
    # the stem's conv output and its normalised copy (ngf channels, float32) are alive together
    assert small >= 2 * 8 * 4 * 256 * 256
    assert whole_image_bytes(g, (2, 3, 256, 256)) == pytest.approx(2 * small, rel=0.01)


def test_plan_tiles_only_what_does_not_fit():
    """--max-memory limits the whole process: the memory in use now counts against it."""
    g = ResnetGenerator(3, 3, ngf=8, n_blocks=1).eval()
    assert plan_inference(g, (1, 3, 64, 64), max_memory=current_rss() + (1 << 30)).kind == "whole"
    plan = plan_inference(g, (1, 3, 512, 512), max_memory=current_rss() + (12 << 20))
    assert plan.kind == "layerwise" and plan.whole_bytes > 12 << 20
    assert plan.tiled_bytes <= plan.work_bytes < 12 << 20
    assert "exact layer-by-layer tiles" in plan.describe(512, 512)
    sg = StyleGAN2Generator(3, 3, ngf=4, n_down=2, n_blocks=2).eval()
    assert plan_inference(sg, (1, 3, 512, 512), max_memory=current_rss() + (8 << 20)).kind == "blend"
    with pytest.raises(ValueError, match="raise --max-memory"):
        plan_inference(g, (1, 3, 512, 512), max_memory=current_rss() + (1 << 20))
    assert plan_inference(g, (1, 3, 64, 64), tile=32).kind == "layerwise"  # an explicit tile side always tiles
    with pytest.raises(ValueError, match="more than the .* available"):
        plan_inference(g, (1, 3, 200_000, 200_000), tile="none")


def test_stored_activations_go_to_files_when_they_do_not_fit():
    g = ResnetGenerator(3, 3, ngf=8, n_blocks=2).eval()
    program = program_for(g)
    roomy = plan_memory(program, (1, 3, 512, 512), budget=1 << 30)
    tight = plan_memory(program, (1, 3, 512, 512), budget=roomy.stored_bytes)
    assert not roomy.spill and tight.spill
    # two bottleneck activations (4 * ngf channels at 1/4 resolution) are alive at once
    assert roomy.stored_bytes == 2 * 4 * 8 * 128 * 128 * 4


def test_sizes():
    assert parse_size("4G") == 4 << 30 and parse_size("512m") == 512 << 20 and parse_size("1.5GB") == 3 << 29
    assert parse_size(1000) == 1000 and format_size(3 << 29) == "1.5 GB"
    for bad in ("0", "-1G", "lots", "4X"):
        with pytest.raises(ValueError):
            parse_size(bad)
