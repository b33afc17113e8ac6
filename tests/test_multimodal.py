"""--mode multimodal: MUNIT-style content/style generator, multi-scale D, training, translate --samples."""

import numpy
import pytest
import torch
from PIL import Image

from sesim.checkpoint import GENERATOR_FILE, STATE_FILE, load_generator_weights
from sesim.cli import main
from sesim.config import TrainConfig
from sesim.factory import build_generator
from sesim.methods import build_method
from sesim.methods.multimodal import MultimodalMethod
from sesim.nets.multiscale_d import MultiScaleDiscriminator
from sesim.nets.munit import MultimodalGenerator, style_codes
from sesim.train import resume, train
from sesim.translate import TranslateError, translate_paths

from test_train import assert_identical_checkpoints, tiny_config


def tiny_net(style_encoder=True, seed=0):
    torch.manual_seed(seed)
    return MultimodalGenerator(3, 3, ngf=8, n_res=1, style_dim=8, mlp_dim=16, style_encoder=style_encoder).eval()


def mm_config(data, runs, **loss):
    cfg = tiny_config(data, runs, **loss)
    cfg.update("model", dict(mode="multimodal", mlp_dim=16, n_scales_d=2, n_layers_d=3))
    return cfg


def test_generator_keeps_size_and_styles_change_the_output():
    g = tiny_net()
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    s1, s2 = torch.randn(2, 8), torch.randn(2, 8)
    with torch.no_grad():
        y1, y2 = g(x, s1), g(x, s2)
    assert y1.shape == x.shape and y1.abs().max() <= 1
    assert (y1 - y2).abs().mean() > 1e-3  # different codes, different outputs
    with torch.no_grad():  # a single code broadcasts over the batch; the default is the zero code
        assert torch.allclose(g(x, s1[0]), g(x, s1[:1].expand(2, -1)), atol=1e-6)
        assert torch.allclose(g(x), g(x, torch.zeros(8)), atol=1e-6)
        assert g.encode_style(x).shape == (2, 8)


def test_style_mlp_drives_the_decoder():
    g = tiny_net()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    s = torch.randn(1, 8) * 2
    with torch.no_grad():
        before = g(x, s)
        for p in g.style_mlp.parameters():
            p.zero_()
        after = g(x, s)
        # a zero MLP means plain instance norm: the code no longer matters
        assert torch.allclose(after, g(x, torch.randn(1, 8)), atol=1e-6)
    assert (before - after).abs().mean() > 1e-3


def test_style_codes_are_reproducible_and_prefix_stable():
    a = style_codes(8, 5, seed=3)
    assert a.shape == (5, 8)
    assert torch.equal(a, style_codes(8, 5, seed=3))
    assert torch.equal(a[:2], style_codes(8, 2, seed=3))  # sample k does not depend on how many were asked
    assert not torch.equal(a, style_codes(8, 5, seed=4))
    assert len(set(map(tuple, a.tolist()))) == 5


def test_multiscale_discriminator_scales_and_size_check():
    d = MultiScaleDiscriminator(3, ndf=8, n_layers=3, n_scales=3)
    out = d(torch.rand(2, 3, 32, 32))
    assert [tuple(t.shape) for t in out] == [(2, 1, 4, 4), (2, 1, 2, 2), (2, 1, 1, 1)]
    with pytest.raises(ValueError, match="at least 32 px"):
        d(torch.rand(1, 3, 16, 16))


def test_dispatch_and_errors(tiny_dataset, tmp_path):
    cfg = mm_config(tiny_dataset, tmp_path)
    assert isinstance(build_generator(cfg.mode, cfg.data, cfg.generator), MultimodalGenerator)
    method = build_method(cfg)
    assert isinstance(method, MultimodalMethod) and isinstance(method.D, MultiScaleDiscriminator)
    cfg.set_flat("lambda_style", 0.0)
    assert not build_generator(cfg.mode, cfg.data, cfg.generator).has_style_encoder
    cfg.method = "cyclegan"
    with pytest.raises(ValueError, match="sesim method only"):
        build_method(cfg)
    cfg = mm_config(tiny_dataset, tmp_path)
    cfg.set_flat("n_scales_d", 3)
    cfg.set_flat("size", 16)
    with pytest.raises(ValueError, match="too small"):
        build_method(cfg)


