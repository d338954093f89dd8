"""Data-parallel training on an existing engine: `accelerate launch --multi_gpu run.py ...`
on GPUs, `torchrun --nproc_per_node N run.py ...` on CPUs (accelerate's `--cpu` starts one
process only). Either way accelerate's PartialState joins the process group (NCCL on GPUs,
gloo on CPUs); we wrap the model in
torch's DistributedDataParallel, give rank k every world-th micro batch of the global
stream, and let only rank 0 write records, checkpoints and W&B. Gradients are averaged
by DDP, so every rank holds the same gradients and, optimizers being deterministic, the same
optimizer state: LoFT's pairs stay whole on every rank. Under FSDP2 (`wrap`) LoFT's pairs
are sharded by rows of B and columns of A and its state with them (`lora_placement`).
The global batch is
micro_batch_size x accumulation x world_size = trainer.batch_size.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    device: str = "cpu"  # where collectives run (cuda for NCCL)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_world() -> tuple[World, torch.device | None]:
    """The process group we were launched into (size 1 when run directly)."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return World(), None
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes == 1:
        return World(), None
    return World(state.process_index, state.num_processes, str(state.device)), state.device


SHARDING_ENGINES = {"ACCELERATE_USE_FSDP": "fsdp", "ACCELERATE_USE_DEEPSPEED": "deepspeed"}


def sharding_engine() -> str | None:
    """'fsdp' or 'deepspeed' when `accelerate launch --use_fsdp/--use_deepspeed` (or the same
    environment variable under torchrun) asks for parameter sharding; None for plain DDP."""
    return next((name for var, name in SHARDING_ENGINES.items()
                 if os.environ.get(var, "").lower() in ("1", "true")), None)


def wrap(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """DDP by default; FSDP2 (`fully_shard` on every transformer block, then the root) when
    asked. Call before building the optimizer: FSDP replaces parameters by sharded ones."""
    if world.size == 1:
        return model
    engine = sharding_engine()
    if engine is None:
        return torch.nn.parallel.DistributedDataParallel(model)
    if engine == "deepspeed":
        from loft.core.errors import ConfigError

        raise ConfigError("DeepSpeed is not wired into this runner; shard with FSDP (accelerate launch --use_fsdp "
                          "--fsdp_version 2 ...) or use DDP")
    from torch.distributed.fsdp import fully_shard

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    block_names = set(getattr(base, "_no_split_modules", None) or [])
    placement = lora_placement(model)
    for module in model.modules():
        if type(module).__name__ in block_names:
            fully_shard(module, shard_placement_fn=placement)
    fully_shard(model, shard_placement_fn=placement)
    return model


def lora_placement(model: torch.nn.Module):
    """FSDP2 `shard_placement_fn`: LoRA's A (r x n) by columns, everything else by rows.

    B (m x r) sharded by rows and A by columns keep every row of U = B and of V = A^T, and so
    all of LoFT's per-row state, on one rank (loft/optim/sharding.py); it also keeps tiny
    ranks (r = 1 over 8 GPUs) from being padded to the world size."""
    from torch.distributed.tensor import Shard

    from loft.optim import lora_pairs

    world = torch.distributed.get_world_size()
    # FSDP2 shards dim 1 only evenly; an uneven A stays on rows (fine for the baselines, refused by LoFT)
    columns = {id(pair.A) for pair in lora_pairs(model) if pair.A.shape[1] % world == 0}
    return lambda param: Shard(1) if id(param) in columns else None


def supports_sharding(optimizer: torch.optim.Optimizer) -> bool:
    """torch's own optimizers follow DTensor parameters; others must declare `supports_fsdp`
    (work on sharded parameters, and gather their state in state_dict())."""
    return getattr(optimizer, "supports_fsdp", type(optimizer).__module__.startswith("torch.optim"))


def is_fsdp_sharded(model: torch.nn.Module) -> bool:
    """Whether FSDP2 has replaced the model's parameters by DTensor shards (`wrap`)."""
    return any(type(p).__name__ == "DTensor" for p in model.parameters())


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def split_by_rank(stream: Iterator, world: World) -> Iterator:
    """This rank's share of a data stream (not parameter sharding): rank k takes micro batches
    k, k + world, ... of the global stream."""
    for i, item in enumerate(stream):
        if i % world.size == world.rank:
            yield item


def mean_over_ranks(value: float, world: World) -> float:
    if world.size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=world.device)
    torch.distributed.all_reduce(t)
    return t.item() / world.size


@contextmanager
def gradient_sync(model: torch.nn.Module, enabled: bool):
    """Skip the gradient all-reduce on accumulation micro steps (DDP no_sync / FSDP2's switch)."""
    if enabled or not (isinstance(model, torch.nn.parallel.DistributedDataParallel) or is_fsdp_sharded(model)):
        yield
    elif hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        with model.no_sync():
            yield
