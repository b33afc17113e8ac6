"""The demo end to end (a few steps), the augmentations and the pictures."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sesim.cli import main
from sesim.config import TrainConfig
from sesim.data.augment import blur_and_noise, color_jitter, structure_preserving_augment
from sesim.demo import _query_point, demo_config
from sesim.viz.grid import image_grid
from sesim.viz.heatmap import colorize, overlay, query_map
from sesim.losses.spatial import LayerMaps


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "3", "--device", "cpu", "--no-progress"]) == 0
    assert "results page" in capsys.readouterr().out
    page = (out / "index.html").read_text()
    assert "demo_results.png" in page and "do-nothing" in page
    scores = json.loads((out / "metrics.json").read_text())
    assert scores["steps"] == 3
    nothing = scores["do-nothing (output = input)"]
    oracle = scores["oracle (true photo of the input layout)"]
    assert nothing["pixel_accuracy"] < 0.2 < 0.9 < oracle["pixel_accuracy"]
    assert oracle["appearance_distance"] < nothing["appearance_distance"]
    assert Image.open(out / "demo_results.png").size[0] > 4 * 64
    assert len(list((out / "results" / "fake_B").glob("*.png"))) == len(list((out / "data" / "testA").glob("*.png")))
    # a second call continues the same run instead of refusing or starting over
    assert main(["demo", "--out", str(out), "--steps", "4", "--device", "cpu", "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4


def test_demo_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("user file")
    assert main(["demo", "--out", str(tmp_path), "--steps", "1", "--no-progress"]) == 1
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "user file" and len(list(tmp_path.iterdir())) == 1


def test_demo_config_uses_the_preset(tmp_path):
    cfg = demo_config(tmp_path, steps=None, structure="lsesim", device="cpu", seed=1)
    assert cfg.data.size == 64 and cfg.structure.structure == "lsesim" and cfg.run.seed == 1
    assert cfg.structure.backbone == "auto" and cfg.structure.backbone_weights == "auto" and cfg.presets == ["demo"]
    assert demo_config(tmp_path, steps=7, structure=None, device="cpu", seed=0).structure.structure == "fsesim"


def test_query_point_lies_in_a_building():
    layout = np.zeros((64, 64), np.uint8)
    layout[20:40, 30:38] = 3  # building
    r, c = _query_point(layout, 4)
    assert layout[r * 4, c * 4] == 3 or layout[r * 4 + 2, c * 4 + 2] == 3


def test_augmentations_keep_geometry_and_range():
    torch.manual_seed(0)
    x = torch.full((2, 3, 16, 16), -0.5)
    x[:, :, 4:12, 4:12] = 0.5  # a square
    for aug in (color_jitter(x), structure_preserving_augment(x, "color")):
        assert aug.shape == x.shape and aug.min() >= -1 and aug.max() <= 1
        inside, outside = aug[:, :, 5:11, 5:11], aug[:, :, :3, :3]
        # flat regions stay flat and the square stays distinguishable from the background
        assert inside.std(dim=(2, 3)).max() < 1e-4 and outside.std(dim=(2, 3)).max() < 1e-4
        assert (inside.mean(dim=(2, 3)) - outside.mean(dim=(2, 3))).abs().sum(dim=1).min() > 0.01
    assert not torch.allclose(color_jitter(x)[0], color_jitter(x)[0])  # random per call
    blurred = blur_and_noise(x, max_sigma=1.5, max_noise=0.0)
    assert blurred.shape == x.shape
    grey = color_jitter(torch.rand(1, 1, 8, 8) * 2 - 1)
    assert grey.shape == (1, 1, 8, 8)
    with pytest.raises(ValueError):
        structure_preserving_augment(x, "rotate")


def test_colorize_and_overlay():
    ramp = colorize(np.linspace(0, 1, 9).reshape(3, 3))
    assert ramp.shape == (3, 3, 3) and ramp.dtype == np.uint8
    assert not np.array_equal(ramp[0, 0], ramp[2, 2])
    maps = torch.arange(16.0).view(1, 1, 16)
    layer = LayerMaps(maps=maps, queries=torch.tensor([5]), window=None, height=4, width=4)
    heat = query_map(layer, 0)
    assert heat.shape == (4, 4) and heat[3, 3] == 15
    windowed = LayerMaps(maps=torch.ones(1, 1, 4), queries=torch.tensor([0]), window=torch.tensor([[0, 1, 4, 5]]),
                         height=4, width=4)
    partial = query_map(windowed, 0)
    assert np.isfinite(partial).sum() == 4 and np.isnan(partial[3, 3])
    img = overlay(torch.zeros(3, 16, 16), heat, size=32, mark=(1, 1))
    assert img.size == (32, 32)
    assert np.asarray(img).std() > 0  # the heat map is visible


def test_image_grid_layout():
    a = torch.zeros(3, 8, 8)
    grid = image_grid([[a, a], [a, a]], pad=2, titles=["x", "y"], scale=2)
    assert grid.size == (2 * (16 + 2) + 2, 14 + 2 * (16 + 2) + 2)


def test_config_round_trip_and_validation(tmp_path):
    cfg = TrainConfig()
    cfg.set_flat("patch_size", "none")
    cfg.set_flat("layers", "relu2_1, relu3_1")
    cfg.set_flat("flip", "false")
    assert cfg.structure.patch_size is None and cfg.structure.layers == ("relu2_1", "relu3_1") and cfg.data.flip is False
    cfg.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == cfg
    with pytest.raises(ValueError, match="must be one of"):
        cfg.set_flat("gan_mode", "wasserstein")
    with pytest.raises(ValueError, match="unknown loss option"):
        cfg.update("loss", {"lamda": 1})
    with pytest.raises(ValueError, match="cannot be empty"):
        cfg.set_flat("steps", None)
    assert cfg.load_size == round(256 * 286 / 256)


def test_older_names_of_the_backbone_weights_keep_working(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no VGG16 file
    monkeypatch.delenv("SESIM_VGG16_WEIGHTS", raising=False)
    cfg = TrainConfig()
    cfg.set_flat("vgg_weights", "random")  # the flag --vgg-weights and presets' vgg_weights
    assert cfg.structure.backbone_weights == "random"
    # a config.json written before backbones had names: VGG16, and its "auto" meant random without the file
    old = cfg.to_dict()  # in the file layout of then: the structure options under "loss"
    old["loss"] = {k: v for k, v in old.pop("structure").items() if k not in ("backbone", "backbone_weights")}
    old["loss"]["vgg_weights"] = "auto"
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = TrainConfig.load(tmp_path / "old.json")
    assert (loaded.structure.backbone, loaded.structure.backbone_weights) == ("vgg16", "random")
