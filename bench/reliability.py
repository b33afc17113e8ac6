"""The reliability suite: every bad input a clear answer, and kill -9 at any moment loses nothing.

Two parts, both counted:

1. **Bad inputs** (:data:`CASES`): each case damages or mis-specifies one thing a user can get
   wrong — a truncated checkpoint, a pickle that would run code, a zero interval, a truncated
   JPEG, a symlink loop, a huge image, ... — runs the ``sesim`` command on it (in-process, as
   ``main(argv)``) and checks the answer: either the command works and its result is right, or it
   exits non-zero with exactly one error line, no traceback, naming what to fix; and nothing was
   lost (checkpoints still load, no half-made run folder, no output overwritten). A case is
   *handled* when all of that holds.
2. **kill -9** (:func:`kill_loop`): a small training run is killed with SIGKILL again and again —
   at random moments, and the instant a checkpoint or weights file is being written (a
   ``.*.tmp-<pid>`` file exists) — and resumed each time, until it finishes. Its final weights,
   optimiser moments and every logged loss must equal those of an uninterrupted run bit for bit;
   no temporary file may be left behind.

``tests/test_reliability.py`` runs the fast form (every case, two kills) in CI.

    python bench/reliability.py                 # all cases + 30 kills: about 10 minutes on 2 cores
    python bench/reliability.py --kills 100
    python bench/reliability.py --quick         # all cases + 2 kills (what CI runs), into bench/work/results-quick
    python bench/reliability.py --kills 0       # the cases only; then --kill-only adds the kill loop to the report

Writes ``<out>/reliability.json`` and ``.md`` (default ``bench/results``; ``--quick``:
``bench/work/results-quick``, so a quick check never replaces the committed results). Each case is
recorded with its outcome: the exit status, the error line (or "worked"), and what was checked
to be intact.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from lab import ROOT
from lab.report import output_folder

sys.path.append(str(ROOT / "tests"))  # the tests' tiny training config
from sesim.checkpoint import (  # noqa: E402
    CONFIG_FILE, GENERATOR_FILE, PREVIOUS_STATE_FILE, STATE_FILE, load_generator_weights, read_state,
)
from sesim.cli import config_flags  # noqa: E402
from sesim.config import TrainConfig  # noqa: E402
from test_train import tiny_config as test_config  # noqa: E402

# ----------------------------------------------------------------------------------------------
# A workspace: data, a finished tiny run, and a way to call the command
# ----------------------------------------------------------------------------------------------


def write_image(path: Path, size=(40, 36), seed: int = 0, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, fmt)
    return path


def make_data(root: Path, domains=("trainA", "trainB", "testA"), n: int = 4) -> Path:
    for d, domain in enumerate(domains):
        for i in range(n):
            write_image(root / domain / f"{domain}{i}.png", (40 + i, 36 + 2 * i), seed=10 * d + i)
    return root


def tiny_config(data: Path, runs: Path, **run) -> TrainConfig:
    """The tests' tiny run (32 px, tiny networks, random VGG16; seconds per run) on the CPU, with
    ``run`` options changed."""
    cfg = test_config(data, runs)
    cfg.update("run", dict(device="cpu", **run))
    return cfg


@dataclass
class Answer:
    code: int
    err: str  # what the command wrote to stderr
    logs: list[str] = field(default_factory=list)  # messages of the "sesim" logger

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.startswith("sesim ")]


class Workspace:
    """A scratch folder with tiny data and a finished 4-step run (checkpoints at steps 2 and 4)."""

    def __init__(self, root: Path, template: Path | None = None) -> None:
        self.root = root
        if template is not None:
            shutil.copytree(template, root, symlinks=True, dirs_exist_ok=True)
        else:
            from sesim.train import train

            make_data(root / "data")
            train(tiny_config(root / "data", root / "runs"), progress=False)
        self.data = root / "data"
        self.run = root / "runs" / "r"
        self.answers: list[tuple[list[str], Answer]] = []  # every command run, for the report

    def sesim(self, *argv: str) -> Answer:
        """``sesim ARGV`` in this process; stderr and the sesim log captured."""
        from sesim.cli import main

        records: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
        logger = logging.getLogger("sesim")
        logger.addHandler(handler)
        old_level = logger.level
        logger.setLevel(logging.INFO)
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = main([str(a) for a in argv])
                except SystemExit as exit_:
                    code = exit_.code if isinstance(exit_.code, int) else 1
                    if not isinstance(exit_.code, int) and exit_.code:
                        print(exit_.code, file=sys.stderr)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
        answer = Answer(code, err.getvalue(), records)
        self.answers.append(([str(a) for a in argv], answer))
        return answer


class Unhandled(AssertionError):
    """A case's answer was not clear, or something was lost."""


