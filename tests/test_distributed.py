"""torchrun on CPU (gloo, 2 processes): the run completes, only rank 0 writes, the checkpoint loads
in a single-process translate, and one step of 2 ranks x batch 1 equals one step of batch 2."""

import json
import os
import subprocess
import sys

import torch

from sesim.checkpoint import STATE_FILE, load_state
from sesim.cli import config_flags
from sesim.config import TrainConfig
from sesim.train import train
from sesim.translate import translate_paths
from test_train import tiny_config


def test_two_ranks_of_batch_one_equal_one_process_of_batch_two(tiny_dataset, tmp_path):
    base = tiny_config(tiny_dataset, tmp_path / "runs")
    base.update("loss", dict(pool_size=0))  # pools are per rank; keep the comparison exact
    base.update("run", dict(steps=1, checkpoint_every=1, log_every=1, sample_every=1, device="cpu"))

    single = TrainConfig.from_dict(base.to_dict())
    single.update("run", dict(batch_size=2, name="single"))
    single_run = train(single, progress=False)

    ddp = TrainConfig.from_dict(base.to_dict())
    ddp.update("run", dict(batch_size=1, name="ddp"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "sesim", "train", "--no-progress", *config_flags(ddp)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp_run = tmp_path / "runs" / "ddp"

    a, b = load_state(single_run / STATE_FILE), load_state(ddp_run / STATE_FILE)
    assert a["step"] == b["step"] == 1
    for name in ("G", "D"):
        sa, sb = a["optimizers"][name]["state"], b["optimizers"][name]["state"]
        for i in sa:  # Adam's first moment after one step is 0.5 * gradient: the averaged gradients agree
            x, y = sa[i]["exp_avg"], sb[i]["exp_avg"]
            # float32 summation order differs between one batch of 2 and two batches of 1: ~2e-6
            # relative; conv biases in front of instance norm have a true gradient of 0 (pure noise)
            torch.testing.assert_close(x, y, rtol=0, atol=1e-5 * max(1.0, x.abs().max().item()))
    for key, value in a["method"].items():  # noise-level gradients can flip one Adam step (lr 1e-4)
        torch.testing.assert_close(value, b["method"][key], rtol=0, atol=2.5e-4)
    logs = [json.loads(x) for x in (ddp_run / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in logs] == [1]  # one writer: rank 0
    assert TrainConfig.load(ddp_run / "config.json").run.batch_size == 1

    out = translate_paths(ddp_run, tiny_dataset / "testA", tmp_path / "out", progress=False)
    assert len(out) == 3


def test_batch_norm_is_synchronised_only_for_several_cuda_ranks(monkeypatch, caplog):
    from sesim import distributed
    from sesim.methods import build_method

    cfg = TrainConfig()
    cfg.update("model", dict(ngf=4, ndf=4, n_blocks=1, norm="batch"))
    cfg.update("loss", dict(vgg_weights="random", structure="l1"))
    method = build_method(cfg)
    keys, params = list(method.state_dict()), {id(p) for p in method.parameters()}
    assert not distributed.synchronize_batch_norm(method, torch.device("cuda"))  # no process group

    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda *a: 2)
    assert not distributed.synchronize_batch_norm(method, torch.device("cpu"))
    assert "SyncBatchNorm needs CUDA" in caplog.text
    assert distributed.synchronize_batch_norm(method, torch.device("cuda"))
    kinds = {type(m) for m in method.modules()}
    assert torch.nn.SyncBatchNorm in kinds and torch.nn.BatchNorm2d not in kinds
    # the optimisers built with the method still hold the (same) parameters; checkpoints keep their keys
    assert {id(p) for p in method.parameters()} == params and list(method.state_dict()) == keys
