"""The vision baselines of LoFT Table 19 that PEFT lacks: VPT and the Houlsby adapter.

Both are adapter kinds of the method registry (`vpt`, `houlsby`; registry.py, signature
`(model, cfg, targets, ctx) -> (model, info)`): they freeze the backbone, add their own
parameters, and leave the task head (`ctx.head_modules`) trainable at `trainer.head_lr`.

- VPT (Jia et al. 2022, "Visual Prompt Tuning"): `num_tokens` learned prompt tokens inserted
  after [CLS], before the patch tokens. Shallow: once, at the first block's input (the prompts
  then flow through the network like patches). Deep (`deep: true`, the paper's best variant):
  every block gets its own prompts, replacing the previous block's prompt outputs. Prompts
  carry no position embedding; init uniform(-v, v) with v = sqrt(6 / (3 * patch^2 + d)) (the
  reference code's Xavier-style bound); dropout on the prompts. `targets` names the ModuleList
  of transformer blocks (`layers` in transformers 5, `encoder.layer` in 4.x). The classifier
  reads [CLS], so sequence positions after it may grow freely; models with an attention mask
  over tokens (text encoders) are refused. VPT changes the outputs at init (the prompts are
  attended to); that is the method.
- Houlsby adapter (Houlsby et al. 2019; the "Adapter" row of LoFT Table 19): a bottleneck
  x -> x + up(GELU(down(x))) on the output of each targeted projection, i.e. after the attention
  output projection and after the MLP's second layer, before the residual sum (Houlsby's two
  sites per block). `up` starts at zero, so the model's outputs are unchanged at init.
  `bottleneck` is the inner width (the configs tie it to `rank`: 2·d·r + d + r parameters per
  site, about LoRA's count on one d x d layer).
"""
from __future__ import annotations

import math

import torch
from omegaconf import OmegaConf
from torch import nn

from loft.core.errors import ConfigError

from .base import in_head
from .registry import register_adapter


def _freeze_backbone(model: nn.Module, head_modules: list[str]) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(in_head(name, head_modules))


def _kwargs(cfg) -> dict:
    return OmegaConf.to_container(cfg.kwargs, resolve=True) if cfg.get("kwargs") else {}


def _param_count(module: nn.Module) -> int:
    """All parameters of `module` (the prompts or adapter the method adds: all of them train)."""
    return sum(p.numel() for p in module.parameters())


# --- VPT -------------------------------------------------------------------------------

class VisualPrompts(nn.Module):
    """Prompt tokens (one set, or one per block when deep) and the hooks that insert them."""

    def __init__(self, num_blocks: int, num_tokens: int, dim: int, deep: bool, dropout: float, bound: float):
        super().__init__()
        self.num_tokens, self.deep = int(num_tokens), bool(deep)
        self.prompts = nn.Parameter(torch.empty(num_blocks if deep else 1, num_tokens, dim).uniform_(-bound, bound))
        self.dropout = nn.Dropout(dropout)
        self.handles: list = []

    def hook(self, block: int):
        def insert(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            prompt = self.dropout(self.prompts[block if self.deep else 0]).to(hidden.dtype)
            prompt = prompt.unsqueeze(0).expand(hidden.shape[0], -1, -1)
            # Block 0 inserts after [CLS]; deeper blocks (deep VPT) replace the previous prompts.
            rest = hidden[:, 1:] if block == 0 else hidden[:, 1 + self.num_tokens:]
            hidden = torch.cat([hidden[:, :1], prompt, rest], dim=1)
            if args:
                return (hidden, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}

        return insert

    def attach(self, blocks: nn.ModuleList) -> None:
        self.handles = [blocks[i].register_forward_pre_hook(self.hook(i), with_kwargs=True)
                        for i in range(len(blocks) if self.deep else 1)]


def _blocks(model: nn.Module, targets: list[str]) -> tuple[str, nn.ModuleList]:
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and any(name == t or name.endswith("." + t) for t in targets):
            return name, module
    raise ConfigError(f"VPT found no ModuleList of transformer blocks named {targets}; set method.target_modules "
                      f"to the blocks' list (transformers 5 ViT: layers)")


@register_adapter("vpt")
def vpt(model: nn.Module, cfg, targets: list[str], ctx):
    """VPT-shallow/deep for ViT-like models (`method.adapter.kwargs`: num_tokens, deep, dropout)."""
    kwargs = _kwargs(cfg)
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "patch_size"):
        raise ConfigError("VPT prepends prompt tokens to a ViT's patch sequence; this model has no patches "
                          "(config.patch_size): use it with model=tiny_vit or vit_base_patch16_224_in21k")
    name, blocks = _blocks(model, targets)
    size = config.patch_size
    patch_area = size * size if isinstance(size, int) else math.prod(size)
    dim = config.hidden_size
    p = next(model.parameters())
    prompts = VisualPrompts(len(blocks), int(kwargs.get("num_tokens", 10)), dim, bool(kwargs.get("deep", True)),
                            float(kwargs.get("dropout", 0.0)), math.sqrt(6.0 / (3 * patch_area + dim)))
    _freeze_backbone(model, ctx.head_modules)
    model.add_module("vpt_prompts", prompts.to(p.device, p.dtype))  # registered: in state_dict and checkpoints
    prompts.attach(blocks)
    return model, {"blocks": name, "num_tokens": prompts.num_tokens, "deep": prompts.deep,
                   "prompt_params": _param_count(prompts)}


# --- Houlsby adapter -------------------------------------------------------------------

class Bottleneck(nn.Module):
    def __init__(self, dim: int, width: int):
        super().__init__()
        self.down, self.act, self.up = nn.Linear(dim, width), nn.GELU(), nn.Linear(width, dim)
        nn.init.zeros_(self.up.weight)  # zero output at init: the wrapped layer is unchanged
        nn.init.zeros_(self.up.bias)

    def forward(self, x):
        return self.up(self.act(self.down(x)))


class AdaptedLinear(nn.Module):
    """`base(x)` followed by a residual bottleneck: y + adapter(y)."""

    def __init__(self, base: nn.Linear, width: int):
        super().__init__()
        self.base, self.adapter = base, Bottleneck(base.out_features, width)

    def forward(self, x):
        y = self.base(x)
        return y + self.adapter(y)


@register_adapter("houlsby")
def houlsby(model: nn.Module, cfg, targets: list[str], ctx):
    """Houlsby bottleneck adapters on the targeted output projections (`kwargs.bottleneck`)."""
    width = int(_kwargs(cfg).get("bottleneck", ctx.rank))
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets)
             and not in_head(name, ctx.head_modules)]
    if not found:
        raise ConfigError(f"the adapter found no nn.Linear named {targets}; set method.target_modules to the "
                          f"attention-output and MLP-output projections of this model")
    if width < 1:
        raise ConfigError(f"adapter bottleneck={width} must be >= 1")
    _freeze_backbone(model, ctx.head_modules)
    p = next(model.parameters())
    added = 0
    for name, module in found:
        parent_name, _, child = name.rpartition(".")
        wrapped = AdaptedLinear(module, width).to(p.device, p.dtype)
        wrapped.adapter.requires_grad_(True)
        added += _param_count(wrapped.adapter)
        setattr(model.get_submodule(parent_name) if parent_name else model, child, wrapped)
    return model, {"adapted_layers": len(found), "bottleneck": width, "adapter_params": added}