def expect_error(answer: Answer, *needles: str) -> None:
    """Non-zero exit, exactly one error line containing every needle, no traceback."""
    if answer.code == 0:
        raise Unhandled(f"expected an error, the command succeeded: {answer.err[-500:]}")
    if "Traceback" in answer.err:
        raise Unhandled(f"traceback: {answer.err[-1500:]}")
    lines = answer.error_lines
    if len(lines) != 1:
        raise Unhandled(f"expected one error line, got {len(lines)}: {answer.err[-1500:]}")
    missing = [n for n in needles if n not in lines[0]]
    if missing:
        raise Unhandled(f"error line lacks {missing}: {lines[0]}")


def expect_ok(answer: Answer) -> None:
    if answer.code != 0 or "Traceback" in answer.err:
        raise Unhandled(f"expected success, got exit {answer.code}: {answer.err[-1500:]}")


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Unhandled(what)


def damage(path: Path, how: str) -> bytes:
    data = path.read_bytes()
    bad = {"truncated": data[:-1000], "halved": data[: len(data) // 2], "empty": b"",
           "random": np.random.default_rng(0).bytes(len(data))}[how]
    path.write_bytes(bad)
    return bad


def truncate(path: Path, keep: float = 0.6) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _intact_previous(ws: Workspace) -> None:
    check(read_state(ws.run / PREVIOUS_STATE_FILE)["step"] == 2, "the previous checkpoint was lost")


def _no_new_run(ws: Workspace) -> None:
    check(sorted(p.name for p in (ws.root / "runs").iterdir()) == ["r"], "a run folder was left behind")


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# ----------------------------------------------------------------------------------------------
# The cases
# ----------------------------------------------------------------------------------------------

CASES: dict[str, Callable[[Workspace], None]] = {}


def case(name: str):
    def register(fn):
        CASES[name] = fn
        return fn
    return register


def _damaged_checkpoint(how: str):
    def run(ws: Workspace) -> None:
        damage(ws.run / STATE_FILE, how)
        expect_error(ws.sesim("train", "--resume", ws.run, "--no-progress"), f"{STATE_FILE} is damaged",
                     "(step 2) is intact", "--from-previous")
        _intact_previous(ws)
    return run


for _how in ("truncated", "halved", "empty", "random"):
    case(f"resume: checkpoint.pt {_how} (random bytes)" if _how == "random" else f"resume: checkpoint.pt {_how}")(
        _damaged_checkpoint(_how))


@case("resume --from-previous after a damaged checkpoint.pt")
def _(ws):
    damaged = damage(ws.run / STATE_FILE, "halved")
    expect_ok(ws.sesim("train", "--resume", ws.run, "--from-previous", "--no-progress"))
    check(read_state(ws.run / STATE_FILE)["step"] == 4, "did not reach step 4 again")
    check((ws.run / "checkpoint.damaged.pt").read_bytes() == damaged, "the damaged file was not kept")


@case("resume: checkpoint.pt is a pickle that would run code")
def _(ws):
    marker = ws.root / "pwned"
    torch.save({"step": 4, "payload": _RunsCode(marker)}, ws.run / STATE_FILE)
    expect_error(ws.sesim("train", "--resume", ws.run, "--no-progress"), "refusing to load", "could run code")
    check(not marker.exists(), "the payload ran")
    with open(ws.run / STATE_FILE, "wb") as fh:  # the same as a plain pickle, not a torch file
        pickle.dump({"step": 4, "payload": _RunsCode(marker)}, fh)
    expect_error(ws.sesim("viz", "heatmap", "--source", next((ws.data / "testA").iterdir()), "--run", ws.run,
                          "--output", ws.root / "fig.png"), "refusing to load")
    check(not marker.exists(), "the payload ran")


@case("translate: generator.safetensors truncated")
def _(ws):
    truncate(ws.run / GENERATOR_FILE, 0.001)
    expect_error(ws.sesim("translate", "--run", ws.run, "--input", ws.data / "testA", "--output", ws.root / "out"),
                 f"{GENERATOR_FILE} is damaged", "--resume")
    expect_ok(ws.sesim("train", "--resume", ws.run, "--no-progress"))  # rewrites it from checkpoint.pt
    load_generator_weights(ws.run / GENERATOR_FILE)


@case("translate: weights of another network (--weights)")
def _(ws):
    from safetensors.torch import save_file

    other = ws.root / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other))
    expect_error(ws.sesim("translate", "--run", ws.run, "--weights", other, "--input", ws.data / "testA",
                          "--output", ws.root / "out"), "does not hold the generator")