@pytest.mark.parametrize("structure", ["fsesim", "lsesim"])
def test_train_step_updates_generator_style_encoder_and_heads(tiny_dataset, tmp_path, structure):
    torch.manual_seed(0)
    method = build_method(mm_config(tiny_dataset, tmp_path, structure=structure))
    before = {k: v.clone() for k, v in method.G.state_dict().items()}
    batch = {"A": torch.rand(2, 3, 32, 32) * 2 - 1, "B": torch.rand(2, 3, 32, 32) * 2 - 1}
    logs = method.train_step(batch)
    assert {"D", "G", "G_gan", "G_structure", "G_style"} <= set(logs)
    assert ("head_nce" in logs) == (structure == "lsesim")
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    after = method.G.state_dict()
    for part in ("content_encoder.", "decoder.", "style_mlp.", "style_encoder."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part)), part


def test_head_warmup_holds_the_generator_and_discriminator(tiny_dataset, tmp_path):
    torch.manual_seed(0)
    method = build_method(mm_config(tiny_dataset, tmp_path, structure="lsesim", head_warmup=1))
    before = {k: v.clone() for k, v in method.state_dict().items()}
    batch = {"A": torch.rand(2, 3, 32, 32) * 2 - 1, "B": torch.rand(2, 3, 32, 32) * 2 - 1}
    assert set(method.train_step(batch)) == {"head_nce"}  # the warm-up step: heads only
    after = method.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("G.", "D.")))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("structure.heads."))
    assert "G" in method.train_step(batch) and method.extra_state()["head_steps"] == 2


@pytest.mark.parametrize("preset", ["winter2summer", "night2day"])
def test_presets_select_the_munit_settings(preset):
    cfg = TrainConfig()
    cfg.apply_preset(preset)
    g, d = cfg.generator, cfg.discriminator
    assert (cfg.mode, g.style_dim, d.n_scales_d, d.n_layers_d, g.n_blocks, g.mlp_dim) == ("multimodal", 8, 3, 4, 4, 256)
    assert cfg.structure.lambda_structure == 10.0 and cfg.generator.lambda_style == 1.0 and cfg.discriminator.gan_mode == "lsgan"
    assert cfg.data.direction == ("BtoA" if preset == "winter2summer" else "AtoB")


