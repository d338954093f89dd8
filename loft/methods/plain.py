"""Full fine-tuning (adapter kind `none`: every weight trains) and plain AdamW (optimizer kind
`adamw`, the optimizer of every baseline that does not bring its own)."""
from __future__ import annotations

import torch

from .base import hp_adamw
from .registry import register_adapter, register_optimizer


@register_adapter("none")
def full(model, cfg, targets, ctx):
    for p in model.parameters():
        p.requires_grad_(True)
    return model, {}


@register_optimizer("adamw")
def adamw(model, params, hp, kwargs):
    return torch.optim.AdamW(params, **hp_adamw(hp), **kwargs)
