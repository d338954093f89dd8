"""Full fine-tuning as a yardstick (LoFT Figure 2): torch's AdamW on one free matrix W from
W0 = 0, at a given step size and number of steps, on a loss the caller supplies as a closure.
The loop trains the method under test; this trains the full-rank baseline it is compared with,
so the task that reports the comparison only states its loss."""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def adamw_full_ft(loss: Callable[[torch.Tensor], torch.Tensor], shape: Sequence[int], dtype: torch.dtype,
                  lr: float, steps: int, betas: Sequence[float], eps: float) -> torch.Tensor:
    """W (detached) after `steps` of torch's AdamW (no weight decay) on `loss(W)`, W0 = 0 of
    `shape` and `dtype`; gradients by autograd, also when called under torch.no_grad()."""
    w = torch.zeros(tuple(shape), dtype=dtype, requires_grad=True)
    opt = torch.optim.AdamW([w], lr=lr, betas=tuple(betas), eps=eps, weight_decay=0.0)
    with torch.enable_grad():
        for _ in range(steps):
            w.grad = None
            loss(w).backward()
            opt.step()
    return w.detach()
