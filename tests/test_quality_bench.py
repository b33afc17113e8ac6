"""Smoke test of bench/quality.py's core: a tiny run (2 methods, 3 steps, 32 px) and its tables; the runner's
subprocess (lab.runner)."""

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("bench_quality", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_tiny_benchmark_table(quality, tmp_path):
    import skimage  # noqa: F401  (a test dependency: fail loudly if missing)
    result = quality.run_benchmark(out=tmp_path / "work", tasks=["photos", "scenes"], methods=["gan-only", "fsesim"],
                                   seeds=[0], steps=3, size=32, n_train=6, n_test=6, feature_steps=3, jobs=1,
                                   threads=1, isolate=False, log=lambda m: None)
    rows = result["rows"]
    for task in ("photos", "scenes"):
        methods = [r["method"] for r in rows if r["task"] == task]
        assert methods == ["do-nothing", "oracle", "gan-only", "fsesim"]
    photos = {r["method"]: r for r in rows if r["task"] == "photos"}
    assert photos["oracle"]["target_l1"] == 0.0 and photos["oracle"]["target_ssim"] == pytest.approx(1.0)
    assert photos["do-nothing"]["target_l1"] > 40
    scenes = {r["method"]: r for r in rows if r["task"] == "scenes"}
    assert scenes["oracle"]["pixel_accuracy"] > 0.8 > scenes["do-nothing"]["pixel_accuracy"]
    for r in rows:
        assert {"fd", "kid_x100"} <= set(r)
        if r["seed"] is not None:
            assert r["steps"] == 3 and r["train_seconds"] > 0

    paths = quality.write_outputs(result, tmp_path / "results", "quality-test")
    md = paths["md"].read_text()
    assert "| method | L1 to target ↓ | SSIM to target ↑ | FD ↓ | KID×100 ↓ | steps | train s / run | s / step | peak RSS MB |" in md
    assert "| method | pixel acc. ↑ | mean IoU ↑ | FD ↓" in md
    for label in ("do-nothing (output = input)", "oracle (true target)", "GAN only", "FSeSim"):
        assert md.count(f"| {label} |") == 2
    assert "Structure backbone of FSeSim: EfficientNet-Lite0 (ImageNet), `efficientnet-lite0-57934424.pth`" in md
    assert "Structure backbone of GAN only" not in md  # no feature network to report
    with open(paths["csv"]) as fh:
        table = list(csv.DictReader(fh))
    assert {"task", "method", "seed", "pixel_accuracy", "target_l1", "fd", "kid_x100", "train_seconds",
            "peak_rss_mb"} <= set(table[0])
    means = [(r["task"], r["method"]) for r in table if r["kind"] == "mean over seeds"]
    assert sorted(means) == sorted((t, m) for t in ("photos", "scenes") for m in ("do-nothing", "oracle", "gan-only", "fsesim"))
    assert paths["png"].stat().st_size > 0


def test_cli_rejects_bad_arguments(quality):
    with pytest.raises(SystemExit):
        quality.main(["--methods", "nope"])
    with pytest.raises(SystemExit):
        quality.main(["--tasks", "horses"])


def test_training_subprocess_reports_time_and_peak_memory(quality, tmp_path):
    import skimage  # noqa: F401  (a test dependency: fail loudly if missing)
    from lab import runner
    from lab.photo_task import make_photo_dataset

    data = tmp_path / "data"
    make_photo_dataset(data, size=32, n_train=4, n_test=3, seed=0)
    cfg = quality.method_config(quality.METHODS["gan-only"], data=data, size=32, steps=2, seed=0, runs=tmp_path / "runs",
                                name="probe", device="cpu", small=True, custom=False)
    timing = runner.run_one(cfg, inputs=data / "testA", fake=tmp_path / "fake", log_path=tmp_path / "logs" / "probe.log",
                             threads=1)
    assert timing["steps"] == 2 and timing["train_seconds"] > 0
    assert 50 < timing["peak_rss_mb"] < 20000  # VmHWM of the subprocess, in MB
    assert len(list((tmp_path / "fake").glob("*.png"))) == 3
    again = runner.run_one(cfg, inputs=data / "testA", fake=tmp_path / "fake", log_path=tmp_path / "logs" / "probe.log",
                            threads=1)
    assert again["reused"] and again["train_seconds"] == timing["train_seconds"]
