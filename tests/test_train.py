"""Training loop, run folders, resume and error paths, on 32 px images with tiny networks."""

import json
import subprocess
import sys
import time

import pytest
import torch

from sesim.checkpoint import GENERATOR_FILE, STATE_FILE, load_generator_weights, load_state
from sesim.cli import main
from sesim.config import TrainConfig, available_presets
from sesim.methods import build_method
from sesim.runtime import seed_everything
from sesim.train import Trainer, TrainingError, lr_factor, resume, train


def tiny_config(data, runs, **loss):
    cfg = TrainConfig()
    cfg.update("data", dict(data=str(data), size=32, load_size=36, workers=0))
    cfg.update("model", dict(ngf=8, ndf=8, n_blocks=1))
    cfg.update("loss", dict(vgg_weights="random", num_queries=16, patch_size=4, pool_size=2, **loss))
    cfg.update("run", dict(steps=4, batch_size=2, runs=str(runs), name="r", checkpoint_every=2, sample_every=2,
                           log_every=1, num_samples=2))
    return cfg


def assert_identical_checkpoints(run_a, run_b, optimizers, step=4):
    """Both runs' checkpoints are at ``step`` with bit-identical weights and Adam first moments."""
    a, b = load_state(run_a / STATE_FILE), load_state(run_b / STATE_FILE)
    assert a["step"] == b["step"] == step
    for key, value in a["method"].items():
        assert torch.equal(value, b["method"][key]), key
    for name in optimizers:
        sa, sb = a["optimizers"][name]["state"], b["optimizers"][name]["state"]
        assert sa and all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
    return a, b


@pytest.mark.parametrize("structure", ["fsesim", "lsesim"])
def test_few_steps_give_finite_losses_and_move_the_generator(tiny_dataset, tmp_path, structure):
    cfg = tiny_config(tiny_dataset, tmp_path / "runs", structure=structure)
    run = train(cfg, progress=False, stop_at=0)  # creates the folder and the untrained state
    trainer = Trainer(cfg, run, progress=False)
    before = {k: v.clone() for k, v in trainer.method.G.state_dict().items()}
    trainer.run()
    logs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logs] == [1, 2, 3, 4]
    for entry in logs:
        assert all(torch.isfinite(torch.tensor(v)) for k, v in entry.items() if isinstance(v, float))
        assert entry["G_structure"] > 0
        assert ("head_nce" in entry) == (structure == "lsesim")
    moved = sum((trainer.method.G.state_dict()[k] - v).abs().sum().item() for k, v in before.items())
    assert moved > 0
    # run folder contents
    for name in ("config.json", GENERATOR_FILE, STATE_FILE, "index.html", "samples/step_0000004.png"):
        assert (run / name).exists(), name
    assert list((run / "tb").iterdir())
    assert TrainConfig.load(run / "config.json").to_dict() == cfg.to_dict()
    weights = load_generator_weights(run / GENERATOR_FILE)
    assert torch.equal(weights["to_rgb.conv.weight"], trainer.method.G.to_rgb.conv.weight)
    assert "step_0000004.png" in (run / "index.html").read_text()


