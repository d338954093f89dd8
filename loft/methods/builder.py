"""build_method: adapt a model as its method config says, wrap it for data parallelism and
build its optimizer, refusing what the kinds' capability flags (registry.py) rule out."""
from __future__ import annotations

from typing import Callable

import torch
from omegaconf import OmegaConf

from loft import quantization
from loft.core.errors import ConfigError
from loft.train.distributed import sharding_engine, supports_sharding
from loft.optim import ShardingLayoutError, lora_pairs

from .base import Method, MethodContext, in_head
from .registry import AdapterKind, OptimizerKind, adapter_kind, optimizer_kind


def refuse_sharding(method_name: str, optimizer: torch.optim.Optimizer) -> None:
    """Under FSDP/DeepSpeed, an optimizer object must declare `supports_fsdp` (torch's own follow
    DTensor parameters); loft.train.checkpoint relies on it to gather the optimizer's state."""
    engine = sharding_engine()
    if engine and not supports_sharding(optimizer):
        raise ConfigError(
            f"method={method_name} cannot run under {engine.upper()}: its optimizer {type(optimizer).__name__} "
            "does not declare supports_fsdp; launch with plain DDP (accelerate launch --multi_gpu run.py ...)"
        )


def param_groups(model: torch.nn.Module, ctx: MethodContext) -> list[dict]:
    """Trainable parameters, with the task head (if any) in its own group at head_lr."""
    head, body = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if in_head(name, ctx.head_modules) else body).append(p)
    groups = [{"params": body}] if body else []
    if head:
        groups.append({"params": head, "lr": ctx.hp.get("head_lr") or ctx.hp["lr"]})
    return groups


def check_capabilities(method_name: str, adapter: AdapterKind, adapter_cfg, optimizer: OptimizerKind,
                       ctx: MethodContext) -> None:
    """Refusals that need no model: sharding and calibration (before any costly adaptation)."""
    engine = sharding_engine()
    if engine and not optimizer.shardable:
        raise ConfigError(f"method={method_name} cannot run under {engine.upper()}: optimizer kind {optimizer.name} "
                          "is not shardable; launch with plain DDP (accelerate launch --multi_gpu run.py ...)")
    if ctx.adapter_path is None and adapter.calibration(adapter_cfg) and ctx.calibration_batches is None:
        raise ConfigError(f"method={method_name} needs calibration batches from the task; this task provides none "
                          "(choose a method without gradient-informed initialisation)")


def build_method(method_cfg, model: torch.nn.Module, ctx: MethodContext,
                 parallel: Callable[[torch.nn.Module], torch.nn.Module] = lambda m: m) -> Method:
    """Adapt `model` as the method says, wrap it for data parallelism (`parallel`: DDP or FSDP,
    before the optimizer exists, as FSDP requires) and build its optimizer."""
    adapter_cfg, opt_cfg, name = method_cfg.adapter, method_cfg.optimizer, method_cfg.name
    adapter, optimizer_spec = adapter_kind(adapter_cfg.kind, name), optimizer_kind(opt_cfg.kind, name)
    check_capabilities(name, adapter, adapter_cfg, optimizer_spec, ctx)
    targets = list(method_cfg.get("target_modules") or ctx.default_targets)
    base_info = quantization.prepare(model, method_cfg)  # {} unless the base is 4-bit (QLoRA recipe)
    model, info = adapter.build(model, adapter_cfg, targets, ctx)
    info.update(base_info)
    if optimizer_spec.needs_lora_pairs and not lora_pairs(model):
        raise ConfigError(f"method={name} found no LoRA pairs to optimise; its adapter must be LoRA")
    train_model = parallel(model)
    kwargs = OmegaConf.to_container(opt_cfg.kwargs, resolve=True) if opt_cfg.get("kwargs") else {}
    try:
        optimizer = optimizer_spec.build(model, param_groups(train_model, ctx), ctx.hp, kwargs)
    except ShardingLayoutError as err:  # FSDP laid out the LoRA factors in a way LoFT cannot step
        raise ConfigError(str(err)) from err
    refuse_sharding(name, optimizer)
    info["target_modules"] = targets
    step_hook = getattr(getattr(model, "base_model", None), "update_and_allocate", None)  # AdaLoRA's rank budget
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Method(model, optimizer, trainable, info, step_hook, train_model)
