"""One training run of a benchmark, in a fresh subprocess: train, translate the held-out inputs, time it;
and any other measurement that needs a process of its own (:func:`child_result`).

:func:`run_one` writes the run's spec (its whole ``TrainConfig`` as a dict, the inputs to translate,
where to put the translations) next to its log and starts ``python -m lab.runner SPEC``. The child
trains with ``sesim.train.train``, translates with ``sesim.translate.translate_paths`` and writes
its timings. Its peak memory is the ``VmHWM`` line of ``/proc/self/status`` (peak resident set
size) that the child reads when it has finished (``ru_maxrss`` from ``os.wait4`` is not used on
Linux: it also counts the parent's memory that the child inherited at fork, before exec). Wall time
is measured inside the child around ``train`` (network construction, training and the final
checkpoint; not the translation).

A finished run with the same spec is reused as it is (its result says ``"reused": true``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import ROOT
from .methods import option
from .timing import read_status

if TYPE_CHECKING:
    from sesim.config import TrainConfig

BENCH = ROOT / "bench"


def child_env(threads: int | None = None) -> dict[str, str]:
    """The environment of a benchmark subprocess: ``lab`` and this checkout's sesim importable,
    ``threads`` OpenMP/MKL threads, no downloads."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.setdefault("SESIM_OFFLINE", "1")
    if threads:
        env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    return env


def worker(spec_path: str) -> None:
    """The child: train one run, translate the held-out inputs (if any), write timings as JSON."""
    os.environ.setdefault("SESIM_OFFLINE", "1")
    import torch

    from sesim.config import TrainConfig
    from sesim.train import train
    from sesim.translate import translate_paths

    spec = json.loads(Path(spec_path).read_text())
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    cfg = TrainConfig.from_dict(spec["config"])
    t0 = time.perf_counter()
    run = train(cfg, progress=False)
    train_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    if spec.get("inputs"):
        translate_paths(run, spec["inputs"], spec["fake"], overwrite=True, progress=False, device=option(cfg, "device"))
    result = {"train_seconds": train_seconds, "translate_seconds": time.perf_counter() - t1,
              "steps": option(cfg, "steps"),
              "step_seconds": step_seconds(Path(run) / "log.jsonl", option(cfg, "batch_size")),
              "run": str(run), "vmhwm_kb": _kb(read_status("VmHWM")), "threads": torch.get_num_threads()}
    try:
        if torch.cuda.is_available() and option(cfg, "device") != "cpu":
            result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    except Exception:  # pragma: no cover
        pass
    if not spec.get("keep_checkpoints"):  # the resume state (optimisers, D) is 4-10x the generator; not needed here
        (Path(run) / "checkpoint.pt").unlink(missing_ok=True)
    Path(spec["result"]).write_text(json.dumps(result, indent=2) + "\n")


def _kb(n_bytes: int | None) -> int | None:
    return None if n_bytes is None else n_bytes // 1024


def step_seconds(log_file: Path, batch_size: int) -> float | None:
    """Steady-state seconds per training step from a run's ``log.jsonl`` (``images_per_s`` of each
    logged interval), leaving out the first interval (warm-up) when there are several."""
    try:
        lines = [json.loads(ln) for ln in log_file.read_text().splitlines() if ln.strip()]
    except (OSError, ValueError):
        return None
    intervals, prev = [], 0
    for d in lines:
        if d.get("images_per_s"):
            n = d["step"] - prev
            intervals.append((n, n * batch_size / d["images_per_s"]))
        prev = d.get("step", prev)
    if len(intervals) > 1:
        intervals = intervals[1:]
    steps = sum(n for n, _ in intervals)
    return sum(t for _, t in intervals) / steps if steps else None


def run_one(cfg: "TrainConfig", *, inputs: Path | None, fake: Path | None, log_path: Path, isolate: bool = True,
            threads: int | None = None, keep_checkpoints: bool = False) -> dict:
    """Train ``cfg`` (in a subprocess when ``isolate``) and translate ``inputs`` into ``fake`` (none
    when ``inputs`` is None). Returns the child's timings plus ``peak_rss_mb`` (NaN without
    ``isolate``) and ``process_seconds`` (wall time of the whole child)."""
    run_dir = Path(option(cfg, "runs")) / option(cfg, "name")
    spec_dir = log_path.parent
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec_path = spec_dir / f"{option(cfg, 'name')}.spec.json"
    result_path = spec_dir / f"{option(cfg, 'name')}.result.json"
    spec = json.loads(json.dumps({"config": cfg.to_dict(), "inputs": inputs and str(inputs), "fake": fake and str(fake),
                                  "result": str(result_path), "threads": threads, "keep_checkpoints": keep_checkpoints}))
    if result_path.exists() and spec_path.exists() and json.loads(spec_path.read_text()) == spec \
            and (run_dir / "generator.safetensors").exists() and (fake is None or fake.is_dir()):
        return {**json.loads(result_path.read_text()), "reused": True}
    for path in (run_dir, fake):
        if path is not None and path.exists():
            shutil.rmtree(path)
    result_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    t0 = time.perf_counter()
    if isolate:
        with open(log_path, "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "lab.runner", str(spec_path)], stdout=log,
                                    stderr=subprocess.STDOUT, cwd=str(ROOT), env=child_env(threads))
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0 or not result_path.exists():
            tail = log_path.read_text()[-2000:] if log_path.exists() else ""
            raise RuntimeError(f"training {option(cfg, 'name')} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
        result = json.loads(result_path.read_text())
        if result.get("vmhwm_kb"):
            peak_mb = result["vmhwm_kb"] / 1024
        else:  # no /proc: ru_maxrss (bytes on macOS), which may include the parent's RSS copied at fork
            peak_mb = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
    else:  # in this process (tests): no separate peak memory
        worker(str(spec_path))
        peak_mb = float("nan")
    result = json.loads(result_path.read_text())
    result.update({"peak_rss_mb": peak_mb, "process_seconds": time.perf_counter() - t0})
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def baseline_rss_mb() -> float:
    """VmHWM of a fresh process that imports torch and sesim's training code (the floor of every run)."""
    code = ("import torch, sesim.train, sesim.translate; from pathlib import Path; "
            "print(next(int(l.split()[1]) for l in Path('/proc/self/status').read_text().splitlines() "
            "if l.startswith('VmHWM:')))")
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=300,
                             env=child_env())
        return int(res.stdout.strip()) / 1024
    except (OSError, ValueError, subprocess.SubprocessError):
        return float("nan")


RESULT = "RESULT "


def send_result(result: dict) -> None:
    """In a child started by :func:`child_result`: hand ``result`` (JSON-able) to the parent."""
    print(RESULT + json.dumps(result), flush=True)


def child_result(args: list[str], what: str) -> dict:
    """Run ``python ARGS`` in a fresh process (so that its peak memory is its own) and return what it
    handed over with :func:`send_result`; ``what`` names the child in the error of a failed one."""
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len(RESULT):])


def backbone_record(run_dir: Path) -> dict | None:
    """What a finished run's ``config.json`` recorded about its structure backbone (None: no feature network)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("resolved", {}).get("backbone") or None


if __name__ == "__main__":
    worker(sys.argv[1])
