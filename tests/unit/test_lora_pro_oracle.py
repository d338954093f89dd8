"""LoRA-Pro against a dense oracle written here from the paper's definitions, not its formulas.

Oracle for the adjusted gradients (Theorems 2.1 + 2.2 of Wang et al. 2025): among all (g_B, g_A)
whose equivalent gradient s (B g_A + g_B A) is the least-squares fit of the full gradient G,
the one closest to LoRA's own gradients. As a linear-algebra problem in vec form: the fits are
z0 + null(M) for the map M: (g_B, g_A) -> vec(s (B g_A + g_B A)); the closest point to z_lora
is z0 + N N^T (z_lora - z0) with N an orthonormal basis of null(M). No (B^T B)^-1, no Sylvester.
"""
from __future__ import annotations

import copy

import pytest
import torch

from loft.optim import LoRAProAdamW
from loft.optim.lora_pro import adjusted_gradients, equivalent_gradient

M, N, R, S = 7, 5, 2, 1.5


@pytest.fixture(autouse=True)
def float64():
    """The oracle compares to round-off; restored so other test modules keep float32."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def oracle_adjusted(B, A, G, s):
    m, r = B.shape
    n = A.shape[1]
    # row-major vec: vec(B gA) = (B kron I_n) vec(gA), vec(gB A) = (I_m kron A^T) vec(gB)
    op = s * torch.cat([torch.kron(torch.eye(m), A.T.contiguous()), torch.kron(B, torch.eye(n))], dim=1)
    z0 = torch.linalg.lstsq(op, G.reshape(-1, 1), driver="gelsd").solution
    U, sv, Vh = torch.linalg.svd(op)
    rank = int((sv > sv.max() * 1e-10).sum())
    null = Vh[rank:].T
    z_lora = torch.cat([(s * G @ A.T).reshape(-1, 1), (s * B.T @ G).reshape(-1, 1)])
    z = z0 + null @ (null.T @ (z_lora - z0))
    return z[: m * r].reshape(m, r), z[m * r:].reshape(r, n)


def projector(X):
    return X @ torch.linalg.pinv(X)


def problem(seed, zero_B=False):
    gen = torch.Generator().manual_seed(seed)
    B = torch.zeros(M, R) if zero_B else torch.randn(M, R, generator=gen)
    return B, torch.randn(R, N, generator=gen), torch.randn(M, N, generator=gen)


@pytest.mark.parametrize("seed, zero_B", [(0, False), (1, False), (2, True)])
def test_adjusted_gradients_equal_the_oracle_and_the_paper_projection(seed, zero_B):
    B, A, G = problem(seed, zero_B)
    gb, ga = adjusted_gradients(B, A, S * G @ A.T, S * B.T @ G, S)
    ob, oa = oracle_adjusted(B, A, G, S)
    torch.testing.assert_close(gb, ob, atol=1e-9, rtol=0)
    torch.testing.assert_close(ga, oa, atol=1e-9, rtol=0)
    # Theorem 2.1 as stated: g~ = P_B G + (I - P_B) G P_A, with P_A = A^T (A A^T)^-1 A = pinv(A) A
    P_B, P_A = projector(B), torch.linalg.pinv(A) @ A
    expected = P_B @ G + (torch.eye(M) - P_B) @ G @ P_A
    torch.testing.assert_close(equivalent_gradient(B, A, gb, ga, S), expected, atol=1e-9, rtol=0)
    # X only moves g_A, g_B along the null space: the equivalent gradient is the same with X = 0
    gb0, ga0 = adjusted_gradients(B, A, S * G @ A.T, S * B.T @ G, S, "zero")
    torch.testing.assert_close(equivalent_gradient(B, A, gb0, ga0, S), expected, atol=1e-9, rtol=0)
    if not zero_B:
        assert (ga0 - oa).abs().max() > 1e-3, "X = 0 should not already be the closest solution"


def loss_of(B, A, target, s):
    return (s * B @ A - target).square().sum()


def dense_loop(B, A, target, s, steps, lr, betas, eps, mode):
    """Oracle AdamW variants on one pair: 'full' keeps Adam's moments of the equivalent
    gradient (m x n) and maps the Adam update back with the oracle; 'efficient' feeds the
    oracle-adjusted factor gradients to torch's AdamW."""
    B, A = B.clone(), A.clone()
    if mode == "efficient":
        Bp, Ap = torch.nn.Parameter(B), torch.nn.Parameter(A)
        adam = torch.optim.AdamW([Bp, Ap], lr=lr, betas=betas, eps=eps, weight_decay=0.0)
        for _ in range(steps):
            G = 2 * (s * Bp.detach() @ Ap.detach() - target)
            Bp.grad, Ap.grad = oracle_adjusted(Bp.detach(), Ap.detach(), G, s)
            adam.step()
        return Bp.detach(), Ap.detach()
    m = torch.zeros(M, N)
    v = torch.zeros(M, N)
    for k in range(1, steps + 1):
        G = 2 * (s * B @ A - target)
        gb, ga = oracle_adjusted(B, A, G, s)
        g_eq = s * (B @ ga + gb @ A)
        m = betas[0] * m + (1 - betas[0]) * g_eq
        v = betas[1] * v + (1 - betas[1]) * g_eq**2
        delta = (m / (1 - betas[0] ** k)) / ((v / (1 - betas[1] ** k)).sqrt() + eps)
        sb, sa = oracle_adjusted(B, A, delta, s)
        B, A = B - lr * sb, A - lr * sa
    return B, A


