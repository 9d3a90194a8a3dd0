"""Single-process and multi-process (torchrun) execution for the trainers.

``torchrun --nproc_per_node=N -m compress.train CONFIG`` starts N processes with RANK /
WORLD_SIZE / LOCAL_RANK in their environment; `setup` joins them into a process group (NCCL on
GPUs, gloo on CPU) and picks the device. Without those variables everything runs in one
process and the helpers below degrade to no-ops, so recipes and the engine never branch on it.

Only rank 0 writes files, logs and progress bars (`DistContext.is_main`). Models are wrapped in
DistributedDataParallel (`wrap`) so gradients are averaged across ranks: with per-rank batch b
on N ranks each step equals one step with batch N*b for losses that are means over the batch.
"""
import os
from dataclasses import dataclass
from typing import Any, List

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """"auto" -> the local GPU when CUDA is available, else the CPU; "cpu"/"cuda"/"cuda:1" as given."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device = \"cuda\" but no CUDA GPU is visible; use device = \"cpu\" or \"auto\"")
        return torch.device("cuda", local_rank)
    return torch.device(name)


def setup(device: str = "auto") -> DistContext:
    """Join the torchrun process group when launched by torchrun, else a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch_device = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if torch_device.type == "cuda":
            torch.cuda.set_device(torch_device)
        dist.init_process_group(backend="nccl" if torch_device.type == "cuda" else "gloo")
    return DistContext(rank, world_size, local_rank, torch_device)


def teardown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, ctx: DistContext) -> nn.Module:
    """``module`` in DistributedDataParallel when running on several ranks, else as it is.

    Each wrapper must see exactly one forward call per backward pass (compose several calls
    into one module, see `MultiCall`), and modules used without gradients (the discriminator
    during the generator step) are called unwrapped."""
    if not ctx.distributed:
        return module
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # buffers (SPADE's batch-norm statistics) follow rank 0 at every forward (DDP's default)
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


class MultiCall(nn.Module):
    """``MultiCall(D)(x1, x2)`` -> ``[D(x1), D(x2)]``: several calls as one forward, so that a
    DDP-wrapped discriminator judges fake and real separately (as upstream does) yet sees a
    single forward before its backward."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *inputs: torch.Tensor) -> List[Any]:
        return [self.module(x) for x in inputs]


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when ``flag`` is true on any rank (e.g. a stop signal)."""
    if not ctx.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def gather_objects(obj: Any, ctx: DistContext) -> List[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (small Python objects, e.g. RNG
    states; these stay inside the job and are never written as pickles)."""
    if not ctx.distributed:
        return [obj]
    out: List[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def mean_over_ranks(values: dict, ctx: DistContext) -> dict:
    """Average a dict of floats over ranks (for logging only)."""
    if not ctx.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], device=ctx.device)
    dist.all_reduce(tensor)
    tensor /= ctx.world_size
    return dict(zip(keys, tensor.tolist()))
