"""Run-folder files (sesim/checkpoint.py, sesim/safeload.py): nothing unsafe is loaded, a damaged
file raises one clear message naming it and what to do, the previous checkpoint survives a damaged
latest one and continues exactly, stale temp files go, file modes agree. The same inputs through
the command line are cases of the reliability suite (bench/reliability.py)."""

import os
import pickle
import stat

import numpy as np
import pytest
import torch

from sesim.checkpoint import (
    GENERATOR_FILE, PREVIOUS_STATE_FILE, STATE_FILE, RunFileError, default_file_mode, load_generator_weights,
    load_state, read_state, remove_stale_temp_files, restore_rng, save_generator, save_state, use_previous_state,
)
from sesim.config import TrainConfig
from sesim.safeload import load_plain
from sesim.train import resume, train
from test_train import assert_identical_checkpoints, tiny_config


class _RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("how", ["torch.save", "torch.save legacy format", "pickle.dump"])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, how):
    marker, path = tmp_path / "pwned", tmp_path / STATE_FILE
    evil = {"step": 4, "t": torch.ones(2), "payload": _RunsCode(marker)}
    if how == "pickle.dump":
        with open(path, "wb") as fh:
            pickle.dump(evil, fh)
    else:
        torch.save(evil, path, _use_new_zipfile_serialization=how == "torch.save")
    save_state(tmp_path / "other.pt", {"step": 3})
    os.replace(tmp_path / "other.pt", tmp_path / PREVIOUS_STATE_FILE)  # an intact previous one exists
    with pytest.raises(RunFileError, match="refusing to load .*reference to posix.system.*could run code") as info:
        load_state(path)
    assert info.value.unsafe and "previous" not in str(info.value)  # never offered as "damaged, use the previous"
    assert not marker.exists()  # the payload never ran


@pytest.mark.parametrize("damage", ["truncated", "halved", "empty", "random"])
def test_a_damaged_checkpoint_points_at_the_previous_one(tmp_path, damage):
    path = tmp_path / STATE_FILE
    for step in (1, 2):
        save_state(path, {"step": step, "weights": torch.randn(1000)})
    data = path.read_bytes()
    damaged = {"truncated": data[:-100], "halved": data[: len(data) // 2], "empty": b"",
               "random": np.random.default_rng(0).bytes(len(data))}[damage]
    path.write_bytes(damaged)
    with pytest.raises(RunFileError) as info:
        load_state(path)
    message = str(info.value)
    assert f"{path} is damaged" in message and "(step 1) is intact" in message and "--from-previous" in message
    assert "\n" not in message
    assert use_previous_state(tmp_path) == 1 and load_state(path)["step"] == 1
    assert (tmp_path / "checkpoint.damaged.pt").read_bytes() == damaged  # kept, not overwritten


def test_a_damaged_checkpoint_without_a_previous_one_says_so(tmp_path):
    (tmp_path / STATE_FILE).write_bytes(b"\0" * 100)
    with pytest.raises(RunFileError, match="no intact previous checkpoint"):
        load_state(tmp_path / STATE_FILE)


def test_the_previous_checkpoint_continues_the_run_exactly(tiny_dataset, tmp_path):
    straight = train(tiny_config(tiny_dataset, tmp_path / "a"), progress=False)
    run = train(tiny_config(tiny_dataset, tmp_path / "b"), progress=False)
    assert read_state(run / PREVIOUS_STATE_FILE)["step"] == 2 and read_state(run / STATE_FILE)["step"] == 4
    state = run / STATE_FILE
    state.write_bytes(state.read_bytes()[:5000])
    resume(run, progress=False, from_previous=True)  # redoes steps 3 and 4
    assert_identical_checkpoints(straight, run, ("G", "D"))
    plain = load_plain(run / STATE_FILE)  # sesim writes plain data: no extra globals needed
    assert plain["step"] == 4 and torch.is_tensor(plain["rng"]["numpy"]["key"])


def test_resume_rewrites_damaged_generator_weights_from_the_checkpoint(tiny_dataset, tmp_path):
    run = train(tiny_config(tiny_dataset, tmp_path / "runs"), progress=False)
    weights = run / GENERATOR_FILE
    good = {k: v.clone() for k, v in load_generator_weights(weights).items()}  # not views of the file
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(RunFileError, match=f"{weights} is damaged .*--resume"):
        load_generator_weights(weights)
    resume(run, progress=False)  # the run is finished: this only repairs the weights
    repaired = load_generator_weights(weights)
    assert all(torch.equal(good[k], repaired[k]) for k in good)


def test_a_broken_config_json_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    TrainConfig().save(path)
    path.write_text(path.read_text()[:-40])
    with pytest.raises(ValueError, match=f"{path} is damaged: not valid JSON \\(line"):
        TrainConfig.load(path)
    path.write_text('{"run": {"log_every": 0}}')
    with pytest.raises(ValueError, match=f"{path}: option log_every must be an integer >= 1"):
        TrainConfig.load(path)


def test_checkpoints_of_older_versions_with_numpy_rng_states_still_load(tmp_path):
    state = {"step": 3, "rng": {"python": __import__("random").getstate(), "numpy": np.random.get_state(),
                                "torch": torch.get_rng_state()}}
    torch.save(state, tmp_path / STATE_FILE)  # the format before RNG states became tensors
    loaded = read_state(tmp_path / STATE_FILE)
    restore_rng(loaded["rng"])
    a = np.random.rand(3)
    np.random.set_state(state["rng"]["numpy"])
    assert np.array_equal(a, np.random.rand(3))


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


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    (tmp_path / "snapshots").mkdir()
    dead = [tmp_path / f".{STATE_FILE}.tmp-{2 ** 22 + 7}", tmp_path / f".{GENERATOR_FILE}.tmp-{2 ** 22 + 9}",
            tmp_path / "snapshots" / f".generator_step0000010.safetensors.tmp-{2 ** 22 + 11}"]
    alive = tmp_path / f".notes.tmp-{os.getppid()}"  # a running process: left alone
    for p in (*dead, alive, tmp_path / "keep.tmp-1"):  # not hidden: not ours
        p.write_bytes(b"x")
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted(dead)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, "keep.tmp-1", "snapshots"])
    assert not list((tmp_path / "snapshots").iterdir())