def test_training_then_translate_samples_round_trip(tiny_dataset, tmp_path, capsys):
    flags = dict(data=tiny_dataset, size=32, load_size=36, workers=0, ngf=8, ndf=8, n_blocks=1, vgg_weights="random",
                 num_queries=16, patch_size=4, steps=4, batch_size=2, runs=tmp_path / "runs", name="r",
                 checkpoint_every=2, sample_every=2, log_every=1, num_samples=2, mode="multimodal", mlp_dim=16,
                 n_scales_d=2)
    argv = ["train", "--no-progress"] + [x for k, v in flags.items() for x in ("--" + k.replace("_", "-"), str(v))]
    assert main(argv) == 0
    run = tmp_path / "runs" / "r"
    assert TrainConfig.load(run / "config.json").mode == "multimodal"
    for name in ("config.json", GENERATOR_FILE, STATE_FILE, "index.html", "samples/step_0000004.png"):
        assert (run / name).exists(), name
    weights = load_generator_weights(run / GENERATOR_FILE)
    assert any(k.startswith("style_encoder.") for k in weights)
    # training sample grid: input + 3 style codes, 32 px cells shown at x4 with 2 px padding
    assert Image.open(run / "samples" / "step_0000004.png").width == 4 * (4 * 32 + 2) + 2

    out = tmp_path / "out"
    assert main(["translate", "--run", str(run), "--input", str(tiny_dataset / "testA"), "--output", str(out),
                 "--samples", "3", "--seed", "7", "--no-progress"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"img{i}_s{k}.png" for i in range(3) for k in range(3)]
    src = Image.open(tiny_dataset / "testA" / "img1.png")
    outs = [torch.tensor(numpy.asarray(Image.open(out / f"img1_s{k}.png")), dtype=torch.float) for k in range(3)]
    assert Image.open(out / "img1_s0.png").size == src.size
    assert (outs[0] - outs[1]).abs().mean() > 0.5 and (outs[1] - outs[2]).abs().mean() > 0.5
    # same seed: identical files; another seed: different ones
    again = translate_paths(run, tiny_dataset / "testA" / "img1.png", tmp_path / "again", samples=2, seed=7,
                            progress=False)
    assert [p.name for p in again] == ["img1_s0.png", "img1_s1.png"]
    assert (tmp_path / "again" / "img1_s1.png").read_bytes() == (out / "img1_s1.png").read_bytes()
    other = translate_paths(run, tiny_dataset / "testA" / "img1.png", tmp_path / "other", samples=2, seed=8,
                            progress=False)
    assert other[0].read_bytes() != (out / "img1_s0.png").read_bytes()
    # existing outputs are kept unless asked
    assert main(["translate", "--run", str(run), "--input", str(tiny_dataset / "testA"), "--output", str(out),
                 "--samples", "3", "--no-progress"]) == 1
    assert "already exist" in capsys.readouterr().err
    # style from a reference image: one output per input, deterministic
    ref = tiny_dataset / "trainB" / "img0.png"
    a = translate_paths(run, tiny_dataset / "testA", tmp_path / "ref", style_from=ref, progress=False)
    b = translate_paths(run, tiny_dataset / "testA", tmp_path / "ref2", style_from=ref, progress=False)
    assert [p.name for p in a] == ["img0.png", "img1.png", "img2.png"]
    assert a[1].read_bytes() == b[1].read_bytes()
    with pytest.raises(TranslateError, match="cannot be combined"):
        translate_paths(run, ref, tmp_path / "x", style_from=ref, samples=2, progress=False)


def test_no_style_encoder_run_gives_clear_style_from_error(tiny_dataset, tmp_path):
    cfg = mm_config(tiny_dataset, tmp_path / "runs", lambda_style=0.0)
    cfg.update("run", dict(steps=1, checkpoint_every=1, sample_every=1))
    run = train(cfg, progress=False)
    assert not any(k.startswith("style_encoder.") for k in load_generator_weights(run / GENERATOR_FILE))
    with pytest.raises(TranslateError, match="--lambda-style 0"):
        translate_paths(run, tiny_dataset / "testA", tmp_path / "o", style_from=tiny_dataset / "trainB" / "img0.png",
                        progress=False)
    assert len(translate_paths(run, tiny_dataset / "testA", tmp_path / "o", samples=2, progress=False)) == 6


def test_single_modal_run_rejects_samples(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "runs")
    cfg.update("run", dict(steps=1, checkpoint_every=1, sample_every=1))
    run = train(cfg, progress=False)
    with pytest.raises(TranslateError, match="multimodal"):
        translate_paths(run, tiny_dataset / "testA", tmp_path / "o", samples=2, progress=False)


def test_resume_restores_identical_state(tiny_dataset, tmp_path):
    straight = train(mm_config(tiny_dataset, tmp_path / "a"), progress=False)
    interrupted = train(mm_config(tiny_dataset, tmp_path / "b"), progress=False, stop_at=2)
    resume(interrupted, progress=False)
    assert_identical_checkpoints(straight, interrupted, ("G", "D"))


def test_export_bakes_in_the_zero_style(tiny_dataset, tmp_path):
    from sesim.export import export_run
    from sesim.translate import load_run_generator

    cfg = mm_config(tiny_dataset, tmp_path / "runs")
    cfg.update("run", dict(steps=1, checkpoint_every=1, sample_every=1))
    run = train(cfg, progress=False)
    path = export_run(run, tmp_path / "g.ts", fmt="torchscript")
    exported = torch.jit.load(str(path))
    generator, _ = load_run_generator(run)
    x = torch.rand(1, 3, 32, 36) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(exported(x), generator(x, torch.zeros(8)), atol=1e-5)


def test_bench_diversity_measure():
    """bench/multimodal.py's diversity: 0 for identical samples, grows with the difference."""
    import importlib.util
    import sys
    from pathlib import Path

    import numpy as np

    bench = Path(__file__).resolve().parents[1] / "bench"
    spec = importlib.util.spec_from_file_location("bench_multimodal", bench / "multimodal.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("bench_multimodal", None)
    features = lambda imgs: imgs.reshape(len(imgs), -1).astype(np.float64).mean(1, keepdims=True)  # noqa: E731
    same = np.full((3, 4, 8, 8, 3), 100, np.uint8)
    assert module.diversity(features, same)["div_pixel"] == 0.0
    assert module.diversity(features, same[:, :1])["pairs"] == 0
    varied = same.copy()
    varied[:, 1] += 51  # one of the 4 samples differs by 0.2: 3 of the 6 pairs
    d = module.diversity(features, varied)
    assert d["div_pixel"] == pytest.approx(0.1) and d["div_feature"] == pytest.approx(25.5) and d["pairs"] == 18
