"""Data parallelism with PyTorch's own engine: torchrun starts the processes, DistributedDataParallel
all-reduces the gradients, and this module holds the few collective steps the training loop needs.

One process (no torchrun) is world size 1: every function here is then a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import timedelta

import torch
import torch.distributed as dist

from seq2seq.errors import UserError

# How long a rank waits in a collective before it fails: the others wait for rank 0 while it alone
# trains the tokenizer, validates or saves, which on a large corpus can take well over NCCL's
# default of 10 minutes.
TIMEOUT = timedelta(hours=1)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    # The CPU (gloo) group that rank 0's decisions travel through, so that no rank waits for its
    # GPU to learn them (an NCCL broadcast would); None: the default group.
    control: dist.ProcessGroup | None = field(default=None, compare=False, repr=False)

    @property
    def main(self) -> bool:
        """Rank 0: the only process that writes the run dir, validates and logs."""
        return self.rank == 0

    def shard(self, batches: list) -> list:
        """This rank's disjoint share of an epoch's batches: every size-th one, all ranks the
        same count (the last size-1 batches at most are left for the next epoch's shuffle)."""
        usable = len(batches) // self.size * self.size
        return batches[self.rank:usable:self.size]

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """t summed over all ranks, on the device (queued, no wait)."""
        if self.size > 1:
            dist.all_reduce(t)
        return t

    def from_main(self, obj):
        """Rank 0's value of obj, on every rank (through the control group: no wait for a GPU)."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def gather(self, obj) -> list | None:
        """obj of every rank, in rank order, on rank 0; None on the others."""
        if self.size == 1:
            return [obj]
        out = [None] * self.size if self.main else None
        dist.gather_object(obj, out, dst=0, group=self.control)
        return out

    def run_on_main(self, fn):
        """fn() on rank 0 only; its result on every rank, or its UserError raised on every rank
        (rather than rank 0 failing alone while the others wait for it)."""
        result, failure = None, None
        if self.main:
            try:
                result = fn()
            except UserError as e:
                failure = str(e)
        result, failure = self.from_main((result, failure))
        if failure:
            raise UserError(failure)
        return result


def torchrun_world() -> World:
    """This process's place as torchrun's environment gives it; one process outside torchrun."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size == 1:
            return World()
        return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    except (KeyError, ValueError):
        raise UserError("WORLD_SIZE, RANK and LOCAL_RANK must be integers, as torchrun sets them: "
                        "start distributed runs with torchrun") from None


def init_world(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group torchrun set up (NCCL on CUDA, gloo on the CPU), if any, and a
    gloo group beside it for rank 0's decisions; both wait up to TIMEOUT."""
    world = torchrun_world()
    if world.size == 1:
        return world, device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return replace(world, control=dist.new_group(backend="gloo", timeout=TIMEOUT)), device


def close_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
