"""Data parallelism across processes started by ``torchrun`` (NCCL on GPUs, gloo on CPU).

Every rank walks the same global batch order and computes its loss on its shard divided by the
*global* number of structures / atoms; summing the gradients over ranks then gives exactly the
gradient of the single-process loss. Gradients are summed by one flat all-reduce per step (this
also covers the double backward of force training and parameters that a step leaves unused,
e.g. the property head on a force-field step of MFT, which ``DistributedDataParallel``'s hooks
handle poorly).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def main_rank_lock(target: str | Path, command: str) -> Iterator[bool]:
    """The artifact lock of ``target``, held by the main rank (the only one that writes);
    yields whether this process holds it."""
    from atomcollapse.process import artifact_lock

    if int(os.environ.get("RANK", "0")) != 0:
        yield False
        return
    with artifact_lock(target, command):
        yield True


def init(device: torch.device) -> DistInfo:
    """Join the process group described by torchrun's environment (one process: no-op)."""
    if not launched_by_torchrun():
        return DistInfo()
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def sum_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Sum gradients over ranks; a parameter without a gradient on every rank keeps ``None``."""
    if not info.enabled:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    device = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    live = [p for p, h in zip(params, has.tolist(), strict=True) if h > 0]
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if not live:
        return
    grads = [p.grad for p in live if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    i = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[i : i + n].view_as(g))
        i += n


def all_gather(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