@case("resume / translate: config.json broken")
def _(ws):
    config = ws.run / CONFIG_FILE
    config.write_text(config.read_text()[:-30])
    expect_error(ws.sesim("train", "--resume", ws.run), f"{config} is damaged: not valid JSON")
    expect_error(ws.sesim("translate", "--run", ws.run, "--input", ws.data / "testA", "--output", ws.root / "o"),
                 f"{config} is damaged")
    config.write_text("[1, 2]")
    expect_error(ws.sesim("train", "--resume", ws.run), f"{config} is damaged")


@case("resume: a folder that is not a run")
def _(ws):
    expect_error(ws.sesim("train", "--resume", ws.data), "is not a sesim run folder")


@case("resume: a run killed before its first checkpoint")
def _(ws):
    (ws.run / STATE_FILE).unlink()
    (ws.run / PREVIOUS_STATE_FILE).unlink()
    expect_error(ws.sesim("train", "--resume", ws.run), "never reached its first checkpoint", "delete")


@case("resume: stale temp files of a killed write; resume says where it continues")
def _(ws):
    stale = [ws.run / f".{STATE_FILE}.tmp-{2 ** 22 + 1}", ws.run / f".{GENERATOR_FILE}.tmp-{2 ** 22 + 2}"]
    for p in stale:
        p.write_bytes(b"x" * 100)
    answer = ws.sesim("train", "--resume", ws.run, "--steps", "5", "--no-progress")
    expect_ok(answer)
    check(not any(p.exists() for p in stale), "stale temp files were left")
    check(any("from step 4 of 5" in m for m in answer.logs), f"resume did not say its step: {answer.logs}")


@case("run files: one permission mode (safetensors was 0600)")
def _(ws):
    expect_ok(ws.sesim("train", "--resume", ws.run, "--steps", "6", "--no-progress"))  # rewrites every weights file
    modes = {p.stat().st_mode & 0o777 for p in ws.run.rglob("*") if p.is_file()}
    check(len(modes) == 1, f"modes differ: {sorted(map(oct, modes))}")


def _bad_flag(argv: tuple[str, ...], *needles: str):
    def run(ws: Workspace) -> None:
        args = [a.format(data=ws.data, runs=ws.root / "runs", run=ws.run) for a in argv]
        expect_error(ws.sesim(*args), *needles)
        _no_new_run(ws)
    return run


def new_run(ws: Workspace, *extra: str) -> list[str]:
    """``sesim train`` of a new tiny 2-step run "new" on the workspace's data, plus ``extra``."""
    return ["train", "--no-progress", *config_flags(tiny_config(ws.data, ws.root / "runs", name="new", steps=2)),
            *extra]


_TRAIN = ("train", "--data", "{data}", "--runs", "{runs}", "--name", "new", "--steps", "2")
for _flag, _value in (("--checkpoint-every", "0"), ("--sample-every", "0"), ("--log-every", "0"),
                      ("--checkpoint-every", "-5"), ("--lr", "nan"), ("--size", "30"), ("--steps", "2.5")):
    case(f"train {_flag} {_value}")(_bad_flag((*_TRAIN, f"{_flag}={_value}"), f"argument {_flag}"))
