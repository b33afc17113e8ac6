"""Tiny trained runs for the ``sesim view`` tests (32 px demo scenes, a few steps; the structure loss on a
random-init VGG16 as a fast test fixture, whose layer names and 8x8 / 4x4 maps the tests use)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sesim.checkpoint import GENERATOR_FILE
from sesim.config import TrainConfig
from sesim.data.demo_scenes import make_demo_dataset
from sesim.train import resume, train

REPO = Path(__file__).resolve().parents[1]


@dataclass
class ViewRuns:
    data: Path
    fsesim: Path      # FSeSim, 4 steps: weights at steps 2 (checkpoints/) and 4, sample grids at 2 and 4
    gan_only: Path    # --structure none: no structure loss of its own
    multimodal: Path  # --mode multimodal with a style encoder


def tiny_config(data: Path, runs: Path, name: str, **loss) -> TrainConfig:
    cfg = TrainConfig()
    cfg.update("data", dict(data=str(data), size=32, load_size=32, workers=0))
    cfg.update("model", dict(ngf=8, ndf=8, n_blocks=1))
    cfg.update("loss", dict(backbone="vgg16", backbone_weights="random", feature_norm="centered_l2", num_queries=16,
                            patch_size=4, pool_size=0, **loss))
    cfg.update("run", dict(steps=4, batch_size=2, runs=str(runs), name=name, checkpoint_every=2, sample_every=2,
                           log_every=1, num_samples=2, seed=3))
    return cfg


@pytest.fixture(scope="session")
def view_runs(tmp_path_factory) -> ViewRuns:
    root = tmp_path_factory.mktemp("view")
    make_demo_dataset(root / "data", size=32, n_train=4, n_test=2, seed=0)
    runs = root / "runs"
    fsesim = train(tiny_config(root / "data", runs, "fsesim"), progress=False, stop_at=2)
    (fsesim / "checkpoints").mkdir()
    shutil.copy(fsesim / GENERATOR_FILE, fsesim / "checkpoints" / "generator_step2.safetensors")
    resume(fsesim, progress=False)
    gan_cfg = tiny_config(root / "data", runs, "gan-only", structure="none")
    gan_cfg.run.steps = 2
    gan_only = train(gan_cfg, progress=False)
    mm_cfg = tiny_config(root / "data", runs, "multimodal")
    mm_cfg.update("model", dict(mode="multimodal", mlp_dim=16, n_scales_d=2))
    mm_cfg.run.steps = 2
    multimodal = train(mm_cfg, progress=False)
    return ViewRuns(root / "data", fsesim, gan_only, multimodal)


def start_view(args: list[str], timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """Run ``python -m sesim view ARGS --no-open --port 0`` from this checkout; return the process
    and the URL it printed (the process is killed if it prints none)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # A test suite started in the background by a non-interactive shell (`pytest &`) inherits SIGINT
    # ignored, and so would the server: give it the default disposition, as a terminal would.
    proc = subprocess.Popen([sys.executable, "-m", "sesim", "view", *args, "--no-open", "--port", "0"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if " at http://127.0.0.1:" in line:
            return proc, line.split(" at ", 1)[1].split()[0]
    proc.kill()
    raise AssertionError(f"sesim view did not start: {proc.communicate()[1]}")
