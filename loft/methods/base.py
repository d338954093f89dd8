"""What every method module shares: the built `Method`, the `MethodContext` it is built in,
and small helpers on targeted layers (shapes, the rank check, the task head's parameters)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

from loft.core.errors import ConfigError


@dataclass
class Method:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    trainable_params: int
    info: dict = field(default_factory=dict)
    after_step: Callable[[int], None] | None = None  # called with the step number after optimizer.step()
    train_model: torch.nn.Module | None = None       # `model` as wrapped for DDP/FSDP (same object when not)


@dataclass
class MethodContext:
    """What a method may need beyond its config: the rank, the trainer's optimizer settings
    (lr, betas, eps, weight_decay), the model's default targets, the run's length, and a
    way to draw calibration batches (for gradient-informed initialisations)."""

    rank: int
    hp: dict                      # lr, betas, eps, weight_decay, and head_lr (None = lr)
    default_targets: list[str]
    head_modules: list[str] = field(default_factory=list)  # trained in full, at head_lr
    total_steps: int | None = None
    calibration_batches: Callable[[int], Iterable] | None = None  # n -> n training batches
    loss: Callable | None = None                                   # (model, batch) -> scalar
    adapter_path: Path | None = None  # model.adapter: load this saved adapter instead of a fresh init (loft/adapters.py)


def in_head(name: str, head_modules: list[str]) -> bool:
    """Whether the parameter or module `name` lies inside one of the task head's modules."""
    return any(f".{h}." in f".{name}." for h in head_modules)


def layer_shape(module: torch.nn.Module) -> tuple[int, int] | None:
    """(out, in) of a Linear-like layer, GPT-2's Conv1D included (its weight is in x out)."""
    if isinstance(module, torch.nn.Linear):
        return module.out_features, module.in_features
    if type(module).__name__ == "Conv1D":
        n_in, n_out = module.weight.shape
        return n_out, n_in
    return None


def targeted_layers(model: torch.nn.Module, targets: list[str]) -> dict[str, tuple[int, int]]:
    found = {}
    for name, module in model.named_modules():
        shape = layer_shape(module)
        if shape and any(name == t or name.endswith("." + t) for t in targets):
            found[name] = shape
    return found


def check_rank(model: torch.nn.Module, targets: list[str], rank: int) -> None:
    layers = targeted_layers(model, targets)
    if not layers:
        raise ConfigError(f"no layer matches target_modules={targets}; set method.target_modules to names in this model")
    name, (m, n) = min(layers.items(), key=lambda kv: min(kv[1]))
    if rank > min(m, n):
        raise ConfigError(f"rank={rank} exceeds min(m, n)={min(m, n)} of layer {name} ({m}x{n}); choose rank<={min(m, n)}")


def adapter_misfit(path, err: Exception) -> ConfigError:
    """One line out of a loader's long message (torch lists every mismatched tensor)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    detail = next((line for line in lines if "mismatch" in line), lines[0])
    return ConfigError(f"model.adapter={path} does not fit this model ({detail}); use the model and sizes it was trained with")


def hp_adamw(hp: dict) -> dict:
    """The trainer's AdamW settings as torch.optim.AdamW keywords."""
    return {"lr": hp["lr"], "betas": hp["betas"], "eps": hp["eps"], "weight_decay": hp["weight_decay"]}
