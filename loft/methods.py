"""Method registry: a method = how the model is wrapped (adapter) + which optimizer trains it.

A method config (`conf/method/<name>.yaml`) names an adapter kind and an optimizer kind
with their keyword arguments; adding a method is one config file, plus one entry below if
it needs a new adapter or optimizer kind. Tasks never see which method they run.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Iterable

import peft
import torch
from omegaconf import OmegaConf

from loft import quantization
from loft.train.distributed import sharding_engine, supports_sharding
from loft.core.errors import ConfigError
from loft.optim import LoFTAdamW, LoFTMuon, LoRAProAdamW, lora_pairs
from peft.optimizers import create_loraplus_optimizer


@dataclass
class Method:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    trainable_params: int
    info: dict = field(default_factory=dict)
    after_step: Callable[[int], None] | None = None  # called with the step number after optimizer.step()
    train_model: torch.nn.Module | None = None       # `model` as wrapped for DDP/FSDP (same object when not)


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


def _full(model, cfg, targets, ctx):
    for p in model.parameters():
        p.requires_grad_(True)
    return model, {}


def adapter_misfit(path, err: Exception) -> ConfigError:
    """One line out of a loader's long message (torch lists every mismatched tensor)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    detail = next((line for line in lines if "mismatch" in line), lines[0])
    return ConfigError(f"model.adapter={path} does not fit this model ({detail}); use the model and sizes it was trained with")


# PEFT config fields that take a nested config object rather than a dict.
NESTED_PEFT_CONFIGS = {"lora_ga_config": "LoraGAConfig"}


def _peft(model, cfg, targets, ctx):
    config_cls = getattr(peft, cfg.config)
    kwargs = OmegaConf.to_container(cfg.kwargs, resolve=True)
    kwargs.setdefault("target_modules", targets)
    if ctx.head_modules and "modules_to_save" in {f.name for f in dataclasses.fields(config_cls)}:
        kwargs.setdefault("modules_to_save", list(ctx.head_modules))  # a new task head is trained in full
    for name, cls_name in NESTED_PEFT_CONFIGS.items():
        if isinstance(kwargs.get(name), dict):
            kwargs[name] = getattr(peft, cls_name)(**kwargs[name])
    if "total_step" in {f.name for f in dataclasses.fields(config_cls)} and kwargs.get("total_step") is None:
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
    if cfg.get("preprocess") == "lora_ga":
        info["calibration_s"] = _lora_ga_preprocess(model, config, cfg.get("calibration_batches", 8), ctx)
    try:
        wrapped = peft.get_peft_model(model, config)
    except (ValueError, NotImplementedError) as err:  # PEFT's way of saying 'unsupported layer'
        raise ConfigError(f"{cfg.config} cannot adapt this model: {err}".splitlines()[0]) from err
    return wrapped, info


def _lora_ga_preprocess(model, config, n_batches: int, ctx) -> float:
    """PEFT's LoRA-GA gradient estimation over `n_batches` training batches; returns seconds."""
    if ctx.calibration_batches is None:
        raise ConfigError("LoRA-GA needs calibration batches from the task; this task provides none")

    def train_step():
        for batch in ctx.calibration_batches(n_batches):
            ctx.loss(model, batch).backward()

    start = time.perf_counter()
    peft.preprocess_loraga(model, config, train_step)
    return time.perf_counter() - start


def _loft_orth(model, cfg, targets, ctx):
    """LOFT (Han et al. 2026): W0 (I + P^T (T - I) P); only T's parameters (and a task head) train."""
    from loft import orth

    kwargs = OmegaConf.to_container(cfg.kwargs, resolve=True)
    config = orth.LoftOrthConfig(r=ctx.rank, target_modules=targets, **kwargs)
    check_rank(model, targets, ctx.rank)
    for p in model.parameters():
        p.requires_grad_(False)
    if ctx.adapter_path is not None:  # saved P and T (no calibration); the saved config defines the adapter
        try:
            model = orth.load_adapter(model, ctx.adapter_path)
        except (RuntimeError, ValueError, KeyError, AttributeError) as err:
            raise adapter_misfit(ctx.adapter_path, err) from err
        model.loft_orth_support_s = model.loft_orth_calibration_s = 0.0
        config = model.loft_orth_config
    else:
        batches = None
        if config.support in ("gradsvd", "skewgrad", "coordinate"):
            if ctx.calibration_batches is None:
                raise ConfigError(f"support={config.support} needs calibration batches from the task; this task provides none")
            batches = list(ctx.calibration_batches(config.calibration_batches))  # reused by every calibration pass
        model = orth.apply(model, config, calibration_batches=batches, loss_fn=ctx.loss)
    for name, p in model.named_parameters():
        if any(f".{h}." in f".{name}." for h in ctx.head_modules):
            p.requires_grad_(True)
    return model, {"support": config.support, "transform": config.transform,
                   "calibration_s": model.loft_orth_calibration_s, "support_s": model.loft_orth_support_s}


