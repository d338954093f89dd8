"""The full fine-tuning yardstick (loft/train/reference.py) against AdamW written out by hand."""
import math

import torch

from loft.train.reference import adamw_full_ft


def test_adamw_full_ft_matches_adamw_by_hand_and_runs_under_no_grad():
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(6, 4, generator=gen)
    lr, steps, (b1, b2), eps = 0.05, 25, (0.9, 0.99), 1e-8
    with torch.no_grad():  # a task's evaluate runs under no_grad
        w = adamw_full_ft(lambda w: (w - target).square().sum(), (6, 4), torch.float64, lr, steps, (b1, b2), eps)
    # Kingma & Ba with bias correction (decoupled decay 0), on the exact gradient 2 (W - A)
    ref, m, v = torch.zeros(6, 4, dtype=torch.float64), 0.0, 0.0
    for t in range(1, steps + 1):
        g = 2 * (ref - target.double())
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        ref = ref - lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
    assert w.dtype == torch.float64 and not w.requires_grad
    assert torch.allclose(w, ref, rtol=1e-10, atol=1e-12)
    assert (w - target).square().sum() < target.square().sum() and math.isfinite(float(w.sum()))


def test_adamw_full_ft_zero_steps_is_w0():
    w = adamw_full_ft(lambda w: w.sum(), (3, 2), torch.float32, 0.1, 0, (0.9, 0.999), 1e-8)
    assert torch.equal(w, torch.zeros(3, 2))
