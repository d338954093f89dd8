"""The LoFT paper's simulated experiment (Section 2.5, Figure 2).

f(W) = ||W - A||_F^2 with rank(A) = r, W in R^{m x n}, W0 = 0. The task holds the target A;
the model (`model=matfac`, loft/models/tiny.py's `MatFacModel`) is the matrix W.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from tasks.base import ModelBundle, Task


class MatFacTask(Task):
    model_kinds = ("matrix",)
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
        w = model()
        return (w - self.target.to(w)).square().sum()

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float]:
        w = model().double()
        err = (w - self.target).square().sum().item()
        metrics = {"loss": err, "relative_error": math.sqrt(err) / self.target.norm().item()}
        if self.reference and self.reference.get("steps"):
            full = self.full_ft_loss(w.shape, w.dtype if w.dtype != torch.float64 else torch.float32, **self.reference)
            metrics.update(full_ft_loss=full, loss_ratio_to_full_ft=err / full if full > 0 else float("nan"))
        return metrics

    def full_ft_loss(self, shape, dtype, lr: float, steps: int, betas, eps: float) -> float:
        """Full fine-tuning with torch's AdamW at the same step size and steps (the paper's
        yardstick in Figure 2), using the exact gradient 2 (W - A)."""
        target = self.target.to(dtype)
        w = torch.zeros(shape, dtype=dtype, requires_grad=True)
        opt = torch.optim.AdamW([w], lr=lr, betas=tuple(betas), eps=eps, weight_decay=0.0)
        for _ in range(steps):
            w.grad = 2 * (w.detach() - target)
            opt.step()
        return (w.detach().double() - self.target).square().sum().item()
