"""--mode single-image: patch sampling, StyleGAN2-style nets, tiled inference, SinCUT, metrics, CLI round trip."""

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from sesim.checkpoint import STATE_FILE, load_state
from sesim.cli import main
from sesim.config import TrainConfig
from sesim.data.single_image import SingleImageError, SingleImagePairDataset, sample_box, single_image_dataset
from sesim.losses.spatial import SpatialCorrelativeLoss
from sesim.methods.single_image import gradient_penalty
from sesim.metrics.single_image import random_feature_extractor, self_similarity_distance, sifid
from sesim.nets.stylegan2 import ModulatedConv2d, StyleGAN2Discriminator, StyleGAN2Generator
from sesim.tiled import translate_tiled
from sesim.train import TrainingError, resume, train
from sesim.translate import translate_tensor

from test_train import assert_identical_checkpoints


def _scene(h, w, seed):
    """A structured RGB test image: smooth gradients, a disc and stripes (uint8 H x W x 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 5 + rng.uniform(0, 6))], -1)
    cy, cx, r = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w, min(h, w) / 4
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    img[(yy.astype(int) // 6) % 2 == 0, : w // 4] *= 0.4
    return (img * 255).clip(0, 255).astype(np.uint8)


@pytest.fixture
def pair(tmp_path):
    a, b = tmp_path / "painting.png", tmp_path / "photo.png"
    Image.fromarray(_scene(56, 72, 0)).save(a)
    Image.fromarray(_scene(64, 48, 1)).save(b)
    return a, b


def _config(pair, runs, method="sesim"):
    cfg = TrainConfig()
    cfg.apply_preset("painting2photo" if method == "sesim" else "sincut")
    cfg.update("data", dict(dir_a=str(pair[0]), dir_b=str(pair[1]), size=16, load_size=None, workers=0))
    cfg.update("model", dict(ngf=4, ndf=4, n_blocks=2, n_downsampling=2))
    cfg.update("loss", dict(vgg_weights="random", layers=("relu2_1", "relu3_1"), num_queries=16, patch_size=4))
    cfg.update("run", dict(steps=4, batch_size=2, runs=str(runs), name="r", checkpoint_every=2, sample_every=2,
                           log_every=1))
    return cfg


# -- data ---------------------------------------------------------------------------------
@pytest.mark.parametrize("height,width", [(7, 300), (300, 7), (64, 64), (33, 97), (1, 1)])
def test_patch_boxes_never_leave_the_image(height, width):
    rng = random.Random(0)
    for _ in range(2000):
        size = rng.choice([1, 16, 64, 500])
        zoom = 10 ** rng.uniform(-3, 3)  # extreme zooms both ways
        box = sample_box(height, width, size, zoom, rng)
        assert box.side >= 1 and box.top >= 0 and box.left >= 0
        assert box.top + box.side <= height and box.left + box.side <= width


def test_dataset_patches_shapes_determinism_and_shared_zoom(pair):
    ds = SingleImagePairDataset(*pair, size=16, zoom_min=0.1, zoom_max=3.0, batch_size=4, seed=3)
    for pos in range(40):
        item = ds[pos]
        assert item["A"].shape == item["B"].shape == (3, 16, 16)
        assert item["A"].min() >= -1 and item["A"].max() <= 1
        assert 0.1 <= ds.zoom(pos, 0) <= 3.0
    assert torch.equal(ds[(5, 0)]["A"], SingleImagePairDataset(*pair, size=16, zoom_min=0.1, zoom_max=3.0,
                                                               batch_size=4, seed=3)[5]["A"])
    assert ds.zoom(4, 0) == ds.zoom(7, 0) != ds.zoom(8, 0)  # one zoom per minibatch
    boxes = {ds.patch(p, 0)[1] for p in range(40)}
    assert len(boxes) > 30  # positions differ


def test_folder_with_several_images_is_a_clear_error(pair, tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("x.png", "y.png"):
        Image.fromarray(_scene(32, 32, 2)).save(folder / name)
    cfg = _config(pair, tmp_path / "runs")
    cfg.data.dir_a = str(folder)
    with pytest.raises(TrainingError, match="exactly one image per domain.*holds 2 images"):
        train(cfg, progress=False)
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(_scene(32, 40, 3)).save(one / "only.png")
    cfg.data.dir_a = str(one)
    assert single_image_dataset(cfg).paths[0] == one / "only.png"  # a folder with exactly one image is fine
    cfg.data.dir_a = str(tmp_path / "missing.png")
    with pytest.raises(SingleImageError, match="does not exist"):
        single_image_dataset(cfg)


# -- networks -----------------------------------------------------------------------------
def test_modulated_conv_demodulation_normalises_each_output_kernel():
    torch.manual_seed(0)
    conv = ModulatedConv2d(16, 8, 3)
    with torch.no_grad():
        conv.style.uniform_(0.1, 5.0)
    w = conv.effective_weight()
    assert torch.allclose(w.pow(2).sum(dim=(1, 2, 3)), torch.ones(8), atol=1e-5)
    x = torch.randn(4, 16, 48, 48)
    y = conv(x)[..., 1:-1, 1:-1]  # away from the zero padding
    assert y.std(dim=(0, 2, 3)).sub(1).abs().max() < 0.1  # unit-variance in, unit-variance out
    raw = ModulatedConv2d(16, 8, 3, demodulate=False)
    with torch.no_grad():
        raw.style.fill_(3.0)
    assert raw.effective_weight().pow(2).sum(dim=(1, 2, 3)).mean() > 3  # modulation scales without demod


def test_generator_receptive_radius_bounds_the_true_receptive_field():
    torch.manual_seed(0)
    g = StyleGAN2Generator(3, 3, ngf=4, n_down=2, n_blocks=2).eval()
    x = torch.randn(1, 3, 96, 96, requires_grad=True)
    g(x)[0, :, 48, 48].sum().backward()
    ys, xs = torch.nonzero(x.grad[0].abs().sum(0) > 0, as_tuple=True)
    extent = max((ys - 48).abs().max().item(), (xs - 48).abs().max().item())
    assert 0 < extent <= g.receptive_radius


def _random_generator():
    torch.manual_seed(1)
    g = StyleGAN2Generator(3, 3, ngf=4, n_down=2, n_blocks=2).eval()
    with torch.no_grad():  # make biases/styles non-trivial so borders matter
        for name, p in g.named_parameters():
            if "style" in name or "bias" in name:
                p.normal_(0, 0.5)
    return g


@pytest.mark.parametrize("height,width,tile", [(150, 98, 96), (100, 212, 100)])
def test_tiled_inference_matches_whole_image_and_keeps_size(height, width, tile):
    g = _random_generator()
    x = torch.rand(1, 3, height, width) * 2 - 1
    whole = translate_tensor(g, x, stride=g.stride, tile=None)
    tiled = translate_tensor(g, x, stride=g.stride, tile=tile)
    assert tiled.shape == whole.shape == x.shape
    assert (tiled - whole).abs().max() < 1e-5
    # a margin smaller than the receptive radius is visibly wrong: the check above can fail
    padded = torch.nn.functional.pad(x, (0, (-width) % 4, 0, (-height) % 4), mode="reflect")
    bad = translate_tiled(g, padded, tile=tile, margin=2, overlap=8)[..., :height, :width]
    assert (bad - whole).abs().max() > 1e-3


def test_discriminator_and_r1_penalty():
    d = StyleGAN2Discriminator(3, size=16, ndf=4)
    assert d(torch.randn(5, 3, 16, 16)).shape == (5, 1)
    with pytest.raises(ValueError, match="expects 16 x 16"):
        d(torch.randn(1, 3, 32, 32))

    class Linear(torch.nn.Module):  # D(x) = <w, x>: grad = w, R1 = 0.5 |w|^2
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(1, 3, 4, 4))

        def forward(self, x):
            return (x * self.w).flatten(1).sum(1)

    lin = Linear()
    r1 = gradient_penalty(lin, torch.randn(6, 3, 4, 4), None, "r1")
    assert torch.allclose(r1, 0.5 * lin.w.pow(2).sum())
    r1.backward()
    assert torch.allclose(lin.w.grad, lin.w)  # the penalty trains D
    gp = gradient_penalty(lin, torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4), "wgangp")
    assert torch.allclose(gp, (lin.w.norm() - 1) ** 2)


# -- training, CLI, resume ----------------------------------------------------------------
def test_cli_train_translate_round_trip(pair, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["train", "--preset", "painting2photo", "--dir-a", str(pair[0]), "--dir-b", str(pair[1]),
                 "--size", "16", "--ngf", "4", "--ndf", "4", "--n-blocks", "2", "--n-downsampling", "1",
                 "--vgg-weights", "random", "--layers", "relu2_1,relu3_1", "--num-queries", "16",
                 "--patch-size", "4", "--load-size", "none", "--steps", "2", "--batch-size", "2", "--workers", "0",
                 "--runs", str(runs), "--name", "cli", "--no-progress"])
    assert code == 0
    run = runs / "cli"
    logs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert logs[-1]["step"] == 2 and "D_gp" in logs[-1] and "G_identity" not in logs[-1]
    assert all(np.isfinite(v) for v in logs[-1].values())
    outs = {}
    for tile in ("none", "48"):
        out = tmp_path / f"out_{tile}"
        assert main(["translate", "--run", str(run), "--input", str(pair[0]), "--output", str(out),
                     "--tile", tile, "--no-progress"]) == 0
        outs[tile] = np.asarray(Image.open(out / "painting.png")).astype(int)
    assert outs["none"].shape == (56, 72, 3)
    assert np.abs(outs["none"] - outs["48"]).max() <= 1  # uint8 rounding at most


@pytest.mark.parametrize("method,optimizers", [("sesim", ("G", "D")), ("cut", ("G", "D", "F"))])
def test_resume_is_exact(pair, tmp_path, method, optimizers):
    straight = train(_config(pair, tmp_path / "a", method), progress=False)
    interrupted = train(_config(pair, tmp_path / "b", method), progress=False, stop_at=2)
    assert load_state(interrupted / STATE_FILE)["step"] == 2
    resume(interrupted, progress=False)
    assert_identical_checkpoints(straight, interrupted, optimizers)
    logs = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    if method == "cut":  # SinCUT: PatchNCE + identity NCE + identity L1 + R1
        assert {"G_nce", "G_nce_idt", "G_identity", "D_gp"} <= set(logs[-1])


def test_single_image_mode_rejects_other_methods_and_sizes(pair, tmp_path):
    cfg = _config(pair, tmp_path / "runs")
    cfg.method = "cyclegan"
    with pytest.raises(ValueError, match="sesim or cut"):
        train(cfg, progress=False)
    cfg = _config(pair, tmp_path / "runs2")
    cfg.data.size = 24
    with pytest.raises(ValueError, match="power-of-two"):
        train(cfg, progress=False)
    cfg = _config(pair, tmp_path / "runs3")
    cfg.structure.structure = "patchnce"  # would otherwise silently fall back to FSeSim
    with pytest.raises(ValueError, match="--method cut"):
        train(cfg, progress=False)


# -- metrics ------------------------------------------------------------------------------
def test_sifid_and_self_similarity_distance_separate_style_from_structure():
    from skimage import data  # a real photo (bundled with scikit-image): natural structure and colours

    torch.manual_seed(0)
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((64, 64), Image.Resampling.BILINEAR))
    x = torch.from_numpy(photo.copy()).permute(2, 0, 1).float() / 127.5 - 1
    recoloured = torch.stack([x[2], x[0], x[1]]) * 0.8 + 0.1
    blocks = x.unfold(1, 16, 16).unfold(2, 16, 16).reshape(3, 16, 16, 16)[:, torch.randperm(16)]
    shuffled = blocks.reshape(3, 4, 4, 16, 16).permute(0, 1, 3, 2, 4).reshape(3, 64, 64)
    ext = random_feature_extractor(0, 32)
    loss = SpatialCorrelativeLoss(("relu2_1", "relu3_1"), weights=None, sampling="grid", num_queries=64,
                                  patch_size=8)
    assert sifid(x, x, ext) < 1e-6
    assert self_similarity_distance(x, x, loss) < 1e-6
    s_rec, s_shuf = sifid(x, recoloured, ext), sifid(x, shuffled, ext)
    d_rec, d_shuf = self_similarity_distance(x, recoloured, loss), self_similarity_distance(x, shuffled, loss)
    assert s_rec > 3 * s_shuf  # a recoloured copy changes style ...
    assert d_rec * 3 < d_shuf  # ... but keeps structure; a shuffled copy the reverse
    assert sifid(x, shuffled[None], lambda im: {"a": ext(im), "b": ext(im)[:, :8]}) >= 0  # dict: last entry
