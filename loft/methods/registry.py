"""The kinds a method config may name, with what each can and cannot do (capability flags).

A method (`conf/method/<name>.yaml`) names one adapter kind (`adapter.kind`: how the model is
wrapped) and one optimizer kind (`optimizer.kind`: what trains it). Each kind is registered
once, next to its code, by one decorator line that states its capabilities:

    @register_optimizer("lora_pro_adamw", needs_lora_pairs=True, shardable=False)
    def lora_pro_adamw(model, params, hp, kwargs): ...

    @register_adapter("loft_orth", calibration=uses_gradient_support)
    def loft_orth(model, cfg, targets, ctx): ...

`build_method` (builder.py) reads the flags, never the kind's name:
- `needs_lora_pairs`: the optimizer steps each LoRA pair (B, A) as a whole, so the adapter
  must have made LoRA pairs (`loft.optim.lora_pairs`), else a ConfigError.
- `shardable`: the optimizer works on FSDP-sharded parameters. False is refused under FSDP or
  DeepSpeed before the model is adapted; a True optimizer must also declare `supports_fsdp`
  (loft.train.checkpoint reads it to gather state), which `refuse_sharding` checks on the object.
- `calibration`: (adapter config) -> bool, whether that config draws calibration batches from
  the task (LoRA-GA's preprocess, LOFT's gradient-informed supports); a task without them is
  refused.
The 4-bit capability is a method's, not a kind's (one PEFT kind holds LoRA and OFT): it is
the `kbit_base` key of the method config, read by `loft.quantization.prepare`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from loft.core.errors import ConfigError


def never(adapter_cfg) -> bool:
    return False


@dataclass(frozen=True)
class AdapterKind:
    """build(model, adapter_cfg, targets, ctx) -> (model, info)."""

    name: str
    build: Callable
    calibration: Callable = never


@dataclass(frozen=True)
class OptimizerKind:
    """build(model, param_groups, hp, kwargs) -> torch.optim.Optimizer."""

    name: str
    build: Callable
    needs_lora_pairs: bool = False
    shardable: bool = True


ADAPTERS: dict[str, AdapterKind] = {}
OPTIMIZERS: dict[str, OptimizerKind] = {}


def _register(table: dict, kind_cls, name: str, flags: dict) -> Callable:
    def add(build: Callable) -> Callable:
        if name in table and table[name].build is not build:
            raise ValueError(f"{kind_cls.__name__} {name!r} is registered twice")
        table[name] = kind_cls(name, build, **flags)
        return build

    return add


def register_adapter(name: str, *, calibration: Callable = never) -> Callable:
    """Decorator: make `build` the adapter kind `name`."""
    return _register(ADAPTERS, AdapterKind, name, {"calibration": calibration})


def register_optimizer(name: str, *, needs_lora_pairs: bool = False, shardable: bool = True) -> Callable:
    """Decorator: make `build` the optimizer kind `name`."""
    return _register(OPTIMIZERS, OptimizerKind, name, {"needs_lora_pairs": needs_lora_pairs, "shardable": shardable})


def unregister(name: str) -> None:
    """Remove a kind registered under `name` (tests register toy kinds and clean up)."""
    ADAPTERS.pop(name, None)
    OPTIMIZERS.pop(name, None)


def _lookup(table: dict, what: str, name: str, method: str):
    if name not in table:
        raise ConfigError(f"unknown {what} kind {name!r} in method={method}; one of {sorted(table)}")
    return table[name]


def adapter_kind(name: str, method: str) -> AdapterKind:
    return _lookup(ADAPTERS, "adapter", name, method)


def optimizer_kind(name: str, method: str) -> OptimizerKind:
    return _lookup(OPTIMIZERS, "optimizer", name, method)
