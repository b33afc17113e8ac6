"""`sesim train --snapshot-every`: snapshot files, exact resume without rewriting them, view discovery."""

import os

import pytest
import torch
from safetensors.torch import load_file

from sesim.config import TrainConfig
from sesim.snapshots import (SNAPSHOT_DIR, SnapshotError, list_snapshots, select_snapshots, snapshot_file,
                             weights_step)


def _cfg(data, runs, name, *, steps=6, snapshot_every=2, checkpoint_every=3, method=None):
    cfg = TrainConfig()
    if method:
        cfg.apply_preset(method)
    cfg.update("data", dict(data=str(data), size=32, load_size=36, workers=0))
    cfg.update("model", dict(ngf=8, ndf=8, n_blocks=1))
    if not method:
        cfg.update("loss", dict(vgg_weights="random", num_queries=16, patch_size=4, pool_size=2))
    cfg.update("run", dict(steps=steps, batch_size=1, runs=str(runs), name=name, checkpoint_every=checkpoint_every,
                           sample_every=100, log_every=1, num_samples=1, snapshot_every=snapshot_every))
    return cfg


def _stamp(path):
    st = path.stat()
    return st.st_mtime_ns, st.st_ino, path.read_bytes()


def test_snapshots_are_written_and_a_resumed_run_keeps_them_unchanged(tiny_dataset, tmp_path, monkeypatch):
    from sesim.train import Trainer, resume, train

    straight = train(_cfg(tiny_dataset, tmp_path / "runs", "straight"), progress=False)
    snaps = list_snapshots(straight)
    assert [s.step for s in snaps] == [2, 4, 6] and not any(s.latest for s in snaps)
    assert sorted(p.name for p in (straight / SNAPSHOT_DIR).iterdir()) == [snapshot_file(s) for s in (2, 4, 6)]
    # the last snapshot is the run's final generator
    final = load_file(str(straight / "generator.safetensors"))
    last = load_file(str(snaps[-1].path))
    assert final.keys() == last.keys() and all(torch.equal(final[k], last[k]) for k in final)
    # weights only: much smaller than the resume state
    assert snaps[0].path.stat().st_size < (straight / "checkpoint.pt").stat().st_size / 2

    # a run killed at step 5 after its snapshot at 4 but before a checkpoint: the last checkpoint is step 3
    real_save = Trainer.save
    monkeypatch.setattr(Trainer, "save", lambda self: None if self.step == 5 else real_save(self))
    killed = train(_cfg(tiny_dataset, tmp_path / "runs", "killed"), progress=False, stop_at=5)
    monkeypatch.setattr(Trainer, "save", real_save)
    assert [s.step for s in list_snapshots(killed, include_latest=False)] == [2, 4]
    before = {s.step: _stamp(s.path) for s in list_snapshots(killed, include_latest=False)}
    resume(killed, progress=False)  # redoes steps 4..6 from the step-3 checkpoint
    after = list_snapshots(killed)
    assert [s.step for s in after] == [2, 4, 6]
    assert {s.step: _stamp(s.path) for s in after if s.step in before} == before  # not rewritten
    assert sorted(os.listdir(killed / SNAPSHOT_DIR)) == [snapshot_file(s) for s in (2, 4, 6)]  # no temp files
    # exact resume: every snapshot equals the uninterrupted run's
    for a, b in zip(list_snapshots(straight), after):
        wa, wb = load_file(str(a.path)), load_file(str(b.path))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), f"step {a.step} differs"


def test_two_sided_runs_keep_both_generators_and_view_finds_the_steps(tiny_dataset, tmp_path):
    from sesim.train import train
    from sesim.view.runs import discover_steps

    run = train(_cfg(tiny_dataset, tmp_path / "runs", "cyc", steps=2, snapshot_every=1, checkpoint_every=2,
                     method="cyclegan"), progress=False)
    names = sorted(p.name for p in (run / SNAPSHOT_DIR).iterdir())
    assert names == sorted(snapshot_file(s, d) for s in (1, 2) for d in ("AtoB", "BtoA"))
    assert weights_step(run / SNAPSHOT_DIR / snapshot_file(1, "BtoA")) is None  # not an AtoB file
    assert weights_step(run / SNAPSHOT_DIR / snapshot_file(1, "BtoA"), "BtoA") == 1
    assert [s.step for s in list_snapshots(run)] == [1, 2]
    steps = discover_steps(run)
    assert steps[1].weights == run / SNAPSHOT_DIR / snapshot_file(1)
    assert steps[2].weights == run / "generator.safetensors"  # the run's own file wins at its step


def test_runs_without_snapshots_have_their_latest_generator_and_selection_errors_name_the_steps(tiny_dataset,
                                                                                                 tmp_path):
    from sesim.train import train

    run = train(_cfg(tiny_dataset, tmp_path / "runs", "plain", steps=2, snapshot_every=0, checkpoint_every=2),
                progress=False)
    assert not (run / SNAPSHOT_DIR).exists()
    snaps = list_snapshots(run)
    assert [(s.step, s.latest) for s in snaps] == [(2, True)]
    assert select_snapshots(snaps, "last") == snaps == select_snapshots(snaps, "all")
    with pytest.raises(SnapshotError, match="no snapshot at step.*3.*this run has 2"):
        select_snapshots(snaps, "2,3")
    with pytest.raises(SnapshotError, match="give all, last or comma-separated steps"):
        select_snapshots(snaps, "best")
    with pytest.raises(SnapshotError, match="no generator weights"):
        select_snapshots([], "all")
