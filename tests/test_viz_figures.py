"""``sesim viz heatmap`` / ``errormap``: the heat-map helpers, the figures, runs and CLI errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from sesim.cli import main
from sesim.config import TrainConfig
from sesim.data.demo_scenes import make_demo_dataset, random_layout, render_labels, render_photo
from sesim.losses.spatial import SpatialCorrelativeLoss
from sesim.nets.vgg import VGG16Features
from sesim.train import Trainer, train
from sesim.explain import load_run_method, parse_points
from sesim.viz.heatmap import feature_position, heatmap_figure, pair_maps


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """labels.png and photo.png of one 32 px layout, photo2.png of another."""
    root = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(3)
    first, other = random_layout(rng, 32), random_layout(rng, 32)
    Image.fromarray(render_labels(first)).save(root / "labels.png")
    Image.fromarray(render_photo(first, rng)).save(root / "photo.png")
    Image.fromarray(render_photo(other, rng)).save(root / "photo2.png")
    return root


@pytest.fixture(scope="module")
def lsesim_run(tmp_path_factory):
    """A 2-step LSeSim run with a random-init VGG16 on 32 px demo scenes."""
    root = tmp_path_factory.mktemp("run")
    make_demo_dataset(root / "data", size=32, n_train=4, n_test=2, seed=0)
    cfg = TrainConfig()
    cfg.update("data", dict(data=str(root / "data"), size=32, load_size=32, workers=0))
    cfg.update("model", dict(ngf=8, ndf=8, n_blocks=1))
    cfg.update("loss", dict(structure="lsesim", vgg_weights="random", feature_norm="centered_l2", num_queries=16,
                            patch_size=4, pool_size=0))
    cfg.update("run", dict(steps=2, batch_size=2, runs=str(root / "runs"), name="r", checkpoint_every=2,
                           sample_every=2, log_every=1, num_samples=1, seed=5))
    return train(cfg, progress=False)


def test_feature_position_maps_pixels_to_cells():
    assert feature_position((0, 0), (64, 64), (16, 16)) == (0, 0)
    assert feature_position((63, 10), (64, 64), (16, 16)) == (2, 15)  # (x, y) -> (row, col)
    assert feature_position((31, 47), (48, 64), (12, 16)) == (11, 7)
    with pytest.raises(ValueError, match="outside"):
        feature_position((64, 0), (64, 64), (16, 16))


def test_pair_maps_are_equal_for_equal_images_and_peak_at_the_query():
    torch.manual_seed(0)
    loss = SpatialCorrelativeLoss(("relu2_1",), extractor=VGG16Features(("relu2_1",), None), patch_size=5,
                                  norm="centered_l2")
    x = torch.rand(3, 16, 16) * 2 - 1
    hx, hy = pair_maps(loss, x, x.clone(), "relu2_1", (3, 4))
    assert hx.shape == (8, 8) and np.array_equal(np.isnan(hx), np.isnan(hy))
    assert np.isfinite(hx).sum() == 25 and np.allclose(hx, hy, equal_nan=True)
    assert np.nanargmax(hx) == 3 * 8 + 4 and np.nanmax(hx) == pytest.approx(1.0, abs=1e-5)  # cos(f_q, f_q) = 1
    fig = heatmap_figure(loss, x, -x, [(7, 9), (0, 0)], side=48, title="t")
    assert fig.size[0] == 6 + 4 * (48 + 6) and fig.size[1] > 2 * 48


def test_parse_points():
    assert parse_points("1,2; 30,31", 32, 32) == [(1, 2), (30, 31)]
    assert len(parse_points(None, 32, 32)) == 3
    for bad in ("1;2", "40,1", "a,b", ";"):
        with pytest.raises(ValueError):
            parse_points(bad, 32, 32)


def test_cli_heatmap_and_errormap_without_a_run(pair, tmp_path, capsys):
    out = tmp_path / "hm.png"
    args = ["viz", "heatmap", "--source", str(pair / "labels.png"), "--translation", str(pair / "photo.png"),
            "--points", "5,5;20,25", "--vgg-weights", "random", "--side", "64", "--output", str(out)]
    assert main(args) == 0 and Image.open(out).size[0] == 6 + 6 * (64 + 6)
    assert main(args) == 1 and "--overwrite" in capsys.readouterr().err  # never replaces a file unasked
    assert main(args + ["--overwrite", "--layers", "relu4_1"]) == 0 and Image.open(out).size[0] == 6 + 4 * 70
    assert main(args[:-2] + ["--points", "99,1", "--output", str(tmp_path / "x.png")]) == 1
    assert "outside" in capsys.readouterr().err
    assert main(["viz", "heatmap", "--source", str(pair / "labels.png"), "--output", str(tmp_path / "y.png")]) == 1
    assert "--translation" in capsys.readouterr().err

    em = tmp_path / "em.png"
    assert main(["viz", "errormap", "--a", str(pair / "labels.png"), "--b", str(pair / "photo.png"),
                 str(pair / "photo2.png"), "--vgg-weights", "random", "--side", "40", "--output", str(em)]) == 0
    printed = capsys.readouterr().out
    assert "photo.png: L1" in printed and "FSeSim" in printed and "LSeSim" not in printed  # skipped: no run
    assert Image.open(em).size[0] == 6 + 7 * (40 + 6)
    assert main(["viz", "errormap", "--a", str(pair / "labels.png"), "--b", str(tmp_path / "missing.png"),
                 "--output", str(tmp_path / "z.png")]) == 1


def test_run_rebuild_reproduces_the_random_vgg_it_was_trained_with(lsesim_run):
    method, cfg = load_run_method(lsesim_run)
    assert method.structure.learned and cfg.run.seed == 5
    trainer = Trainer(cfg, lsesim_run, resume=True, progress=False)  # what training/resume builds
    for (k, v), (k2, v2) in zip(method.structure.extractor.state_dict().items(),
                                trainer.method.structure.extractor.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    heads = {k: v for k, v in method.state_dict().items() if ".heads." in k}
    assert heads and all(torch.equal(v, trainer.method.state_dict()[k]) for k, v in heads.items())


def test_cli_with_an_lsesim_run(lsesim_run, pair, tmp_path, capsys):
    out = tmp_path / "hm.png"
    assert main(["viz", "heatmap", "--source", str(pair / "labels.png"), "--run", str(lsesim_run),
                 "--points", "8,8", "--side", "48", "--output", str(out)]) == 0  # translated by the run
    assert Image.open(out).size[0] == 6 + 6 * (48 + 6)
    em = tmp_path / "em.png"
    assert main(["viz", "errormap", "--a", str(pair / "labels.png"), "--b", str(pair / "photo.png"),
                 "--run", str(lsesim_run), "--side", "40", "--output", str(em)]) == 0
    assert "LSeSim" in capsys.readouterr().out
    assert main(["viz", "heatmap", "--source", str(pair / "labels.png"), "--run", str(lsesim_run.parent),
                 "--output", str(tmp_path / "no.png")]) == 1
    assert "not a sesim run folder" in capsys.readouterr().err