case("train --resume RUN --log-every 0")(_bad_flag(("train", "--resume", "{run}", "--log-every=0"), "--log-every"))
_TRANSLATE = ("translate", "--run", "{run}", "--input", "{data}/testA", "--output", "{runs}/../out")
for _flag, _value in (("--batch-size", "0"), ("--tile", "3"), ("--max-memory", "0"), ("--samples", "0")):
    case(f"translate {_flag} {_value}")(_bad_flag((*_TRANSLATE, f"{_flag}={_value}"), f"argument {_flag}"))


@case("train --preset FILE holding checkpoint_every = 0")
def _(ws):
    preset = ws.root / "mine.toml"
    preset.write_text("[run]\ncheckpoint_every = 0\n")
    expect_error(ws.sesim(*new_run(ws, "--preset", preset)),
                 "mine.toml", "checkpoint_every")
    _no_new_run(ws)


@case("train: a truncated JPEG (passes the header check)")
def _(ws):
    truncate(write_image(ws.data / "trainA" / "broken.jpg", (120, 90), fmt="JPEG"))
    expect_error(ws.sesim(*new_run(ws)),
                 "broken.jpg", "truncated", "--skip-unreadable")
    _no_new_run(ws)
    expect_ok(ws.sesim(*new_run(ws, "--skip-unreadable")))


@case("train --skip-unreadable, no testA (sample images fall back to trainA)")
def _(ws):
    shutil.rmtree(ws.data / "testA")
    truncate(write_image(ws.data / "trainA" / "a.jpg", (60, 50), fmt="JPEG"))  # first in sorted order
    expect_ok(ws.sesim(*new_run(ws, "--skip-unreadable")))
    check((ws.root / "runs" / "new" / "samples" / "step_0000002.png").exists(), "no sample grid written")


@case("train: symlink loop trainA/loop -> .. (trainB must not become domain A)")
def _(ws):
    from sesim.data.images import list_images

    os.symlink("..", ws.data / "trainA" / "loop")
    check(all("trainB" not in str(p) for p in list_images(ws.data / "trainA")), "trainB images listed as domain A")
    expect_ok(ws.sesim(*new_run(ws)))


@case("train: images smaller than the crop are reported")
def _(ws):
    write_image(ws.data / "trainA" / "tiny.png", (12, 20))
    answer = ws.sesim(*new_run(ws))
    expect_ok(answer)
    check(any("smaller than the 32 px crop" in m and "tiny.png is 12x20" in m for m in answer.logs),
          f"no report: {answer.logs}")


@case("train: an empty trainB / a missing trainA")
def _(ws):
    for p in (ws.data / "trainB").iterdir():
        p.unlink()
    expect_error(ws.sesim(*new_run(ws)), "trainB", "is empty")
    shutil.rmtree(ws.data / "trainA")
    expect_error(ws.sesim(*new_run(ws)), "trainA")
    _no_new_run(ws)


@case("train: an existing run folder")
def _(ws):
    expect_error(ws.sesim("train", "--data", ws.data, "--runs", ws.root / "runs", "--name", "r"), "already exists")
    check(read_state(ws.run / STATE_FILE)["step"] == 4, "the existing run was touched")


@case("translate: an unreadable input among good ones")
def _(ws):
    inputs = ws.root / "in"
    write_image(inputs / "a.png")
    truncate(write_image(inputs / "b.jpg", (64, 48), fmt="JPEG"))
    out = ws.root / "out"
    expect_error(ws.sesim("translate", "--run", ws.run, "--input", inputs, "--output", out), "b.jpg")
    check(not out.exists(), "something was written before the error")
    expect_ok(ws.sesim("translate", "--run", ws.run, "--input", inputs, "--output", out, "--skip-unreadable",
                       "--no-progress"))
    check(sorted(p.name for p in out.iterdir()) == ["a.png"], "wrong outputs")


