"""Run-folder files: nothing unsafe is loaded, a damaged file is one clear line naming it and what
to do, the previous checkpoint survives a damaged latest one, stale temp files go, modes agree."""

import os
import pickle
import stat

import numpy as np
import pytest
import torch

from sesim.checkpoint import (
    GENERATOR_FILE, PREVIOUS_STATE_FILE, STATE_FILE, RunFileError, load_generator_weights, load_state, read_state,
    remove_stale_temp_files, restore_rng, save_state,
)
from sesim.cli import main
from sesim.safeload import load_plain
from sesim.train import resume, train
from test_train import assert_identical_checkpoints, tiny_config


class _RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("sesim "), err
    return line


@pytest.fixture
def finished_run(tiny_dataset, tmp_path):
    """A 4-step run with checkpoints at steps 2 and 4 (so checkpoint.prev.pt is step 2)."""
    return train(tiny_config(tiny_dataset, tmp_path / "runs"), progress=False)


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_a_checkpoint_that_would_run_code_is_refused(finished_run, tmp_path, capsys, how):
    marker = tmp_path / "pwned"
    path = finished_run / STATE_FILE
    evil = {"step": 4, "payload": _RunsCode(marker)}
    if how == "torch.save":
        torch.save(evil, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(evil, fh)
    with pytest.raises(RunFileError, match="refusing to load .*could run code") as info:
        load_state(path)
    assert info.value.unsafe and "previous" not in str(info.value)  # never offered as "damaged, use the previous"
    assert main(["train", "--resume", str(finished_run), "--no-progress"]) == 1
    assert "refusing to load" in _error_line(capsys)
    assert not marker.exists()  # the payload never ran


@pytest.mark.parametrize("damage", ["truncated", "halved", "empty", "random"])
def test_a_damaged_checkpoint_names_the_previous_one_which_continues_exactly(
        tiny_dataset, tmp_path, capsys, damage):
    straight = train(tiny_config(tiny_dataset, tmp_path / "a"), progress=False)
    run = train(tiny_config(tiny_dataset, tmp_path / "b"), progress=False)
    assert read_state(run / PREVIOUS_STATE_FILE)["step"] == 2 and read_state(run / STATE_FILE)["step"] == 4
    path = run / STATE_FILE
    data = path.read_bytes()
    damaged = {"truncated": data[:-1000], "halved": data[: len(data) // 2], "empty": b"",
               "random": np.random.default_rng(0).bytes(len(data))}[damage]
    path.write_bytes(damaged)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 1
    line = _error_line(capsys)
    assert f"{path} is damaged" in line and "(step 2) is intact" in line and "--from-previous" in line
    assert main(["train", "--resume", str(run), "--from-previous", "--no-progress"]) == 0
    assert (run / "checkpoint.damaged.pt").read_bytes() == damaged  # kept, not overwritten
    assert_identical_checkpoints(straight, run, ("G", "D"))  # steps 3 and 4 redone exactly


def test_a_damaged_checkpoint_without_a_previous_one_says_so(finished_run):
    (finished_run / PREVIOUS_STATE_FILE).unlink()
    (finished_run / STATE_FILE).write_bytes(b"\0" * 100)
    with pytest.raises(RunFileError, match="no intact previous checkpoint"):
        load_state(finished_run / STATE_FILE)


def test_a_truncated_generator_is_one_line_for_translate_and_resume_rewrites_it(finished_run, tmp_path, capsys):
    weights = finished_run / GENERATOR_FILE
    good = {k: v.clone() for k, v in load_generator_weights(weights).items()}  # not views of the file
    weights.write_bytes(weights.read_bytes()[:100])
    image = next((finished_run.parent.parent / "data" / "testA").iterdir())
    assert main(["translate", "--run", str(finished_run), "--input", str(image), "--output", str(tmp_path / "o"),
                 "--no-progress"]) == 1
    line = _error_line(capsys)
    assert f"{weights} is damaged" in line and "--resume" in line
    resume(finished_run, progress=False)  # already finished: only repairs the weights
    repaired = load_generator_weights(weights)
    assert all(torch.equal(good[k], repaired[k]) for k in good)


def test_a_broken_config_json_names_the_file(finished_run, tmp_path, capsys):
    config = finished_run / "config.json"
    config.write_text(config.read_text()[:-40])
    for argv in (["train", "--resume", str(finished_run)],
                 ["translate", "--run", str(finished_run), "--input", str(tmp_path), "--output", str(tmp_path / "o")]):
        assert main(argv) == 1
        line = _error_line(capsys)
        assert f"{config} is damaged: not valid JSON (line" in line


def test_checkpoints_of_older_versions_with_numpy_rng_states_still_load(tmp_path):
    state = {"step": 3, "rng": {"python": __import__("random").getstate(), "numpy": np.random.get_state(),
                                "torch": torch.get_rng_state()}}
    torch.save(state, tmp_path / STATE_FILE)  # the format before RNG states became tensors
    loaded = read_state(tmp_path / STATE_FILE)
    restore_rng(loaded["rng"])
    a = np.random.rand(3)
    np.random.set_state(state["rng"]["numpy"])
    assert np.array_equal(a, np.random.rand(3))


def test_new_checkpoints_are_plain_data(finished_run):
    """What sesim writes loads with torch.load(weights_only=True) and no extra allowed globals."""
    state = load_plain(finished_run / STATE_FILE)
    assert state["step"] == 4 and torch.is_tensor(state["rng"]["numpy"]["key"])


def test_save_state_keeps_the_previous_checkpoint_until_the_new_one_is_complete(tmp_path, monkeypatch):
    path = tmp_path / STATE_FILE
    save_state(path, {"step": 1})
    save_state(path, {"step": 2})
    assert read_state(path)["step"] == 2 and read_state(tmp_path / PREVIOUS_STATE_FILE)["step"] == 1

    def killed(*_a, **_k):
        raise KeyboardInterrupt  # as if the process died while writing

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        save_state(path, {"step": 3})
    assert read_state(path)["step"] == 2  # the latest complete checkpoint is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [PREVIOUS_STATE_FILE, STATE_FILE]


def test_stale_temp_files_are_removed_on_resume_and_resume_says_where_it_continues(finished_run, caplog):
    dead = finished_run / f".{STATE_FILE}.tmp-{2 ** 22 + 7}"  # no such process
    dead.write_bytes(b"x" * 1000)
    stale_weights = finished_run / f".{GENERATOR_FILE}.tmp-{2 ** 22 + 9}"
    stale_weights.write_bytes(b"x")
    alive = finished_run / f".notes.tmp-{os.getppid()}"  # a running process: left alone
    alive.write_bytes(b"x")
    caplog.set_level("INFO", logger="sesim")
    resume(finished_run, steps=5, progress=False)
    assert not dead.exists() and not stale_weights.exists() and alive.exists()
    assert "resuming" in caplog.text and "from step 4 of 5" in caplog.text
    assert remove_stale_temp_files(finished_run) == []


def test_run_files_share_one_permission_mode(finished_run):
    modes = {p.relative_to(finished_run): stat.S_IMODE(p.stat().st_mode)
             for p in finished_run.rglob("*") if p.is_file()}
    assert len(set(modes.values())) == 1, modes
    assert GENERATOR_FILE in {str(p) for p in modes}
