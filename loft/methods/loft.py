"""Optimizers that step LoRA pairs (B, A) as a whole (`loft/optim`): LoFT-AdamW and
LoFT-Muon (Tastan et al. 2026) and LoRA-Pro (Wang et al. 2025). Each needs LoRA pairs; the
LoFT ones run under FSDP (row-sharded state), LoRA-Pro does not (it works on whole factors)."""
from __future__ import annotations

from loft.optim import LoFTAdamW, LoFTMuon, LoRAProAdamW, lora_pairs

from .base import hp_adamw
from .registry import register_optimizer


@register_optimizer("loft_adamw", needs_lora_pairs=True, shardable=True)
def loft_adamw(model, params, hp, kwargs):
    return LoFTAdamW(params, **hp_adamw(hp), pairs=lora_pairs(model), **kwargs)


@register_optimizer("loft_muon", needs_lora_pairs=True, shardable=True)
def loft_muon(model, params, hp, kwargs):
    return LoFTMuon(params, lr=hp["lr"], weight_decay=hp["weight_decay"], adamw_betas=hp["betas"],
                    adamw_eps=hp["eps"], pairs=lora_pairs(model), **kwargs)


@register_optimizer("lora_pro_adamw", needs_lora_pairs=True, shardable=False)
def lora_pro_adamw(model, params, hp, kwargs):
    return LoRAProAdamW(params, **hp_adamw(hp), pairs=lora_pairs(model), **kwargs)
