"""bench/quality.py --snapshot-every: each run's best and last snapshot with the task's own scorers."""

import json

import pytest

from test_quality_bench import quality  # noqa: F401  (the fixture: bench/quality.py loaded as a module)


def test_tiny_benchmark_reports_best_and_last_per_run(quality, tmp_path):
    import skimage  # noqa: F401  (a test dependency: fail loudly if missing)
    result = quality.run_benchmark(out=tmp_path / "work", tasks=["photos", "scenes"], methods=["gan-only"], seeds=[0],
                                   steps=3, size=32, n_train=6, n_test=6, feature_steps=3, jobs=1, threads=1,
                                   isolate=False, snapshot_every=2, log=lambda m: None)
    for row in (r for r in result["rows"] if r["seed"] is not None):
        snaps = row["snapshots"]
        assert snaps["steps"] == [2, 3] and snaps["selected_on"] == "val" and not snaps["optimistic"]
        last = snaps["history"][-1]
        assert last["step"] == 3 and set(last) == {"step", "test", "val"}
        # the last snapshot is the final generator: its test scores are the row's
        for key in ("fd", "kid_x100", *(k for k, _, _ in result["tasks"][row["task"]]["structure_columns"])):
            assert last["test"][key] == pytest.approx(row[key], rel=1e-9, abs=1e-12)
            sel = snaps["selection"][key]
            assert sel["last"] == {"step": 3, "value": last["test"][key]}
            picked = [h["val"][key] for h in snaps["history"]]
            best = max(picked) if sel["higher_is_better"] else min(picked)
            assert sel["best"]["selection_value"] == best and sel["best"]["selected_on"] == "val"
        assert snaps["selection"]["target_ssim" if row["task"] == "photos" else "mean_iou"]["higher_is_better"]
        assert not snaps["selection"]["fd"]["higher_is_better"]
    history = tmp_path / "work" / "photos" / "snapshots" / "photos-gan-only-s0-3" / "history.json"
    cached = json.loads(history.read_text())
    assert len(cached) == 2  # step:sha256 -> scores; a rerun rescores nothing
    paths = quality.write_outputs(result, tmp_path / "results", "quality-test")
    md = paths["md"].read_text()
    assert md.count("Best and last snapshot (2 snapshots per run, every 2 steps; best picked per metric on the "
                    "validation split, reported on the test split") == 2
    assert "| method | L1 to target ↓ last / best | SSIM to target ↑ last / best | FD ↓ last / best |" in md
    assert json.loads(paths["json"].read_text())["rows"][-1]["snapshots"]["steps"] == [2, 3]
