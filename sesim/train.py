"""The training loop: run folders, schedules, checkpoints, logs, samples, resume.

A run folder holds::

    config.json            resolved configuration (TrainConfig)
    generator.safetensors  latest generator weights, all translate needs
    checkpoint.pt          full resume state: networks, optimisers, schedulers, RNGs, pool, step
    log.jsonl              one JSON line per logged step
    tb/                    TensorBoard events
    samples/step_*.png     sample grids (test inputs | translations)
    snapshots/             generator weights every --snapshot-every steps (sesim.snapshots)
    index.html             the page that shows them

Both weight files are written atomically. Resuming restores everything, and the data stream is
a pure function of (seed, step), so an interrupted-and-resumed run computes exactly what an
uninterrupted one would (on the same device and thread count).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from . import __version__, speedups
from .run import Run
from .runtime import default_workers, resolve_device, seed_everything
from .checkpoint import (
    CONFIG_FILE, STATE_FILE, RunFileError, capture_rng, generator_file, load_generator_weights, load_state,
    remove_stale_temp_files, restore_rng, save_generator, save_state, use_previous_state, write_text_atomic,
)
from .config import TrainConfig
from .data.images import list_images
from .distributed import DistInfo, broadcast_object, sync_gradients_before_step, synchronize_batch_norm, teardown
from .distributed import setup as setup_distributed
from .data.unpaired import UnpairedImageDataset, domain_dirs, load_fixed_images, make_loader
from .methods import Method, NonFiniteLossError, build_method
from .nets.backbones import backbone_record, record_mismatch
from .viz.grid import image_grid
from .viz.page import write_run_index

log = logging.getLogger("sesim")


class TrainingError(RuntimeError):
    """Training stopped for a reason the user must act on (message says what to do)."""


def new_run_dir(cfg: TrainConfig) -> Path:
    """``runs/<name>`` (refusing to reuse an existing folder) or the next ``runs/NNNNN-<label>``."""
    runs = Path(cfg.run.runs)
    if cfg.run.name:
        path = runs / cfg.run.name
        if path.exists() and any(path.iterdir()):
            raise TrainingError(f"run folder {path} already exists; continue it with `sesim train --resume {path}` "
                                "or choose another --name")
    else:
        source = cfg.data.data or cfg.data.dir_a or "run"
        label = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(source).resolve().name or "run")
        numbers = [int(p.name[:5]) for p in runs.glob("[0-9][0-9][0-9][0-9][0-9]-*")] if runs.exists() else []
        path = runs / f"{max(numbers, default=-1) + 1:05d}-{label}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sample_inputs(cfg: TrainConfig) -> list[torch.Tensor]:
    """Fixed images shown in sample grids: testA (or trainA) resized to the crop size
    (unreadable files skipped with ``--skip-unreadable``, as everywhere images are read)."""
    try:
        folder = domain_dirs(cfg.data, "test")[0]
        list_images(folder)
    except (FileNotFoundError, ValueError):  # no usable testA: show training images
        folder = domain_dirs(cfg.data, "train")[0]
    return load_fixed_images(folder, size=cfg.data.size, channels=cfg.data.channels, limit=cfg.run.num_samples,
                             skip_unreadable=cfg.data.skip_unreadable)


def record_backbone(cfg: TrainConfig, method: Method, *, resume: bool = False) -> None:
    """Write what the content loss's feature network resolved to into ``cfg`` (saved as config.json):
    concrete ``backbone`` / ``backbone_weights``, and ``cfg.resolved["backbone"]`` with the
    weight file and its SHA-256. A resumed run must find the same network it was trained with."""
    net = method.feature_backbone()
    if net is None:
        return
    if resume:
        diff = record_mismatch(cfg.resolved.get("backbone"), net)
        if diff:
            raise TrainingError(f"the run's structure backbone has changed since it was trained ({diff}); resume "
                                "it on a machine with the same weights file")
    record = backbone_record(net)
    cfg.resolved["backbone"] = record
    cfg.structure.backbone, cfg.structure.backbone_weights = record["backbone"], record["weights"]


def lr_factor(step: int, total: int, decay_start: float) -> float:
    """Constant, then linear decay to 0 over the last ``1 - decay_start`` of the steps."""
    start = int(total * decay_start)
    if step < start or total <= start:
        return 1.0
    return max(0.0, (total - step) / (total - start))


def build_data(cfg: TrainConfig) -> tuple[Any, list[torch.Tensor]]:
    """The training dataset and the fixed sample-grid inputs of ``cfg`` (every image file checked)."""
    if cfg.run.batch_size < 1 or cfg.run.steps < 0:
        raise TrainingError("--batch-size must be >= 1 and --steps >= 0")
    if cfg.data.size % 4:
        raise TrainingError(f"--size {cfg.data.size} must be a multiple of 4 (the generator's stride)")
    if cfg.mode == "exemplar":  # paired conditions/photos + exemplars (sesim/data/paired.py)
        from .data.paired import exemplar_data

        if cfg.run.eval_every > 0:
            raise TrainingError("--eval-every scores translations without exemplars; exemplar runs are scored by "
                                "bench/exemplar.py (set --eval-every 0)")

        return exemplar_data(cfg, domain_dirs(cfg.data))
    if cfg.mode == "single-image":  # one image per domain, random zoomed patches
        from .data.single_image import SingleImageError, single_image_dataset, single_image_samples

        try:
            return single_image_dataset(cfg), single_image_samples(cfg)
        except SingleImageError as err:
            raise TrainingError(str(err)) from None
    dir_a, dir_b = domain_dirs(cfg.data)
    dataset = UnpairedImageDataset(
        dir_a, dir_b, size=cfg.data.size, load_size=cfg.load_size, preprocess=cfg.data.preprocess,
        flip=cfg.data.flip, channels=cfg.data.channels, seed=cfg.run.seed, skip_unreadable=cfg.data.skip_unreadable,
    )
    return dataset, sample_inputs(cfg)


def preflight(cfg: TrainConfig) -> None:
    """Under torchrun, rank 0 checks what every rank is about to need — data folders and files,
    pretrained weights — before the process group exists, so a missing file is one message from
    rank 0 (the other ranks, still waiting to join, are stopped by torchrun) instead of one per rank.
    Raises what :class:`Trainer` would raise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or int(os.environ.get("RANK", "0")) != 0:
        return
    build_data(cfg)
    build_method(cfg)


