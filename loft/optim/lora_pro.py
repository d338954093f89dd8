"""LoRA-Pro (Wang et al., ICLR 2025, "LoRA-Pro: Are Low-Rank Adapters Properly Optimized?").

With W = W0 + s B A, one step of LoRA moves W by the *equivalent gradient*
g~ = s (B g_A + g_B A). LoRA-Pro picks g_A, g_B so that g~ is the best Frobenius
approximation of the full gradient G (Theorem 2.1):

    g_A = (1/s^2) (B^T B)^-1 dL/dA + X A
    g_B = (1/s^2) (I - P_B) dL/dB (A A^T)^-1 - B X,        P_B = B (B^T B)^-1 B^T,

which gives g~ = P_B G + (I - P_B) G P_A for every r x r matrix X (P_A = A^T (A A^T)^-1 A).
X is then chosen to keep g_A, g_B closest to LoRA's own gradients (Theorem 2.2), the
Sylvester equation  B^T B X + X A A^T = -(1/s^2) (B^T B)^-1 dL/dA A^T.

`mode="full"` is the paper's AdamW variant (the authors' `step_full`): Adam's
moments are kept for g~ itself (m x n per layer, as full fine-tuning), and the Adam update
m^ / (sqrt(v^) + eps) is mapped back to the factors by the same closed form.
`mode="efficient"` (the authors' default mode) runs Adam on the adjusted g_A, g_B (LoRA's
memory). Inverses are pseudo-inverses, so LoRA's B = 0 at initialisation is harmless.

Differences from the public code (mrflogs/LoRA-Pro, peta/optim.py): the Sylvester equation is
solved in the eigenbases of the two symmetric r x r Grams (real arithmetic) instead of a
complex general eigendecomposition; moments stay in the factors' dtype (float32 for bf16
factors), not bf16; decoupled weight decay scales B and A by sqrt(1 - lr wd) but cannot decay
the frozen W0, which the authors' full mode also shrinks.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch

from .base import AdamPairOptimizer
from .pairs import PairGroup

MODES = ("full", "efficient")
X_MODES = ("sylvester", "zero")


def _pinv_sym(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.pinv(x, hermitian=True)


def solve_sylvester_sym(P: torch.Tensor, Q: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """X with P X + X Q = C for symmetric PSD P (r x r) and Q (r x r), batched over the first
    dim; where P's and Q's eigenvalues sum to ~0 the equation says nothing and X's part is 0."""
    lam, U = torch.linalg.eigh(P)
    mu, V = torch.linalg.eigh(Q)
    denom = lam[..., :, None] + mu[..., None, :]
    tiny = denom.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(denom.dtype).tiny) * 1e-12
    F = U.mT @ C @ V
    Y = torch.where(denom.abs() > tiny, F / torch.where(denom.abs() > tiny, denom, 1.0), 0.0)
    return U @ Y @ V.mT


def adjusted_gradients(B: torch.Tensor, A: torch.Tensor, grad_B: torch.Tensor, grad_A: torch.Tensor,
                       scale: float, x_mode: str = "sylvester") -> tuple[torch.Tensor, torch.Tensor]:
    """LoRA-Pro's g_B, g_A (Theorems 2.1 and 2.2) from LoRA's gradients dL/dB = s G A^T and
    dL/dA = s B^T G; batched over a leading dim. B: (L,) m x r, A: (L,) r x n."""
    s2 = scale * scale
    btb_inv = _pinv_sym(B.mT @ B)
    aat = A @ A.mT
    aat_inv = _pinv_sym(aat)
    ga = btb_inv @ grad_A / s2
    gb_full = grad_B @ aat_inv / s2
    gb = gb_full - B @ (btb_inv @ (B.mT @ gb_full))  # (I - P_B) without forming m x m
    if x_mode == "sylvester":
        X = solve_sylvester_sym(B.mT @ B, aat, -(btb_inv @ grad_A @ A.mT) / s2)
        ga, gb = ga + X @ A, gb - B @ X
    return gb, ga


