"""Newton-Schulz orthogonalisation (Muon), dense and for low-rank inputs (LoFT App. D.1)."""
from __future__ import annotations

from typing import Callable

import torch

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # Algorithm 3


def newton_schulz5(g: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Algorithm 3 on a dense (..., m, n) matrix."""
    a, b, c = NS_COEFFICIENTS
    x = g / (torch.linalg.matrix_norm(g, keepdim=True) + eps)
    tall = g.shape[-2] > g.shape[-1]
    if tall:
        x = x.mT
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if tall else x


def newton_schulz5_lowrank(
    u: torch.Tensor, v: torch.Tensor, steps: int = 5, eps: float = 1e-7,
    gram: Callable[[torch.Tensor], torch.Tensor] = lambda x: x.mT @ x, tall: bool | None = None,
) -> torch.Tensor:
    """Algorithm 4: for G = U V^T (U: ..., m x r; V: ..., n x r) return X_U (..., m x r)
    with X_U V^T = newton_schulz5(G), in O((m + n) r^2 + r^3) per step.

    Every iterate has the form X = U X_c V^T, so the iteration runs on the r x r core and
    touches the rows of U and V only through their Grams: with row shards, `gram` sums the
    local Grams over ranks and `tall` (m > n) comes from the global shapes.
    """
    a, b, c = NS_COEFFICIENTS
    if tall is None:
        tall = u.shape[-2] > v.shape[-2]
    if tall:  # mirror the dense transpose: iterate on G^T = V U^T
        u, v = v, u
    utu = gram(u)
    vtv = gram(v)
    norm = (utu * vtv.mT).sum(dim=(-2, -1)).clamp_min(0).sqrt()  # ||G||_F = sqrt tr(UtU VtV)
    eye = torch.eye(u.shape[-1], dtype=u.dtype, device=u.device)
    core = eye / (norm[..., None, None] + eps)
    for _ in range(steps):
        gram = core @ vtv @ core.mT @ utu  # r x r form of X X^T acting on U
        core = a * core + (b * gram + c * gram @ gram) @ core
    return v @ core.mT if tall else u @ core