class Trainer:
    """Owns a run folder and trains a :class:`~sesim.methods.Method` in it."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, *, resume: bool = False, progress: bool = True,
                 dist: DistInfo = DistInfo()) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.dist = dist
        self.main = dist.is_main  # only the main process writes to the run folder
        self.progress = progress and self.main
        self.device = resolve_device(cfg.run.device, dist.local_rank)
        self.dataset, self.samples = build_data(cfg)
        seed_everything(cfg.run.seed)
        self.method: Method = build_method(cfg).to(self.device)
        record_backbone(cfg, self.method, resume=resume)
        for section, values in self.method.resolved_options().items():
            cfg.update(section, values)
        if dist.enabled:
            synchronize_batch_norm(self.method, self.device)
            for opt in self.method.optimizers.values():
                sync_gradients_before_step(opt, dist.world_size)
        if cfg.run.channels_last:
            speedups.to_channels_last(self.method)
        if cfg.run.compile:
            speedups.compile_networks(self.method, cfg.run.compile_backend)
        self.schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(opt, self._factor) for name, opt in self.method.optimizers.items()
        }
        self.step = 0
        self.last_logs: dict[str, Any] = {}
        if self.main:
            for path in remove_stale_temp_files(run_dir):
                log.info("removed %s, left by an interrupted write", path)
        if resume:
            self._load()
        self._stop_signal: int | None = None
        self.scorer = self._make_scorer() if cfg.run.eval_every > 0 and self.main else None

    def _factor(self, step: int) -> float:
        return lr_factor(step, self.cfg.run.steps, self.cfg.optim.decay_start)

    # -- persistence -----------------------------------------------------------------------
    def save(self) -> None:
        """Write the resume state, then the generator weights, both atomically (main process only)."""
        if not self.main:
            return
        state = {
            "step": self.step,
            "version": __version__,
            "method": self.method.trainable_state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.method.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "rng": capture_rng(),
            "extra": self.method.extra_state(),
            "last_logs": self.last_logs,
        }
        save_state(self.run_dir / STATE_FILE, state)
        for direction, generator in self.method.generators().items():
            save_generator(self.run_dir / generator_file(direction), generator, self._weights_meta(direction))

    def _weights_meta(self, direction: str | None = None) -> dict[str, Any]:
        """What is saved next to generator weights: step, version, the run's config (and direction)."""
        meta = {"step": self.step, "sesim_version": __version__, "config": self.cfg.to_dict()}
        return meta if direction is None else {**meta, "direction": direction}

    def save_snapshot(self) -> None:
        """Keep the generator weights of this step in ``snapshots/`` (main process; see :mod:`sesim.snapshots`)."""
        if self.main:
            from .snapshots import write_snapshot

            write_snapshot(self.run_dir, self.step, self.method.generators(), self._weights_meta())

    def _load(self) -> None:
        path = self.run_dir / STATE_FILE
        if not path.is_file():
            raise TrainingError(f"{path} not found: the run never reached its first checkpoint, so there is nothing "
                                f"to resume; delete {self.run_dir} and start the run again")
        state = load_state(path)
        self.method.load_trainable_state_dict(state["method"])
        for name, opt in self.method.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        factor = self._factor(state["step"])  # the total step count may have changed on resume
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
            sched.lr_lambdas = [self._factor] * len(sched.lr_lambdas)  # the lambda is code, not state
            for group, base in zip(sched.optimizer.param_groups, sched.base_lrs):
                group["lr"] = base * factor
        self.method.load_extra_state(state["extra"])
        restore_rng(state["rng"])
        self.step = state["step"]
        self.last_logs = state.get("last_logs", {})
        if self.main:
            self._repair_generators()
        # log lines past the checkpoint came from steps that are about to be redone
        log_file = self.run_dir / "log.jsonl"
        if log_file.exists():
            kept = [ln for ln in log_file.read_text().splitlines() if _logged_step(ln) <= self.step]
            write_text_atomic(log_file, "".join(ln + "\n" for ln in kept))

    def _repair_generators(self) -> None:
        """Rewrite generator weights that are missing or damaged from the state just loaded."""
        for direction, generator in self.method.generators().items():
            path = self.run_dir / generator_file(direction)
            try:
                load_generator_weights(path)
            except (FileNotFoundError, RunFileError) as err:
                log.warning("%s; rewriting it from %s (step %d)", err.args[0].split(";")[0], STATE_FILE, self.step)
                save_generator(path, generator, self._weights_meta(direction))

    # -- outputs ---------------------------------------------------------------------------
    def write_samples(self, writer) -> None:
        if not self.samples or not self.main:
            return
        x = torch.stack(self.samples).to(self.device)
        self.method.eval()
        titles, columns = self.method.sample_columns(x)  # one "translation" column; one per style code (multimodal)
        self.method.train()
        sources = self.method.sample_sources(x).cpu()
        grid = image_grid([[a, *(c[i].cpu() for c in columns)] for i, a in enumerate(sources)],
                          titles=["input", *titles], scale=max(1, 128 // self.cfg.data.size))
        path = self.run_dir / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(exist_ok=True)
        grid.save(path)
        if writer is not None:
            writer.add_image("samples", np.asarray(grid), self.step, dataformats="HWC")
        write_run_index(self.run_dir, self.cfg.to_dict(), self.last_logs)

    def _make_scorer(self):
        """Test-set scorer for ``--eval-every`` (see :mod:`sesim.metrics.run_eval`)."""
        from .metrics.run_eval import TestSetScorer

        try:
            test_a, test_b = domain_dirs(self.cfg.data, "test")
        except (FileNotFoundError, ValueError) as err:
            raise TrainingError(f"--eval-every needs testA/ and testB/ in --data ({err})") from err
        return TestSetScorer(test_a, test_b, size=self.cfg.data.size, channels=self.cfg.data.channels,
                             max_images=self.cfg.run.eval_images, device=self.device,
                             skip_unreadable=self.cfg.data.skip_unreadable)

    def evaluate(self, writer) -> dict[str, float]:
        """Score the test set now; log to log.jsonl / TensorBoard and update metrics.json."""
        from .metrics.run_eval import update_metrics_file

        values = self.scorer.score(self.method)
        with open(self.run_dir / "log.jsonl", "a") as fh:
            fh.write(json.dumps({"step": self.step, **{f"eval_{k}": v for k, v in values.items()}}) + "\n")
        if writer is not None:
            for k, v in values.items():
                writer.add_scalar(f"eval/{k}", v, self.step)
        update_metrics_file(self.run_dir, self.step, values, self.scorer.extractor.description)
        return values

    def log_step(self, losses: dict[str, float], images_per_s: float, writer, bar) -> None:
        """Log this step's losses, learning rate and speed: log.jsonl, TensorBoard, the progress bar."""
        self.last_logs = {"step": self.step, **losses, "lr": self._factor(self.step) * self.cfg.optim.lr,
                          "images_per_s": images_per_s}
        with open(self.run_dir / "log.jsonl", "a") as fh:
            fh.write(json.dumps(self.last_logs) + "\n")
        for k, v in losses.items():
            writer.add_scalar(f"loss/{k}", v, self.step)
        writer.add_scalar("lr", self.last_logs["lr"], self.step)
        bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items() if not k.startswith("G_")} |
                        {"img/s": f"{images_per_s:.1f}"})

    # -- the loop --------------------------------------------------------------------------
    def _on_signal(self, signum, _frame) -> None:
        self._stop_signal = signum

    def _stopped(self, why: str) -> TrainingError:
        """Save a checkpoint now; the error that says where training stopped and how to continue."""
        self.save()
        return TrainingError(f"{why} at step {self.step}; checkpoint saved, continue with "
                             f"`sesim train --resume {self.run_dir}`")

    def run(self, stop_at: int | None = None) -> Path:
        """Train until ``cfg.run.steps`` (or ``stop_at``); returns the run folder."""
        cfg, r = self.cfg, self.cfg.run
        end = min(r.steps, stop_at) if stop_at is not None else r.steps
        workers = default_workers() if cfg.data.workers < 0 else cfg.data.workers
        loader = make_loader(self.dataset, batch_size=r.batch_size, seed=r.seed, start_step=self.step,
                             workers=workers, pin_memory=self.device.type == "cuda",
                             rank=self.dist.rank, world_size=self.dist.world_size)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step or None) if self.main else None
        in_main_thread = threading.current_thread() is threading.main_thread()
        old_handler = signal.signal(signal.SIGTERM, self._on_signal) if in_main_thread else None
        self.method.train()
        bar = tqdm(total=end, initial=self.step, disable=not self.progress, dynamic_ncols=True, unit="step")
        t_last, n_last = time.perf_counter(), 0
        try:
            batches = iter(loader)
            while self.step < end:
                batch = next(batches)
                batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
                if cfg.run.channels_last:
                    batch = speedups.batch_to_channels_last(batch)
                try:
                    with speedups.autocast(self.device, cfg.run.precision):
                        losses = self.method.train_step(batch)
                except NonFiniteLossError as err:
                    raise TrainingError(
                        f"step {self.step + 1}: {err}. Nothing was saved from this step; the last checkpoint "
                        f"({self.run_dir / STATE_FILE}) is intact. Try a lower --lr, check the data, and resume."
                    ) from err
                for sched in self.schedulers.values():
                    sched.step()
                self.step += 1
                n_last += r.batch_size * self.dist.world_size
                bar.update(1)
                if self.main and (self.step % r.log_every == 0 or self.step == end):
                    now = time.perf_counter()
                    self.log_step(losses, n_last / max(now - t_last, 1e-9), writer, bar)
                    t_last, n_last = now, 0
                if self.step % r.sample_every == 0 or self.step == end:
                    self.write_samples(writer)
                if self.scorer is not None and (self.step % r.eval_every == 0 or self.step == end):
                    self.evaluate(writer)
                if r.snapshot_every > 0 and (self.step % r.snapshot_every == 0 or self.step == r.steps):
                    self.save_snapshot()
                if self.step % r.checkpoint_every == 0 or self.step == end:
                    self.save()
                if self._stop_signal is not None:
                    raise self._stopped(f"stopped by signal {self._stop_signal}")
        except KeyboardInterrupt:
            raise self._stopped("interrupted") from None
        finally:
            bar.close()
            if writer is not None:
                writer.close()
            if old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)
        return self.run_dir