def equivalent_gradient(B: torch.Tensor, A: torch.Tensor, g_B: torch.Tensor, g_A: torch.Tensor,
                        scale: float) -> torch.Tensor:
    """g~ = s (B g_A + g_B A): how W moves per unit step of (g_B, g_A)."""
    return scale * (B @ g_A + g_B @ A)


class LoRAProAdamW(AdamPairOptimizer):
    """AdamW for LoRA pairs with LoRA-Pro's gradient adjustment; parameters outside a pair
    (a task head, biases) get plain AdamW. Same calling convention as LoFTAdamW."""

    supports_fsdp = False  # its adjustment works on whole factors (no sharded layout yet): refused under FSDP

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        pairs: Sequence = (),
        mode: str = "full",
        x_mode: str = "sylvester",
    ):
        defaults = self.adam_defaults("LoRAProAdamW", lr, betas, eps, weight_decay)
        if mode not in MODES or x_mode not in X_MODES:
            raise ValueError(f"LoRAProAdamW mode={mode!r} x_mode={x_mode!r}: use mode in {MODES}, x_mode in {X_MODES}")
        self.mode, self.x_mode = mode, x_mode
        # Both factors move every step; clipping is the plain global norm of LoRA's gradients.
        super().__init__(params, defaults, pairs, alternate=False, scale_gradients=False, projected_clipping=False)

    def _stacked(self, g: PairGroup):
        dtype = self._work_dtype(g.Bs[0])
        B, A = torch.stack(g.Bs).to(dtype), torch.stack(g.As).to(dtype)
        grad_B = torch.stack([b.grad if b.grad is not None else torch.zeros_like(b) for b in g.Bs]).to(dtype)
        grad_A = torch.stack([a.grad if a.grad is not None else torch.zeros_like(a) for a in g.As]).to(dtype)
        return B, A, grad_B, grad_A

    def _step_group(self, g: PairGroup) -> None:
        B, A, grad_B, grad_A = self._stacked(g)
        hp = self.param_groups[g.group_index]
        beta1, beta2 = hp["betas"]
        if not g.state:
            full = self.mode == "full"
            g.state.update(step=torch.zeros((), dtype=torch.float64),
                           **({"exp_avg": B.new_zeros(len(g.Bs), B.shape[1], A.shape[2]),
                               "exp_avg_sq": B.new_zeros(len(g.Bs), B.shape[1], A.shape[2])} if full else
                              {"exp_avg_B": torch.zeros_like(B), "exp_avg_sq_B": torch.zeros_like(B),
                               "exp_avg_A": torch.zeros_like(A), "exp_avg_sq_A": torch.zeros_like(A)}))
        st = g.state
        st["step"] += 1
        k = int(st["step"].item())
        c1, c2 = 1 - beta1**k, math.sqrt(1 - beta2**k)

        def adam(name: str, grad: torch.Tensor) -> torch.Tensor:
            m, v = st[f"exp_avg{name}"], st[f"exp_avg_sq{name}"]
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            return (m / c1) / (v.sqrt() / c2 + hp["eps"])

        if self.mode == "full":
            gb, ga = adjusted_gradients(B, A, grad_B, grad_A, g.scale, "zero")  # X cancels in g~
            delta = adam("", equivalent_gradient(B, A, gb, ga, g.scale))
            # The Adam update plays the full gradient: LoRA's gradients of <delta, W> are s delta A^T, s B^T delta.
            step_B, step_A = adjusted_gradients(B, A, g.scale * delta @ A.mT, g.scale * B.mT @ delta, g.scale,
                                                self.x_mode)
        else:
            gb, ga = adjusted_gradients(B, A, grad_B, grad_A, g.scale, self.x_mode)
            step_B, step_A = adam("_B", gb), adam("_A", ga)
        decay = math.sqrt(1.0 - hp["lr"] * hp["weight_decay"])  # B A shrinks by 1 - lr wd, as AdamW's W
        new_B, new_A = B * decay - hp["lr"] * step_B, A * decay - hp["lr"] * step_A
        torch._foreach_copy_(g.Bs, list(new_B.unbind(0)))
        torch._foreach_copy_(g.As, list(new_A.unbind(0)))