def test_weights_files_get_the_usual_file_mode(tmp_path):
    save_generator(tmp_path / GENERATOR_FILE, torch.nn.Linear(2, 2), {"step": 0})  # safetensors writes 0600
    (tmp_path / "log.jsonl").write_text("{}\n")
    modes = {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {default_file_mode()}


@pytest.mark.parametrize("backbone", ["vgg16", "efficientnet-lite0"])
def test_damaged_pretrained_weights_give_one_line_naming_the_file(tmp_path, backbone):
    from sesim.nets.efficientnet import EfficientNetLite0Trunk
    from sesim.nets.vgg import VGG16Features
    from sesim.safeload import UnreadableFileError

    path = tmp_path / "weights.pth"
    torch.save({"w": torch.ones(64)}, path)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    build = VGG16Features if backbone == "vgg16" else EfficientNetLite0Trunk
    with pytest.raises(UnreadableFileError) as info:
        build(weights=str(path))
    message = str(info.value)
    assert str(path) in message and "damaged" in message and "fresh copy" in message and "\n" not in message


@pytest.mark.parametrize("how", ["truncated", "not torchscript"])
def test_a_damaged_segmenter_file_is_one_line_naming_it(tmp_path, how):
    from sesim.metrics.segmentation import load_segmenter

    path = tmp_path / "seg.pt"
    if how == "truncated":
        torch.jit.save(torch.jit.script(torch.nn.Conv2d(3, 2, 1)), str(path))
        path.write_bytes(path.read_bytes()[:200])
    else:
        torch.save({"w": torch.ones(2)}, path)  # a state dict, not a program
    with pytest.raises(ValueError) as info:
        load_segmenter(str(path))
    message = str(info.value)
    assert message.startswith(f"--segmenter {path}: cannot load it") and "TorchScript" in message
    assert "\n" not in message


def test_no_torch_load_in_the_package_without_weights_only():
    """Every ``torch.load`` call in sesim/ passes ``weights_only=True`` (a pickle that runs code is refused)."""
    import ast
    from pathlib import Path

    import sesim

    unsafe = []
    for path in Path(sesim.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                kw = {k.arg: k.value for k in node.keywords}
                if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                    unsafe.append(f"{path.name}:{node.lineno}")
    assert not unsafe, unsafe
