"""The LoFT paper's simulated experiment (Section 2.5, Figure 2).

f(W) = ||W - A||_F^2 with rank(A) = r, W in R^{m x n}, W0 = 0. The task holds the target A;
the model (`model=matfac`, the `matfac` model loader) is the matrix W, as a linear layer `W`.
With `full_ft_reference` set, `evaluate` also reports the loss that full fine-tuning (torch's
AdamW on W from 0, same lr and steps: `loft.train.reference.adamw_full_ft` on this task's f)
reaches, `full_ft_loss`, and the method's loss over it: Figure 2's yardstick.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from loft.train.reference import adamw_full_ft
from tasks.base import ModelBundle, Task


class MatFacTask(Task):
    model_kinds = ("matrix",)

    # max_train_samples / eval_limit: accepted (the config sets them, as every task's does), unused
    def __init__(self, name: str = "matfac", target_rank: int = 8, target_seed: int = 1234,
                 full_ft_reference: dict | None = None, max_train_samples=None, eval_limit=None):
        self.name = name
        self.target_rank = target_rank
        self.target_seed = target_seed
        self.reference = full_ft_reference  # {lr, steps, betas, eps}: Figure 2's yardstick, or None
        self.target = None

    def setup(self, bundle: ModelBundle, data_dir: str) -> None:
        layer = bundle.model.W
        m, n = layer.out_features, layer.in_features
        # The target is fixed by its own seed so every method and run seed sees the same A.
        gen = torch.Generator().manual_seed(self.target_seed)
        x = torch.randn(m, self.target_rank, generator=gen, dtype=torch.float64)
        y = torch.randn(n, self.target_rank, generator=gen, dtype=torch.float64)
        self.target = x @ y.T / math.sqrt(self.target_rank)  # entries of unit variance

    def num_train_examples(self) -> int:
        return 1  # one deterministic full gradient per step

    def train_batches(self, micro_batch_size: int, epoch: int, seed: int) -> Iterator[dict]:
        yield {}

    def loss(self, model, batch) -> torch.Tensor:
        return self.error(model())

    def error(self, w: torch.Tensor) -> torch.Tensor:
        """f(W) = ||W - A||_F^2, in W's dtype."""
        return (w - self.target.to(w)).square().sum()

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float]:
        w = model().double()
        err = (w - self.target).square().sum().item()
        metrics = {"loss": err, "relative_error": math.sqrt(err) / self.target.norm().item()}
        if self.reference and self.reference.get("steps"):
            # full fine-tuning runs in float32 whatever the model's dtype; scored in float64 as the method
            full_w = adamw_full_ft(self.error, w.shape, torch.float32, **self.reference)
            full = (full_w.double() - self.target).square().sum().item()
            metrics.update(full_ft_loss=full, loss_ratio_to_full_ft=err / full if full > 0 else float("nan"))
        return metrics
