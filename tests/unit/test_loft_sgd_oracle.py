"""LoFT-GD on the matrix factorisation problem (Appendix B, eq. 14, Lemmas 1 and 2).

f(U, V) = 0.5 ||U V^T - A||_F^2 with U = s B, V = A_lora^T (PEFT convention)."""
from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from loft_dense_oracle import well_conditioned  # noqa: E402

from loft.optim import LoFTSGD  # noqa: E402

DT = torch.float64


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def fact_loss(target):
    return lambda W: 0.5 * ((W - target) ** 2).sum()


@pytest.mark.parametrize("m,n,r", [(9, 6, 2), (5, 8, 3)])
@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_lemma2_lr1_is_alternating_least_squares(m, n, r, scale):
    """Lemma 2: LoFT-GD with step size 1 is ALS. The first step (update_U = False) gives
    V_1 = argmin_V f(U_0, V) = A^T U_0 (U_0^T U_0)^-1, the next U_2 = A V_1 (V_1^T V_1)^-1,
    and so on; the loss after each step equals the exact partial minimum. Holds for any
    LoRA scale s (Building Block 2 makes the update scale invariant)."""
    g = torch.Generator().manual_seed(m * 10 + n)
    target = torch.randn(m, n, generator=g, dtype=DT)
    B0 = torch.randn(m, r, generator=g, dtype=DT)
    A0 = torch.randn(r, n, generator=g, dtype=DT)
    f = fact_loss(target)
    B, A = leaf(B0), leaf(A0)
    opt = LoFTSGD([B, A], lr=1.0, momentum=0.0, pairs=[(B, A, scale)])
    U, V = scale * B0, A0.T
    prev_loss = f(U @ V.T).item()
    for k in range(1, 9):
        if k % 2 == 1:  # V step: least squares in V with U fixed
            V = target.T @ U @ torch.linalg.inv(U.T @ U)
        else:  # U step
            U = target @ V @ torch.linalg.inv(V.T @ V)
        B.grad = A.grad = None
        f(scale * B @ A).backward()
        opt.step()
        torch.testing.assert_close(scale * B.detach(), U, rtol=1e-8, atol=1e-10,
                                   msg=lambda s: f"U after step {k}: {s}")
        torch.testing.assert_close(A.detach().T, V, rtol=1e-8, atol=1e-10,
                                   msg=lambda s: f"V after step {k}: {s}")
        # exact partial minimisation: no other U (or V) does better
        W = scale * B.detach() @ A.detach()
        if k % 2 == 1:
            best = torch.linalg.lstsq(U, target).solution.T  # argmin_V ||U V^T - A||
            best_loss = f(U @ best.T).item()
        else:
            best = torch.linalg.lstsq(V, target.T).solution.T  # argmin_U ||V U^T - A^T||
            best_loss = f(best @ V.T).item()
        assert f(W).item() == pytest.approx(best_loss, rel=1e-9)
        assert f(W).item() <= prev_loss + 1e-12
        prev_loss = f(W).item()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_lemma1_correct_subspace_recovers_gd_on_W(momentum):
    """Lemma 1: if A = U~_r S V~_r^T has rank r and U_0 = U~_r X_0, V_0 = V~_r Y_0, LoFT-GD
    (with momentum, m = mu m + g as in torch.optim.SGD) produces exactly the iterates of
    GD with momentum on f(W) = 0.5 ||W - A||^2 from W_0 = U_0 V_0^T."""
    m, n, r = 9, 7, 3
    g = torch.Generator().manual_seed(5)
    Ut, _ = torch.linalg.qr(torch.randn(m, r, generator=g, dtype=DT))
    Vt, _ = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=DT))
    target = Ut @ torch.diag(torch.tensor([3.0, 2.0, 1.5], dtype=DT)) @ Vt.T
    X0, Y0 = well_conditioned(r, r, g), well_conditioned(r, r, g)
    B0, A0 = Ut @ X0, (Vt @ Y0).T
    f = fact_loss(target)
    lr = 0.2
    W = leaf(B0 @ A0)
    ref = torch.optim.SGD([W], lr=lr, momentum=momentum)
    B, A = leaf(B0), leaf(A0)
    opt = LoFTSGD([B, A], lr=lr, momentum=momentum, pairs=[(B, A)])
    for k in range(1, 11):
        ref.zero_grad()
        f(W).backward()
        ref.step()
        B.grad = A.grad = None
        f(B @ A).backward()
        opt.step()
        torch.testing.assert_close(B.detach() @ A.detach(), W.detach(), rtol=1e-9, atol=1e-10,
                                   msg=lambda s: f"W after step {k}: {s}")
