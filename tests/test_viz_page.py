"""The run's ``index.html``: loss and metric curves from ``log.jsonl`` and every sample grid."""

import json

import numpy as np

from PIL import Image

from sesim.viz.curves import read_log, series, split_keys
from sesim.viz.page import write_run_index


def _fake_run(run, with_eval=True):
    lines = [json.dumps({"step": s, "D": 1.0 / s, "G_gan": 0.5, "G_structure": 0.1 * s, "lr": 2e-4,
                         "images_per_s": 3.0}) for s in range(10, 110, 10)]
    if with_eval:
        lines += [json.dumps({"step": 50, "eval/fid": 120.0, "eval/pixel_accuracy": 0.4}),
                  json.dumps({"step": 100, "eval/fid": 80.0, "eval/pixel_accuracy": 0.7})]
    lines += ["not json", '{"no_step": 1}', '{"step": 110, "D": 0.']  # junk and a torn last line
    run.mkdir()
    (run / "log.jsonl").write_text("\n".join(lines))
    (run / "samples").mkdir()
    for step in (50, 100, 7):
        Image.new("RGB", (8, 8)).save(run / "samples" / f"step_{step:07d}.png")


def test_log_parsing_and_key_groups(tmp_path):
    _fake_run(tmp_path / "run")
    records = read_log(tmp_path / "run" / "log.jsonl")
    assert len(records) == 12 and all("step" in r for r in records)
    data = series(records)
    assert data["eval/fid"] == ([50.0, 100.0], [120.0, 80.0]) and len(data["D"][0]) == 10
    losses, schedule, metrics = split_keys(list(data))
    assert losses == ["D", "G_gan", "G_structure"] and schedule == ["lr", "images_per_s"]
    assert metrics == ["eval/fid", "eval/pixel_accuracy"]
    assert read_log(tmp_path / "missing.jsonl") == []


def test_index_shows_curves_metrics_and_all_samples_newest_first(tmp_path):
    run = tmp_path / "run"
    _fake_run(run)
    write_run_index(run, {"method": "sesim"}, {"step": 100, "D": 0.01})
    page = (run / "index.html").read_text()
    assert "plots/losses.png" in page and "plots/metrics.png" in page
    for name in ("losses", "metrics"):
        img = Image.open(run / "plots" / f"{name}.png")
        assert img.size[0] > 300 and img.size[1] > 150
        assert len(np.unique(np.asarray(img.convert("L")))) > 10  # something was drawn
    positions = [page.index(f"samples/step_{s:07d}.png") for s in (100, 50, 7)]
    assert positions == sorted(positions)
    assert "step 100" in page and "step 7<" in page and "&quot;method&quot;: &quot;sesim&quot;" in page


def test_index_without_metrics_or_log(tmp_path):
    run = tmp_path / "run"
    _fake_run(run, with_eval=False)
    write_run_index(run, {}, None)
    page = (run / "index.html").read_text()
    assert "plots/losses.png" in page and "metrics.png" not in page
    assert not (run / "plots" / "metrics.png").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    write_run_index(empty, {}, None)
    assert "No logged steps yet" in (empty / "index.html").read_text()


def test_curves_are_redrawn_only_when_the_log_changed(tmp_path):
    from sesim.viz.curves import write_run_curves

    run = tmp_path / "run"
    _fake_run(run, with_eval=False)
    first = write_run_curves(run)["losses"].stat().st_mtime_ns
    assert write_run_curves(run, budget=None)["losses"].stat().st_mtime_ns == first
    with open(run / "log.jsonl", "a") as fh:
        fh.write('\n{"step": 200, "D": 0.1, "eval/fid": 50.0}\n')
    # drawn a moment ago: redrawing now would cost more than 5 % of the time since, so it waits
    assert write_run_curves(run, budget=0.05)["losses"].stat().st_mtime_ns == first
    written = write_run_curves(run, budget=None)
    assert written["losses"].stat().st_mtime_ns > first and "metrics" in written