@pytest.mark.parametrize("mode", ["full", "efficient"])
def test_adamw_variants_match_the_dense_oracle(mode):
    gen = torch.Generator().manual_seed(3)
    target = torch.randn(M, N, generator=gen)
    B0, A0 = torch.randn(M, R, generator=gen) * 0.1, torch.randn(R, N, generator=gen)
    B, A = torch.nn.Parameter(B0.clone()), torch.nn.Parameter(A0.clone())
    hp = dict(lr=0.05, betas=(0.9, 0.99), eps=1e-8)
    opt = LoRAProAdamW([B, A], pairs=[(B, A, S)], mode=mode, **hp)
    for _ in range(6):
        opt.zero_grad()
        loss_of(B, A, target, S).backward()
        opt.step()
    oB, oA = dense_loop(B0, A0, target, S, 6, mode=mode, **hp)
    torch.testing.assert_close(B.detach(), oB, atol=1e-8, rtol=0)
    torch.testing.assert_close(A.detach(), oA, atol=1e-8, rtol=0)


def test_state_round_trip_continues_bit_for_bit():
    gen = torch.Generator().manual_seed(4)
    target = torch.randn(M, N, generator=gen)
    B, A = torch.nn.Parameter(torch.zeros(M, R)), torch.nn.Parameter(torch.randn(R, N, generator=gen))
    head = torch.nn.Parameter(torch.randn(3, generator=gen))  # a parameter outside any pair: plain AdamW

    def step(opt, B, A, head):
        opt.zero_grad()
        (loss_of(B, A, target, S) + head.square().sum()).backward()
        opt.step()

    opt = LoRAProAdamW([B, A, head], lr=0.05, pairs=[(B, A, S)], weight_decay=0.1)
    for _ in range(3):
        step(opt, B, A, head)
    B2, A2, head2 = (torch.nn.Parameter(t.detach().clone()) for t in (B, A, head))
    opt2 = LoRAProAdamW([B2, A2, head2], lr=0.05, pairs=[(B2, A2, S)], weight_decay=0.1)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    for _ in range(2):
        step(opt, B, A, head)
        step(opt2, B2, A2, head2)
    assert torch.equal(B, B2) and torch.equal(A, A2) and torch.equal(head, head2)
