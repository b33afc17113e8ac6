"""Scoring a run over its history (`sesim evaluate --run RUN --snapshots ...`): selection, resume, protocols."""

import json

import numpy as np
import pytest
from PIL import Image

from sesim.evaluate import EvaluateError, evaluate_folders
from sesim.metrics.features import Extractor
from sesim.sweep import OPTIMISM_NOTE, select_best_last, sweep_run
from test_evaluate import TinyRandomFeatures


def _extractor(**kw):
    return Extractor(kw.pop("tag", "random"), "test-only random conv features", TinyRandomFeatures(), **kw)


def _images(folder, n, seed, size=32):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = np.clip(rng.integers(0, 200, 3) + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")
    return folder


def test_best_and_last_on_a_fabricated_score_sequence():
    history = [
        {"step": 300, "test": {"kid": 2.0, "seg_mean_iou": 0.30}, "val": {"kid": 2.6, "seg_mean_iou": 0.31}},
        {"step": 100, "test": {"kid": 5.0, "seg_mean_iou": 0.20}, "val": {"kid": 4.0, "seg_mean_iou": 0.25}},
        {"step": 200, "test": {"kid": 3.0, "seg_mean_iou": 0.40}, "val": {"kid": 2.5, "seg_mean_iou": 0.38}},
        {"step": 400, "test": {"kid": 2.0, "seg_mean_iou": 0.35}, "val": {"kid": 3.0}},
        {"step": 500, "test": {"kid": 4.0, "seg_mean_iou": 0.33}, "val": {"kid": 3.5, "seg_mean_iou": 0.30}},
    ]
    on_test = select_best_last(history, ["kid", "seg_mean_iou"])
    kid = on_test["kid"]
    assert kid["last"] == {"step": 500, "value": 4.0}
    assert kid["best"]["step"] == 300 and kid["best"]["value"] == 2.0  # tie with step 400: the earlier step
    assert kid["gap"] == pytest.approx(-2.0) and kid["optimistic"] and not kid["higher_is_better"]
    iou = on_test["seg_mean_iou"]
    assert iou["higher_is_better"] and iou["best"]["step"] == 200 and iou["gap"] == pytest.approx(0.40 - 0.33)

    on_val = select_best_last(history, ["kid", "seg_mean_iou"], select_on="val")
    assert on_val["kid"]["best"] == {"step": 200, "value": 3.0, "selection_value": 2.5, "selected_on": "val"}
    assert not on_val["kid"]["optimistic"]
    assert on_val["kid"]["gap"] == pytest.approx(3.0 - 4.0)
    # step 400 has no validation IoU: it cannot be picked; the best validation IoU is step 200's
    assert on_val["seg_mean_iou"]["best"]["step"] == 200
    assert select_best_last([{"step": 1, "test": {}}], ["kid"])["kid"] == {
        "higher_is_better": False, "optimistic": True, "last": None, "best": None, "gap": None}


@pytest.fixture
def snap_run(tiny_dataset, tmp_path):
    """A 3-step run with a snapshot at every step; testA has 3 images, testB 4."""
    from sesim.config import TrainConfig
    from sesim.train import train

    _images(tiny_dataset / "testB", 4, seed=7)
    cfg = TrainConfig()
    cfg.update("data", dict(data=str(tiny_dataset), size=32, load_size=36, workers=0))
    cfg.update("model", dict(ngf=8, ndf=8, n_blocks=1))
    cfg.update("loss", dict(vgg_weights="random", num_queries=16, patch_size=4, pool_size=2))
    cfg.update("run", dict(steps=3, runs=str(tmp_path / "runs"), name="r", num_samples=1, checkpoint_every=3,
                           sample_every=100, snapshot_every=1))
    return train(cfg, progress=False)


def _spy(calls):
    def evaluate(*args, **kwargs):
        calls.append(args[1])
        return evaluate_folders(*args, **kwargs)
    return evaluate


def test_sweep_scores_every_snapshot_writes_table_plot_json_and_resuming_does_not_rescore(snap_run, tmp_path):
    from sesim.train import resume

    calls = []
    out = tmp_path / "sweep"
    data = sweep_run(snap_run, out, metrics="fid,kid", extractor=_extractor(), evaluate=_spy(calls), progress=False,
                     kid_subsets=5)
    assert len(calls) == 3 and data["steps"] == [1, 2, 3]
    assert data["metric_order"] == ["kd_random", "fd_random"]  # 3 / 4 images < 2048: KID first
    assert data["last_step"] == 3 and data["selected_on"] == "test" and data["optimistic"]
    kd = [data["snapshots"][str(s)]["test"]["kd_random"] for s in (1, 2, 3)]
    assert data["best_step"] == [1, 2, 3][int(np.argmin(kd))]
    assert data["selection"]["kd_random"]["best"]["value"] == min(kd)
    assert data["selection"]["kd_random"]["last"]["value"] == kd[-1]
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["best_step"] == data["best_step"] and saved["settings"]["metrics"] == ["fid", "kid"]
    md = (out / "sweep.md").read_text()
    assert OPTIMISM_NOTE in md and "KID scale: x100" in md and "- samples: 3 translations, 4 real images" in md
    assert "| step | kd_random ×100 ↓ | fd_random ↓ | |" in md and "Best vs last" in md
    assert any(line.startswith("| 3 |") and line.endswith("last |") or line.endswith("best + last |")
               for line in md.splitlines())
    assert (out / "sweep.png").stat().st_size > 1000
    assert not (out / "translations").exists()  # translations are removed once scored

    calls.clear()
    again = sweep_run(snap_run, out, metrics="fid,kid", extractor=_extractor(), evaluate=_spy(calls), progress=False,
                      kid_subsets=5)
    assert calls == [] and again["snapshots"] == data["snapshots"]

    resume(snap_run, steps=5, progress=False)  # two more snapshots
    more = sweep_run(snap_run, out, metrics="fid,kid", extractor=_extractor(), evaluate=_spy(calls), progress=False,
                     kid_subsets=5)
    assert [c.parent.name for c in calls] == ["step_0000004", "step_0000005"]
    assert more["steps"] == [1, 2, 3, 4, 5] and more["last_step"] == 5
    assert {str(s): more["snapshots"][str(s)] for s in (1, 2, 3)} == data["snapshots"]

    with pytest.raises(EvaluateError, match="other settings .*metrics.*--overwrite"):
        sweep_run(snap_run, out, metrics="fid", extractor=_extractor(), progress=False)
    calls.clear()
    sweep_run(snap_run, out, snapshots="2,4", metrics="fid", extractor=_extractor(), evaluate=_spy(calls),
              progress=False, overwrite=True)
    assert len(calls) == 2


def test_select_on_a_validation_folder_picks_there_and_reports_the_test_scores(snap_run, tmp_path):
    val = tmp_path / "val"
    _images(val / "valA", 3, seed=11)
    _images(val / "valB", 3, seed=12)
    calls = []
    data = sweep_run(snap_run, tmp_path / "sw", metrics="kid,fid", extractor=_extractor(), select_on=val,
                     evaluate=_spy(calls), progress=False, kid_subsets=5, select_by="fd_random")
    assert sorted(c.name for c in calls) == ["test", "test", "test", "val", "val", "val"]
    assert data["selected_on"] == "val" and not data["optimistic"] and "validation images" in data["note"]
    val_fd = [data["snapshots"][str(s)]["val"]["fd_random"] for s in (1, 2, 3)]
    pick = [1, 2, 3][int(np.argmin(val_fd))]
    assert data["best_step"] == pick
    assert data["selection"]["fd_random"]["best"]["value"] == data["snapshots"][str(pick)]["test"]["fd_random"]
    md = (tmp_path / "sw" / "sweep.md").read_text()
    assert "Validation scores (used to pick the best step)" in md and OPTIMISM_NOTE not in md
    with pytest.raises(EvaluateError, match="--select-on .*valA/ and valB/"):
        sweep_run(snap_run, tmp_path / "sw2", metrics="kid", extractor=_extractor(), select_on=tmp_path / "nothing",
                  progress=False)


def test_protocol_resizes_states_its_deviations_and_scores_segmentation_with_the_upper_bound(snap_run, tmp_path,
                                                                                           tiny_dataset):
    from sesim.nets.drn import DRNSegmenter

    labels = tmp_path / "labels"
    labels.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):  # testA img0..2 (translated) and testB img0..3 (the real photos of the upper bound)
        lab = rng.integers(0, 19, (40, 40)).astype(np.uint8)
        lab[:4] = 255
        Image.fromarray(lab).save(labels / f"img{i}.png")
    ext = _extractor(tag="inception", implementation="legacy")
    data = sweep_run(snap_run, tmp_path / "cs", snapshots="last", protocol="cityscapes", extractor=ext, labels=labels,
                     segmenter=DRNSegmenter(None), progress=False, kid_subsets=5, keep_translations=True)
    header = data["header"]
    assert header["protocol"] == "cityscapes" and header["kid_scale"] == 100
    assert header["fid_implementation"].startswith("legacy (pytorch-fid-compatible)")
    assert any("translates 500 images; this evaluation has 3" in w for w in header["warnings"])
    assert any("FID from 4 real / 3 fake images (< 2048)" in w for w in header["warnings"])
    assert data["metric_order"][:3] == ["kid", "fid", "seg_mean_iou"]
    prepared = tmp_path / "cs" / "data" / "test"
    assert {Image.open(p).size for p in (prepared / "source").glob("*.png")} == {(256, 256)}
    assert {Image.open(p).size for p in (prepared / "labels").glob("*.png")} == {(256, 128)}
    translations = list((tmp_path / "cs" / "translations" / "step_0000003" / "test").glob("*.png"))
    assert len(translations) == 3 and Image.open(translations[0]).size == (256, 256)
    assert set(data["reference"]["real photos"]) == {"seg_pixel_accuracy", "seg_mean_class_accuracy", "seg_mean_iou"}
    md = (tmp_path / "cs" / "sweep.md").read_text()
    assert "| real photos (upper bound) |" in md and "protocol: **cityscapes**" in md
    assert "seg_mean_iou ↑" in md


