"""Find the LoRA factor pairs of a model and group equal shapes for batched updates."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import torch


class LoraPair(NamedTuple):
    """PEFT's convention: W = W0 + scale * B @ A, B: m x r, A: r x n (paper: U = scale*B, V = A^T)."""

    B: torch.Tensor
    A: torch.Tensor
    scale: float = 1.0


def lora_pairs(model: torch.nn.Module) -> list[LoraPair]:
    """Trainable (B, A, scale) triples of every active LoRA adapter in a PEFT model."""
    pairs = []
    for module in model.modules():
        lora_a, lora_b = getattr(module, "lora_A", None), getattr(module, "lora_B", None)
        if not isinstance(lora_a, torch.nn.ModuleDict) or not isinstance(lora_b, torch.nn.ModuleDict):
            continue
        for adapter in lora_a:
            a, b = lora_a[adapter].weight, lora_b[adapter].weight
            if a.requires_grad and b.requires_grad:
                pairs.append(LoraPair(b, a, float(module.scaling[adapter])))
    return pairs


def as_pairs(pairs: Sequence) -> list[LoraPair]:
    out = []
    for p in pairs:
        pair = LoraPair(*p)
        m, r = pair.B.shape
        if pair.A.ndim != 2 or pair.A.shape[0] != r:
            raise ValueError(f"pair shapes do not chain: B {tuple(pair.B.shape)}, A {tuple(pair.A.shape)}")
        if pair.scale == 0:
            raise ValueError("LoRA scaling 0 makes the pair inert; check lora_alpha")
        out.append(pair)
    return out


@dataclass
class PairGroup:
    """Pairs of one shape, dtype, device, scaling and param group, stepped as one batch.

    `state` holds stacked tensors (L x ...); the optimizer subclass decides what is in it.
    """

    Bs: list[torch.Tensor]
    As: list[torch.Tensor]
    scale: float
    group_index: int
    state: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        m, r = self.Bs[0].shape
        return m, self.As[0].shape[1], r


def group_pairs(pairs: list[LoraPair], group_of: dict[int, int]) -> list[PairGroup]:
    """Bucket pairs by (m, n, r, dtype, device, scale, param group) in first-seen order."""
    buckets: dict[tuple, PairGroup] = {}
    for pair in pairs:
        gi = group_of[id(pair.B)]
        if group_of.get(id(pair.A)) != gi:
            raise ValueError("B and A of one LoRA pair must be in the same param group")
        key = (tuple(pair.B.shape), tuple(pair.A.shape), pair.B.dtype, pair.B.device, pair.scale, gi)
        if key not in buckets:
            buckets[key] = PairGroup([], [], pair.scale, gi)
        buckets[key].Bs.append(pair.B)
        buckets[key].As.append(pair.A)
    return list(buckets.values())
