"""Multi-process training with ``torchrun`` (one process per GPU, or several CPU processes).

``torchrun --nproc_per_node N -m sesim train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`setup` then joins the process group (NCCL on CUDA, gloo on CPU).

How sesim distributes a step (data parallel, equivalent to DistributedDataParallel's gradient
averaging):

- every rank builds the same networks from the same seed, so they start identical;
- each rank reads its own ``--batch-size`` images (the global stream is dealt out batch by batch),
  so the effective batch is ``N x --batch-size``; the learning rate is not rescaled;
- before every optimiser step, the gradients of that optimiser's parameters are averaged over all
  ranks (an all-reduce in one flat buffer, registered as an optimiser step pre-hook), so every
  rank applies the same update and the networks stay identical. This works for any method
  without wrapping its networks: GAN steps that call a network several times, freeze the
  discriminator, or update heads separately need no special cases;
- all ranks share one RNG stream (same seed), so random query locations and pool decisions agree;
- only rank 0 writes the run folder (config, checkpoints, logs, samples).

Batch statistics: instance norm (the default) has none, so a step of N ranks x batch b equals
one step of batch N*b. With ``--norm batch`` on CUDA, the BatchNorm layers become
``SyncBatchNorm`` (statistics over the whole effective batch, :func:`synchronize_batch_norm`);
PyTorch's SyncBatchNorm does not run on CPU, so CPU ranks normalise over their own images and a
2-rank step differs from a single-process step there (a warning says so).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> DistInfo:
    """Join the process group described by torchrun's environment (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return info


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """All-reduce the gradients of ``params`` (those that have one) into their mean."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def sync_gradients_before_step(optimizer: torch.optim.Optimizer, world_size: int) -> Any:
    """Make ``optimizer.step()`` average gradients over ranks first; returns the hook handle."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return optimizer.register_step_pre_hook(lambda *_: average_gradients(params, world_size))


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def synchronize_batch_norm(module: torch.nn.Module, device: torch.device) -> bool:
    """Turn ``module``'s BatchNorm layers into SyncBatchNorm when several CUDA ranks train.

    In place for every submodule (the parameters are the same objects, so optimisers built
    earlier still hold them; state-dict keys are unchanged). Returns whether anything changed.
    """
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())
    if not has_bn or not dist.is_initialized() or dist.get_world_size() < 2:
        return False
    if device.type != "cuda":
        import logging

        logging.getLogger("sesim").warning(
            "--norm batch with several CPU processes: PyTorch's SyncBatchNorm needs CUDA, so each process "
            "normalises over its own images (batch statistics are not synchronised)")
        return False
    for name, child in list(module.named_children()):
        converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)
    return True