def test_resume_restores_identical_state(tiny_dataset, tmp_path):
    straight = train(tiny_config(tiny_dataset, tmp_path / "a", structure="lsesim"), progress=False)
    cfg = tiny_config(tiny_dataset, tmp_path / "b", structure="lsesim")
    interrupted = train(cfg, progress=False, stop_at=2)
    assert load_state(interrupted / STATE_FILE)["step"] == 2
    resume(interrupted, progress=False)
    a, b = assert_identical_checkpoints(straight, interrupted, ("G", "D", "head"))
    assert a["schedulers"]["G"]["last_epoch"] == b["schedulers"]["G"]["last_epoch"] == 4
    la = [json.loads(x) for x in (straight / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (interrupted / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lb] == [1, 2, 3, 4]
    assert [x["G"] for x in la] == [x["G"] for x in lb]


def test_head_warmup_trains_only_the_heads_first_and_resumes_mid_warmup(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "a", structure="lsesim", head_warmup=2)
    seed_everything(cfg.run.seed)  # as the Trainer does before building the method
    start = build_method(cfg).trainable_state_dict()
    cfg = tiny_config(tiny_dataset, tmp_path / "b", structure="lsesim", head_warmup=2)
    warm = load_state(train(cfg, progress=False, stop_at=2) / STATE_FILE)["method"]
    heads = [k for k in start if k.startswith("structure.heads.")]
    assert heads and all(not torch.equal(start[k], warm[k]) for k in heads if k.endswith("weight"))
    assert all(torch.equal(start[k], warm[k]) for k in start if k.startswith(("G.", "D.")))

    straight = train(tiny_config(tiny_dataset, tmp_path / "c", structure="lsesim", head_warmup=2), progress=False)
    logs = [json.loads(x) for x in (straight / "log.jsonl").read_text().splitlines()]
    assert ["G" in x for x in logs] == [False, False, True, True] and all("head_nce" in x for x in logs)
    cfg = tiny_config(tiny_dataset, tmp_path / "d", structure="lsesim", head_warmup=2)
    interrupted = train(cfg, progress=False, stop_at=1)  # inside the warm-up: its clock must resume too
    resume(interrupted, progress=False)
    assert_identical_checkpoints(straight, interrupted, ("G", "D", "head"))


def test_head_warmup_needs_learned_heads(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="head-warmup"):
        train(tiny_config(tiny_dataset, tmp_path / "a", structure="fsesim", head_warmup=3), progress=False)


def test_resume_extends_a_finished_run(tiny_dataset, tmp_path):
    run = train(tiny_config(tiny_dataset, tmp_path / "runs"), progress=False)
    resume(run, steps=6, progress=False)
    assert load_state(run / STATE_FILE)["step"] == 6
    assert TrainConfig.load(run / "config.json").run.steps == 6


def test_sigkill_loses_at_most_the_steps_since_the_last_checkpoint(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "runs")
    cfg.update("run", dict(steps=1000, checkpoint_every=1, sample_every=1000, log_every=1))
    cfg_path = tmp_path / "cfg.json"
    cfg.save(cfg_path)
    run = tmp_path / "runs" / "r"
    script = ("import sys, torch; torch.set_num_threads(1); from sesim.config import TrainConfig; from sesim.train import train; "
              f"train(TrainConfig.load({str(cfg_path)!r}), progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if (run / STATE_FILE).exists() and load_state(run / STATE_FILE)["step"] >= 3:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the training subprocess never reached step 3")
    finally:
        proc.kill()  # SIGKILL: no chance to clean up
        proc.wait()
    saved = load_state(run / STATE_FILE)["step"]
    logged = max(json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines())
    assert saved >= 3 and logged - saved <= 1  # checkpoint every step: at most the step in flight is lost
    load_generator_weights(run / GENERATOR_FILE)  # complete and loadable
    with open(run / "log.jsonl", "a") as fh:
        fh.write('{"step": 99')  # as if killed in the middle of writing a log line
    resume(run, steps=saved + 2, progress=False)
    assert load_state(run / STATE_FILE)["step"] == saved + 2
    steps = [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, saved + 3))


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_dataset, tmp_path / "runs")
    run = train(cfg, progress=False, stop_at=2)
    good = load_state(run / STATE_FILE)
    trainer = Trainer(TrainConfig.load(run / "config.json"), run, resume=True, progress=False)
    monkeypatch.setattr(trainer.method.structure, "forward", lambda x, y: torch.tensor(float("nan")))
    with pytest.raises(TrainingError, match="G.*nan.*last checkpoint"):
        trainer.run()
    after = load_state(run / STATE_FILE)
    assert after["step"] == 2
    assert all(torch.equal(v, after["method"][k]) for k, v in good["method"].items())


def test_existing_run_folder_is_never_reused(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "runs")
    train(cfg, progress=False, stop_at=1)
    with pytest.raises(TrainingError, match="already exists.*--resume"):
        train(cfg, progress=False)


