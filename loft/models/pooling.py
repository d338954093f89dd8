"""Mean pooling for BERT classifiers (model.pooling=mean), used by the MiniLM loader."""
from __future__ import annotations

import torch


class MeanPooler(torch.nn.Module):
    """BERT's pooler (dense + tanh, same weights) on the mask-weighted mean of the token states
    instead of the first token's: all-MiniLM-L6-v2 was trained as a sentence encoder with mean
    pooling (sentence-transformers), its [CLS] state never was."""

    def __init__(self, pooler: torch.nn.Module):
        super().__init__()
        self.dense, self.activation = pooler.dense, pooler.activation
        self.mask: torch.Tensor | None = None  # set by the encoder's pre-forward hook

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        mask = self.mask
        if mask is None:
            mask = hidden_states.new_ones(hidden_states.shape[:2])
        weights = mask.to(hidden_states.dtype).unsqueeze(-1)
        mean = (hidden_states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.activation(self.dense(mean))


def mean_pool(bert: torch.nn.Module) -> None:
    """Swap a BertModel's pooler for MeanPooler; the attention mask reaches it through a hook.
    The hook looks the poolers up at call time: PEFT's modules_to_save trains a copy of it."""
    bert.pooler = MeanPooler(bert.pooler)
    bert.register_forward_pre_hook(_pass_mask_to_poolers, with_kwargs=True)


def _pass_mask_to_poolers(bert, args, kwargs):
    mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
    for module in bert.modules():
        if isinstance(module, MeanPooler):
            module.mask = mask
