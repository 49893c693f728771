"""Several processes, one model: PyTorch DistributedDataParallel set up from torchrun's environment.

`torchrun --nproc-per-node N -m dcgan train ...` (or `dcgan train --nproc N`,
which runs that) starts N processes; each calls `setup`, which joins the
process group (NCCL on GPUs, gloo on CPUs) when WORLD_SIZE > 1 and is a no-op
otherwise. Rank 0 alone writes samples, logs and checkpoints; every rank trains
on its own shard of each epoch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "setup", "all_mean", "any_true", "broadcast_from_main", "barrier", "cleanup"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank, the number of processes, its GPU index on this node."""

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
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def all_mean(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of `tensor` over all processes (in place), or `tensor` itself with one process."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= info.world_size
    return tensor


def any_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every process when it is true on any: so all of them stop at the same iteration."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_from_main(value, info: DistInfo):
    """Rank 0's `value` (any picklable object) on every process."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