def test_cli_sweep_prints_the_header_and_best_and_last(snap_run, tmp_path, monkeypatch, capsys):
    from sesim import sweep
    from sesim.cli import main

    monkeypatch.setattr(sweep, "build_feature_extractor", lambda *a, **k: _extractor())
    out = tmp_path / "cli"
    assert main(["evaluate", "--run", str(snap_run), "--snapshots", "all", "--metrics", "kid", "--out", str(out),
                 "--no-progress", "--kid-subsets", "5"]) == 0
    text = capsys.readouterr().out
    assert "KID scale: x100" in text and "FID implementation" in text and "feature extractor:" in text
    assert "last: step 3" in text and "best: step" in text and "optimistic" in text
    assert (out / "sweep.json").is_file() and (out / "sweep.png").is_file()
    assert main(["evaluate", "--run", str(snap_run), "--snapshots", "7", "--out", str(tmp_path / "x")]) == 1
    assert "no snapshot at step(s) [7]; this run has 1, 2, 3" in capsys.readouterr().err


def test_a_struct_sweep_selects_by_the_metric_output_name(snap_run, tmp_path):
    """``struct`` is reported as ``struct_<tag>`` (its network's name): a sweep of it alone picks by that name."""
    import torch.nn.functional as F

    from sesim.metrics.dino_struct import SelfSimilarityMSE

    metric = SelfSimilarityMSE("struct_tiny", "test-only pooled colours", lambda x: F.avg_pool2d(x, 28)[0].flatten(1).T)
    data = sweep_run(snap_run, tmp_path / "st", snapshots="last", metrics="struct", struct_metric=metric,
                     progress=False)
    assert data["metric_order"] == ["struct_tiny"] and data["settings"]["select_by"] == "struct_tiny"
    assert data["best_step"] == data["last_step"] == 3