ADAPTERS = {"none": _full, "peft": _peft, "loft_orth": _loft_orth,
            "vpt": __import__("loft.vision_adapters", fromlist=["vpt"]).vpt,              # VPT (LoFT Table 19)
            "houlsby": __import__("loft.vision_adapters", fromlist=["houlsby"]).houlsby}  # Houlsby adapter (Table 19)


def _adamw(model, params, hp, kwargs):
    return torch.optim.AdamW(params, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"], weight_decay=hp["weight_decay"], **kwargs)


def _loraplus(model, params, hp, kwargs):
    """LoRA+ (Hayou et al. 2024) through PEFT: B gets lr * loraplus_lr_ratio."""
    return create_loraplus_optimizer(model, torch.optim.AdamW, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"],
                                     weight_decay=hp["weight_decay"], **kwargs)


def _loft_adamw(model, params, hp, kwargs):
    return LoFTAdamW(params, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"], weight_decay=hp["weight_decay"],
                     pairs=lora_pairs(model), **kwargs)


def _loft_muon(model, params, hp, kwargs):
    return LoFTMuon(params, lr=hp["lr"], weight_decay=hp["weight_decay"], adamw_betas=hp["betas"],
                    adamw_eps=hp["eps"], pairs=lora_pairs(model), **kwargs)


def _lora_pro_adamw(model, params, hp, kwargs):
    return LoRAProAdamW(params, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"], weight_decay=hp["weight_decay"],
                        pairs=lora_pairs(model), **kwargs)


OPTIMIZERS = {"adamw": _adamw, "loraplus_adamw": _loraplus, "loft_adamw": _loft_adamw, "loft_muon": _loft_muon,
              "lora_pro_adamw": _lora_pro_adamw}
# Optimizers that step each LoRA pair (B, A) as a whole: they need LoRA pairs, each whole on one rank.
PAIR_OPTIMIZERS = {"loft_adamw", "loft_muon", "lora_pro_adamw"}


def refuse_sharding(method_name: str, optimizer: torch.optim.Optimizer) -> None:
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
            is_head = any(f".{h}." in f".{name}." for h in ctx.head_modules)
            (head if is_head else body).append(p)
    groups = [{"params": body}] if body else []
    if head:
        groups.append({"params": head, "lr": ctx.hp.get("head_lr") or ctx.hp["lr"]})
    return groups


def build_method(method_cfg, model: torch.nn.Module, ctx: MethodContext,
                 parallel: Callable[[torch.nn.Module], torch.nn.Module] = lambda m: m) -> Method:
    """Adapt `model` as the method says, wrap it for data parallelism (`parallel`: DDP or FSDP,
    before the optimizer exists, as FSDP requires) and build its optimizer."""
    adapter, opt = method_cfg.adapter, method_cfg.optimizer
    if adapter.kind not in ADAPTERS:
        raise ConfigError(f"unknown adapter kind {adapter.kind!r} in method={method_cfg.name}; one of {sorted(ADAPTERS)}")
    if opt.kind not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer kind {opt.kind!r} in method={method_cfg.name}; one of {sorted(OPTIMIZERS)}")
    targets = list(method_cfg.get("target_modules") or ctx.default_targets)
    base_info = quantization.prepare(model, method_cfg)  # {} unless the base is 4-bit (QLoRA recipe)
    model, info = ADAPTERS[adapter.kind](model, adapter, targets, ctx)
    info.update(base_info)
    train_model = parallel(model)
    params = param_groups(train_model, ctx)
    kwargs = OmegaConf.to_container(opt.kwargs, resolve=True) if opt.get("kwargs") else {}
    optimizer = OPTIMIZERS[opt.kind](model, params, ctx.hp, kwargs)
    refuse_sharding(method_cfg.name, optimizer)
    if opt.kind in PAIR_OPTIMIZERS and not lora_pairs(model):
        raise ConfigError(f"method={method_cfg.name} found no LoRA pairs to optimise; its adapter must be LoRA")
    info["target_modules"] = targets
    step_hook = getattr(getattr(model, "base_model", None), "update_and_allocate", None)  # AdaLoRA's rank budget
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Method(model, optimizer, trainable, info, step_hook, train_model)