@case("translate: outputs exist (never overwritten unasked)")
def _(ws):
    out = ws.root / "out"
    expect_ok(ws.sesim("translate", "--run", ws.run, "--input", ws.data / "testA", "--output", out, "--no-progress"))
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    expect_error(ws.sesim("translate", "--run", ws.run, "--input", ws.data / "testA", "--output", out), "--overwrite")
    check({p.name: p.read_bytes() for p in out.iterdir()} == first, "an output was overwritten")


@case("translate: an image larger than --max-memory allows whole (exact tiles)")
def _(ws):
    from sesim.memory import current_rss

    big = write_image(ws.root / "in" / "big.png", (701, 533))
    whole, tiled = ws.root / "whole", ws.root / "tiled"
    expect_ok(ws.sesim("translate", "--run", ws.run, "--input", big, "--output", whole, "--tile", "none",
                       "--no-progress"))
    limit = f"{(current_rss() >> 20) + 24}M"  # far below what the whole image needs on top of this process
    answer = ws.sesim("translate", "--run", ws.run, "--input", big, "--output", tiled, "--max-memory", limit,
                      "--no-progress")
    expect_ok(answer)
    check(any("exact layer-by-layer tiles" in m for m in answer.logs), f"not tiled: {answer.logs}")
    a = np.asarray(Image.open(whole / "big.png"), dtype=int)
    b = np.asarray(Image.open(tiled / "big.png"), dtype=int)
    check(a.shape == b.shape == (533, 701, 3) and np.abs(a - b).max() <= 1, "tiled output differs from whole")