def test_data_errors_come_before_training(tmp_path):
    (tmp_path / "data" / "trainA").mkdir(parents=True)
    (tmp_path / "data" / "trainB").mkdir(parents=True)
    (tmp_path / "data" / "trainB" / "notes.txt").write_text("hi")
    cfg = tiny_config(tmp_path / "data", tmp_path / "runs")
    with pytest.raises(ValueError, match="trainA"):
        train(cfg, progress=False)
    assert not (tmp_path / "runs" / "r").exists()  # no empty run folder left behind
    cfg.data.data = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        train(cfg, progress=False)


def test_greyscale_model(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "runs")
    cfg.data.channels = 1
    run = train(cfg, progress=False)
    assert load_generator_weights(run / GENERATOR_FILE)["stem.conv.weight"].shape[1] == 1


def test_lr_schedule_is_constant_then_linear_to_zero():
    assert [lr_factor(s, 10, 0.5) for s in (0, 4, 5, 6, 8, 10)] == [1.0, 1.0, 1.0, 0.8, 0.4, 0.0]


def test_cli_train_and_errors(tiny_dataset, tmp_path, capsys):
    args = ["train", "--data", str(tiny_dataset), "--steps", "2", "--size", "32", "--load-size", "36",
            "--batch-size", "1", "--seed", "3", "--device", "cpu", "--runs", str(tmp_path / "runs"), "--name", "cli",
            "--ngf", "8", "--ndf", "8", "--n-blocks", "1", "--vgg-weights", "random", "--num-queries", "8",
            "--workers", "0", "--no-progress", "--no-flip", "--layers", "relu2_1,relu3_1"]
    assert main(args) == 0
    cfg = TrainConfig.load(tmp_path / "runs" / "cli" / "config.json")
    assert cfg.run.seed == 3 and cfg.data.flip is False and cfg.structure.layers == ("relu2_1", "relu3_1")
    assert main(args) == 1  # the folder exists now
    assert "already exists" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "runs" / "cli"), "--steps", "3", "--no-progress"]) == 0
    with pytest.raises(SystemExit, match="cannot change"):
        main(["train", "--resume", str(tmp_path / "runs" / "cli"), "--size", "64"])
    assert main(["train", "--data", str(tmp_path / "missing"), "--runs", str(tmp_path / "runs")]) == 1
    assert "missing" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # checked while parsing: one line, exit status 2
        main(["train", "--data", str(tiny_dataset), "--patch-size", "abc"])
    assert exit_info.value.code == 2
    assert "argument --patch-size: expects int, got 'abc'" in capsys.readouterr().err


def test_presets_resolve():
    assert {"horse2zebra", "cityscapes", "public-code", "lsesim"} <= set(available_presets())
    cfg = TrainConfig()
    cfg.apply_preset("horse2zebra")
    cfg.apply_preset("public-code")
    assert cfg.structure.layers == ("relu3_1", "relu4_1", "relu4_3") and cfg.structure.patch_size is None
    assert cfg.structure.feature_norm == "tanh" and cfg.run.steps == 533600 and cfg.presets == ["horse2zebra", "public-code"]
    cfg.apply_preset("cityscapes")
    assert cfg.data.direction == "BtoA"
    with pytest.raises(ValueError, match="available"):
        cfg.apply_preset("zebra2horse")


@pytest.mark.parametrize("structure", ["perceptual", "l1", "none", "patchnce"])
def test_content_loss_ablations_train(tiny_dataset, tmp_path, structure):
    cfg = tiny_config(tiny_dataset, tmp_path / "runs", structure=structure, perceptual_layers=("relu2_2",),
                      nce_layers=("input", "down1"), nce_num_patches=8)
    cfg.run.steps = 2
    run = train(cfg, progress=False)
    logs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(entry["G"])) for entry in logs)
    if structure == "patchnce":  # trained as CUT without identity NCE, weighted by lambda_structure
        assert logs[-1]["G_nce"] > 0 and "G_nce_idt" not in logs[-1]
        assert load_state(run / STATE_FILE)["optimizers"].keys() == {"G", "D", "F"}
    else:
        assert (logs[-1]["G_structure"] == 0.0) == (structure == "none")
    assert "head_nce" not in logs[-1]
