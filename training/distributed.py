"""``torchrun`` DistributedDataParallel: process-group setup from the environment, rank helpers.

``torchrun --nproc_per_node=N -m training.cli train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK /
MASTER_ADDR / MASTER_PORT; :func:`init_distributed` reads them and picks NCCL on CUDA, gloo on CPU.
Without those variables everything runs as a single process (``DistInfo()``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "barrier", "cleanup_distributed", "init_distributed"]


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


def init_distributed(device: str = "cpu", timeout_s: float | None = None) -> DistInfo:
    """Initialise the default process group if launched by torchrun (``WORLD_SIZE`` > 1).

    ``timeout_s`` bounds every collective, barriers included (torch's default otherwise: 30 min for gloo);
    work whose ranks may finish far apart (a sharded evaluation) raises it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        timeout = None if timeout_s is None else timedelta(seconds=timeout_s)  # None: torch's default
        dist.init_process_group(backend=backend, rank=rank, world_size=world, timeout=timeout)
    return DistInfo(rank, world, local)


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def cleanup_distributed(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