@case("torchrun: the VGG16 weights are missing")
def _(ws):
    cfg = tiny_config(ws.data, ws.root / "runs")
    cfg.update("loss", dict(backbone="vgg16", backbone_weights=str(ws.root / "missing-vgg16.pth")))
    cfg.update("run", dict(name="ddp"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "sesim", "train", "--no-progress", *config_flags(cfg)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    ws.answers.append((["torchrun", "sesim train", *cmd[9:]], Answer(done.returncode, done.stderr)))
    check(done.returncode != 0, "torchrun succeeded")
    ours = [ln for ln in done.stderr.splitlines() if ln.startswith("sesim train: error:")]
    check(len(ours) == 1 and "missing-vgg16.pth" in ours[0], f"not one message: {done.stderr[-2000:]}")
    check("/sesim/" not in done.stderr.replace(str(ws.root), ""), "a traceback through sesim code")
    _no_new_run(ws)


@case("train: missing VGG16 weights (the hint names the CLI flag)")
def _(ws):
    from sesim.nets.vgg import VGG16_ENV

    saved = {k: os.environ.get(k) for k in ("TORCH_HOME", VGG16_ENV, "SESIM_OFFLINE")}
    os.environ.update(TORCH_HOME=str(ws.root / "empty-torch-home"), SESIM_OFFLINE="1")
    os.environ.pop(VGG16_ENV, None)
    try:
        answer = ws.sesim(*new_run(ws, "--backbone", "vgg16", "--backbone-weights", "imagenet"))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    expect_error(answer, "VGG16 weights not found")
    check("--backbone-weights PATH" in answer.err and "--backbone auto" in answer.err,
          f"the hint does not name the flags: {answer.err[-800:]}")
    _no_new_run(ws)


def _outcome(argv: list[str], answer: Answer, root: Path) -> dict:
    """One command of a case as the report shows it: the command (workspace paths shortened), its
    exit status and its error line, or "worked"."""
    short = " ".join(a.replace(str(root) + "/", "") for a in argv[:2]) + (" ..." if len(argv) > 2 else "")
    said = answer.error_lines[0].replace(str(root) + "/", "") if answer.error_lines else "worked"
    return {"command": short, "exit": answer.code, "said": said[:300]}


def run_case(name: str, template: Path, scratch: Path) -> dict:
    """Run case ``name`` in a fresh copy of ``template``. Returns ``handled`` (every check held),
    ``detail`` (what failed), ``outcomes`` (each command's exit status and error line), ``seconds``
    and ``left_behind`` (temp files of atomic writes still in the workspace)."""
    t0 = time.perf_counter()
    ws = Workspace(scratch, template)
    handled, detail = True, ""
    try:
        CASES[name](ws)
    except Unhandled as err:
        handled, detail = False, str(err)
    left = sorted(str(p.relative_to(scratch)) for p in scratch.rglob(".*.tmp-*"))
    if left and handled:
        handled, detail = False, f"temp files left behind: {left}"
    return {"handled": handled, "detail": detail, "outcomes": [_outcome(a, ans, scratch) for a, ans in ws.answers],
            "left_behind": left, "seconds": round(time.perf_counter() - t0, 1)}


# ----------------------------------------------------------------------------------------------
# kill -9
# ----------------------------------------------------------------------------------------------

_START = ("import sys, torch; torch.set_num_threads(1); from sesim.config import TrainConfig; "
          "from sesim.train import train; train(TrainConfig.load(sys.argv[1]), progress=False)")
_RESUME = ("import sys, torch; torch.set_num_threads(1); from sesim.train import resume; "
           "resume(sys.argv[1], progress=False)")


def _python(code: str, arg: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, str(arg)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _writing(run: Path) -> bool:
    return any(p.name.startswith(".") and ".tmp-" in p.name for p in run.iterdir())


@dataclass
class KillReport:
    kills: int = 0
    during_write: int = 0  # killed while a temp file of an atomic write existed
    resumes: int = 0
    tensors: int = 0
    tensors_differing: int = 0
    losses: int = 0
    losses_differing: int = 0
    leftover_temp_files: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.tensors_differing + self.losses_differing + self.leftover_temp_files + len(self.failures)


def kill_loop(kills: int, work: Path, *, steps: int = 12, seed: int = 0, timeout: float = 1800) -> KillReport:
    """Train ``steps`` steps (checkpoint every step) killing the process ``kills`` times (half at a
    random moment, half the instant an atomic write is in progress), resuming after each kill;
    compare with an uninterrupted run. Running out of ``timeout`` seconds is a failure of the report
    (a slow machine), not an exception."""
    rng = random.Random(seed)
    make_data(work / "data")
    report = KillReport()
    runs = {}
    for name in ("straight", "killed"):
        cfg = tiny_config(work / "data", work / name, steps=steps, checkpoint_every=1, sample_every=steps)
        cfg.save(work / f"{name}.json")
        runs[name] = work / name / "r"
    straight = _python(_START, work / "straight.json")  # runs alongside the killed one (1 thread each)
    run, deadline = runs["killed"], time.time() + timeout
    proc = _python(_START, work / "killed.json")
    while report.kills < kills and time.time() < deadline:
        during_write = report.kills % 2 == 1
        before = _mtime(run / STATE_FILE)
        while proc.poll() is None and time.time() < deadline:
            if during_write and _writing(run):  # the instant an atomic write is under way
                break
            if not during_write and _mtime(run / STATE_FILE) not in (None, before):  # training is running:
                time.sleep(rng.uniform(0.0, 0.6))  # a random moment of a step, a log line, a sample, a write
                break
            time.sleep(0.0005 if during_write else 0.005)
        if proc.poll() is not None:  # finished before the kill: nothing more to interrupt
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        report.kills += 1
        report.during_write += _writing(run)
        report.resumes += 1
        proc = _python(_RESUME, run)
    try:
        _, err = proc.communicate(timeout=max(deadline - time.time(), 1))
    except subprocess.TimeoutExpired:
        for p in (proc, straight):
            p.kill()
            p.wait()
        report.failures.append(f"out of time ({timeout:.0f} s) after {report.kills} kills; use --timeout")
        return report
    if proc.returncode != 0:
        report.failures.append(f"resume failed: {err.strip().splitlines()[-1:]}")
        return report
    _, err = straight.communicate(timeout=max(deadline - time.time(), 1))
    if straight.returncode != 0:
        raise RuntimeError(f"the uninterrupted run failed: {err[-2000:]}")
    a, b = read_state(runs["straight"] / STATE_FILE), read_state(run / STATE_FILE)
    if a["step"] != b["step"]:
        report.failures.append(f"steps differ: {a['step']} vs {b['step']}")
    for key, value in a["method"].items():
        report.tensors += 1
        report.tensors_differing += not torch.equal(value, b["method"][key])
    for name, opt in a["optimizers"].items():
        for i, st in opt["state"].items():
            for k in ("exp_avg", "exp_avg_sq"):
                report.tensors += 1
                report.tensors_differing += not torch.equal(st[k], b["optimizers"][name]["state"][i][k])
    la = [json.loads(x) for x in (runs["straight"] / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    if [x["step"] for x in la] != [x["step"] for x in lb]:
        report.failures.append("logged steps differ")
    for x, y in zip(la, lb):
        for k, v in x.items():
            if k not in ("step", "images_per_s"):
                report.losses += 1
                report.losses_differing += v != y.get(k)
    report.leftover_temp_files = sum(_writing(r) for r in runs.values())
    return report


# ----------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=30, help="kills of the kill -9 loop (0: only the bad-input cases)")
    ap.add_argument("--steps", type=int, default=40, help="steps of the killed run (checkpoint every step)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds the kill loop may take")
    ap.add_argument("--quick", action="store_true", help="2 kills of a 6-step run (the CI form); results go to "
                    "bench/work/results-quick unless --out is given (never bench/results)")
    ap.add_argument("--out", default=None, help="results folder (default: bench/results)")
    ap.add_argument("--kill-only", action="store_true", help="run only the kill loop and keep the cases of the "
                    "reliability.json already in --out")
    args = ap.parse_args()
    if args.quick:
        args.kills, args.steps = 2, 6
    args.out = str(output_folder(ap, args.out, quick=args.quick))
    torch.set_num_threads(1)
    os.environ["SESIM_OFFLINE"] = "1"
    results = {}
    if args.kill_only:
        results = json.loads((Path(args.out) / "reliability.json").read_text())["cases"]
    with tempfile.TemporaryDirectory(prefix="sesim-reliability-") as tmp:
        template = Path(tmp) / "template"
        if not args.kill_only:
            Workspace(template)
        for i, name in enumerate(CASES if not args.kill_only else []):
            results[name] = r = run_case(name, template, Path(tmp) / f"case{i}")
            print(f"{'ok  ' if r['handled'] else 'FAIL'} {name}{'' if r['handled'] else ': ' + r['detail']}",
                  flush=True)
        kill = None
        if args.kills > 0:
            t0 = time.time()
            kills = kill_loop(args.kills, Path(tmp) / "kill", steps=args.steps, timeout=args.timeout)
            kill = {**vars(kills), "lost": kills.lost, "seconds": round(time.time() - t0, 1)}
    report = {"cases": results, "tried": len(results), "handled": sum(r["handled"] for r in results.values()),
              "lost": sum(bool(r["left_behind"]) for r in results.values()), "kill": kill}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reliability.json").write_text(json.dumps(report, indent=2) + "\n")
    k = report["kill"]
    kill_line = "kill -9: not run (--kills 0)." if k is None else (
        f"kill -9: **{k['kills']} kills** ({k['during_write']} during a checkpoint/weights write), "
        f"{k['resumes']} resumes; {k['tensors_differing']} of {k['tensors']} tensors and "
        f"{k['losses_differing']} of {k['losses']} logged losses differ from an uninterrupted run; "
        f"{k['leftover_temp_files']} temp files left; **lost: {k['lost']}**"
        + (f"; failures: {'; '.join(k['failures'])}" if k["failures"] else "") + ".")
    lines = ["# Reliability suite (bench/reliability.py)", "",
             f"Bad inputs: **{report['tried']} tried, {report['handled']} handled, lost {report['lost']}** (one "
             "clear error line or a correct result; lost: a case that left temp files behind).", "",
             kill_line, "",
             "| case | handled | answers (exit status: the error line, or worked) |", "|---|---|---|"]
    for name, r in results.items():
        said = "<br>".join(f"`{o['command']}` {o['exit']}: {_md(o['said'])}" for o in r["outcomes"])
        lines.append(f"| {_md(name)} | {'yes' if r['handled'] else 'NO: ' + _md(r['detail'][:200])} | {said} |")
    lines += ["", f"Generated by `python bench/reliability.py{' --quick' if args.quick else ''}` "
              f"(kills: {args.kills}, killed run: {args.steps} steps)."]
    (out / "reliability.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:5]))


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    main()