def _logged_step(line: str) -> float:
    """Step of a ``log.jsonl`` line; a torn last line (killed mid-write) counts as infinitely late."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


def train(cfg: TrainConfig, *, progress: bool = True, stop_at: int | None = None) -> Path:
    """Start a new run from ``cfg``; returns its folder. Under torchrun, every process calls this."""
    preflight(cfg)
    dist = setup_distributed(resolve_device(cfg.run.device).type)
    try:
        run_dir = broadcast_object(new_run_dir(cfg) if dist.is_main else None, dist)
        try:
            trainer = Trainer(cfg, run_dir, progress=progress, dist=dist)
        except Exception:
            if dist.is_main and not any(run_dir.iterdir()):
                run_dir.rmdir()  # nothing was written: do not leave an empty run behind
            raise
        if dist.is_main:
            cfg.save(run_dir / CONFIG_FILE)
            log.info("run folder: %s", run_dir)
        return trainer.run(stop_at=stop_at)
    finally:
        teardown(dist)


def resume(run_dir: str | Path, *, steps: int | None = None, progress: bool = True,
           stop_at: int | None = None, overrides: dict[str, Any] | None = None, from_previous: bool = False) -> Path:
    """Continue the run in ``run_dir`` from its last checkpoint (optionally to a new total).

    ``from_previous``: continue from ``checkpoint.prev.pt`` (when ``checkpoint.pt`` is damaged;
    the damaged file is kept as ``checkpoint.damaged.pt``)."""
    run_dir = Path(run_dir)
    cfg = Run(run_dir).config
    if from_previous and int(os.environ.get("RANK", "0")) == 0:
        step = use_previous_state(run_dir)
        log.info("using the previous checkpoint (step %d); the damaged one is kept as checkpoint.damaged.pt", step)
    for key, value in (overrides or {}).items():
        cfg.set_flat(key, value)
    if steps is not None:
        cfg.run.steps = steps
    preflight(cfg)
    dist = setup_distributed(resolve_device(cfg.run.device).type)
    try:
        trainer = Trainer(cfg, run_dir, resume=True, progress=progress, dist=dist)
        if trainer.step >= cfg.run.steps:
            log.info("run %s is already at step %d of %d", run_dir, trainer.step, cfg.run.steps)
        elif dist.is_main:
            log.info("resuming %s from step %d of %d", run_dir, trainer.step, cfg.run.steps)
        if dist.is_main:
            cfg.save(run_dir / CONFIG_FILE)
        return trainer.run(stop_at=stop_at)
    finally:
        teardown(dist)
