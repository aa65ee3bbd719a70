"""Running unchanged under `torchrun --nproc_per_node=N`: read torchrun's environment, and only rank 0 writes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: torch.device) -> World:
    """Join torchrun's process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on the CPU).

    On CUDA this rank's GPU becomes the current device first: NCCL's object collectives (`all_gather_object`,
    `barrier`) run on the current device, which would otherwise be cuda:0 for every rank. `device_id` binds the
    group to it as well."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group(backend="nccl", device_id=device)
        else:
            dist.init_process_group(backend="gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def gather_objects(world: World, obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (a list of one outside torchrun)."""
    if not world.distributed:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(world: World, obj: Any) -> Any:
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(world: World, flags: list[bool], device: torch.device) -> list[bool]:
    """Element-wise OR of per-rank flags (stop requested, non-finite loss), so all ranks act together."""
    if not world.distributed:
        return flags
    t = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]
