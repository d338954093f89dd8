"""PEFT baselines: adapter kind `peft` (any `peft.<Config>`: LoRA, DoRA, AdaLoRA, OFT, BOFT,
HRA, PSOFT, VeRA, PiSSA, LoRA-GA ...) and optimizer kind `loraplus_adamw` (LoRA+)."""
from __future__ import annotations

import dataclasses
import time

import peft
import torch
from omegaconf import OmegaConf
from peft.optimizers import create_loraplus_optimizer

from loft.core.errors import ConfigError

from .base import adapter_misfit, check_rank, hp_adamw
from .registry import register_adapter, register_optimizer

# PEFT config fields that take a nested config object rather than a dict.
NESTED_PEFT_CONFIGS = {"lora_ga_config": "LoraGAConfig"}


def uses_lora_ga(adapter_cfg) -> bool:
    """LoRA-GA estimates its initialisation from calibration gradients."""
    return adapter_cfg.get("preprocess") == "lora_ga"


@register_adapter("peft", calibration=uses_lora_ga)
def peft_adapter(model, cfg, targets, ctx):
    config_cls = getattr(peft, cfg.config)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    kwargs = OmegaConf.to_container(cfg.kwargs, resolve=True)
    kwargs.setdefault("target_modules", targets)
    if ctx.head_modules and "modules_to_save" in fields:
        kwargs.setdefault("modules_to_save", list(ctx.head_modules))  # a new task head is trained in full
    for name, cls_name in NESTED_PEFT_CONFIGS.items():
        if isinstance(kwargs.get(name), dict):
            kwargs[name] = getattr(peft, cls_name)(**kwargs[name])
    if "total_step" in fields and kwargs.get("total_step") is None:
        kwargs["total_step"] = ctx.total_steps  # AdaLoRA's budget schedule needs the run length
    if ctx.adapter_path is not None:  # the saved config defines the adapter (checked by loft.adapters.source)
        try:
            wrapped = peft.PeftModel.from_pretrained(model, str(ctx.adapter_path), is_trainable=True)
        except (RuntimeError, ValueError) as err:  # e.g. a size mismatch: another model size
            raise adapter_misfit(ctx.adapter_path, err) from err
        return wrapped, {"peft_config": cfg.config, "loaded_adapter": str(ctx.adapter_path)}
    check_rank(model, kwargs["target_modules"], ctx.rank)
    config = config_cls(**kwargs)
    info = {"peft_config": cfg.config}
    if uses_lora_ga(cfg):
        info["calibration_s"] = _lora_ga_preprocess(model, config, cfg.get("calibration_batches", 8), ctx)
    try:
        wrapped = peft.get_peft_model(model, config)
    except (ValueError, NotImplementedError) as err:  # PEFT's way of saying 'unsupported layer'
        raise ConfigError(f"{cfg.config} cannot adapt this model: {err}".splitlines()[0]) from err
    return wrapped, info


def _lora_ga_preprocess(model, config, n_batches: int, ctx) -> float:
    """PEFT's LoRA-GA gradient estimation over `n_batches` training batches; returns seconds."""

    def train_step():
        for batch in ctx.calibration_batches(n_batches):
            ctx.loss(model, batch).backward()

    start = time.perf_counter()
    peft.preprocess_loraga(model, config, train_step)
    return time.perf_counter() - start


@register_optimizer("loraplus_adamw")
def loraplus_adamw(model, params, hp, kwargs):
    """LoRA+ (Hayou et al. 2024) through PEFT: B gets lr * loraplus_lr_ratio."""
    return create_loraplus_optimizer(model, torch.optim.AdamW, **hp_adamw(hp), **kwargs)
