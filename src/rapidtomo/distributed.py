"""Work split over processes launched by torchrun (``RANK``/``WORLD_SIZE`` in the environment).

The approximant's loss and gradient are sums over angles: each process takes a contiguous block
of angles (:meth:`Processes.share`), sums its angles' terms in float64, and :meth:`Processes.sum`
adds the blocks with one ``all_reduce`` (gloo on the CPU, NCCL on CUDA). Every process receives
the same sum, so the processes stay in step without broadcasting the unknown. Without torchrun
(``WORLD_SIZE`` unset or 1) everything here is a no-op: one process holds every angle.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist


def env_rank() -> int:
    """This process's rank under torchrun (``RANK``), 0 without it."""
    return int(os.environ.get("RANK", "0"))


def env_world() -> int:
    """The number of processes under torchrun (``WORLD_SIZE``), 1 without it."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@dataclass(frozen=True)
class Processes:
    """The processes that share one computation: this one's ``rank`` among ``world``."""

    rank: int = 0
    world: int = 1

    @property
    def root(self) -> bool:
        """Rank 0: the process that shows progress and writes files."""
        return self.rank == 0

    def share(self, n: int) -> range:
        """This rank's contiguous block of ``n`` items (the first ``n % world`` ranks get one more)."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return range(start, start + base + (self.rank < extra))

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum of ``t`` over the processes, identical on every rank (in place; float64 advised)."""
        if self.world > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t


@contextlib.contextmanager
def processes(device: torch.device) -> Iterator[tuple[Processes, torch.device]]:
    """The processes of this run and this process's device, with the process group set up.

    Under torchrun (``WORLD_SIZE > 1``) the group is initialised here unless it already is (gloo
    for a CPU ``device``, NCCL for CUDA, where each process takes ``cuda:LOCAL_RANK``) and torn
    down on exit if it was initialised here. Otherwise yields ``Processes()`` and ``device``.
    """
    if env_world() <= 1 and not dist.is_initialized():
        yield Processes(), device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    inited = not dist.is_initialized()
    if inited:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield Processes(dist.get_rank(), dist.get_world_size()), device
    finally:
        if inited:
            dist.destroy_process_group()
