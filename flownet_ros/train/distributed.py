"""torchrun / single-process environment: rank, world size, device, process group.

The same code runs as ``python -m flownet_ros.train`` (one process, no process group) and under
``torchrun --nproc_per_node N -m flownet_ros.train`` (env RANK / WORLD_SIZE / LOCAL_RANK set by
torchrun): NCCL when each rank has a GPU, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List

import torch
import torch.distributed as dist


@dataclass
class DistEnv:
    """The place of this process in the run: rank, world size, device, whether a process group exists."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialized: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.initialized and self.world_size > 1


def setup(device: str = "auto") -> DistEnv:
    """Read torchrun's environment, pick the device and initialise the process group if launched by it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but CUDA is not available")
    if use_cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    initialized = False
    if "RANK" in os.environ and "MASTER_ADDR" in os.environ and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo",
                                device_id=dev if use_cuda else None)
        initialized = True
    elif dist.is_initialized():
        initialized = True
    return DistEnv(rank, world, local_rank, dev, initialized)


def cleanup(env: DistEnv) -> None:
    if env.initialized and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(env: DistEnv, values: List[float]) -> List[float]:
    """Sum a list of floats over all ranks (identity in a single process)."""
    if not env.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_rank(env: DistEnv, flag: bool) -> bool:
    """True on every rank when ``flag`` is True on at least one (keeps stop decisions in lockstep)."""
    if not env.distributed:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_objects(env: DistEnv, obj: Any) -> List[Any]:
    """Every rank's ``obj`` in rank order (a one-element list in a single process)."""
    if not env.distributed:
        return [obj]
    out: List[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()
