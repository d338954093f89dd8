"""Oracle tests for Newton-Schulz (Algorithms 3, 4) and LoFT-Muon (Algorithm 5)."""
from __future__ import annotations

import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from loft_dense_oracle import (  # noqa: E402
    DenseLoFTMuon,
    DenseMuon,
    dense_grad,
    kaiming_uniform_like_peft,
    newton_schulz5_dense,
    well_conditioned,
)

from loft.optim import LoFTMuon, newton_schulz5, newton_schulz5_lowrank  # noqa: E402

DT = torch.float64


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def smooth_loss(m, n, seed):
    g = torch.Generator().manual_seed(seed)
    T = torch.randn(m, n, generator=g, dtype=DT)
    C = torch.randn(m, n, generator=g, dtype=DT)
    return lambda W: 0.5 * ((W - T) ** 2).sum() + 0.3 * torch.sin(C * W).sum()


# ------------------------------------------------------------ Newton-Schulz
def test_dense_ns5_oracle_sanity():
    """Oracle self-check: NS5 maps singular values into roughly [0.7, 1.2] and keeps the
    singular vectors (it is an odd polynomial in G applied to the spectrum)."""
    g = torch.Generator().manual_seed(0)
    G = torch.randn(6, 9, generator=g, dtype=DT)
    X = newton_schulz5_dense(G)
    s = torch.linalg.svdvals(X)
    assert s.min() > 0.6 and s.max() < 1.25
    Ug, _, Vgh = torch.linalg.svd(G, full_matrices=False)
    core = Ug.T @ X @ Vgh.T  # diagonal if singular vectors are shared
    torch.testing.assert_close(core, torch.diag(torch.diagonal(core)), atol=1e-10, rtol=0)


@pytest.mark.parametrize("shape", [(6, 9), (9, 6), (7, 7), (1, 5), (12, 3)])
@pytest.mark.parametrize("steps", [5, 3])
def test_newton_schulz5_matches_algorithm3(shape, steps):
    """Algorithm 3 verbatim: X <- G/(||G||_F + 1e-7), transpose when m > n, 'steps'
    quintic iterations with (a, b, c) = (3.4445, -4.7750, 2.0315)."""
    g = torch.Generator().manual_seed(sum(shape) + steps)
    G = torch.randn(*shape, generator=g, dtype=DT) * 3
    got = newton_schulz5(G, steps=steps)
    assert got.shape == G.shape and got.dtype == G.dtype
    torch.testing.assert_close(got, newton_schulz5_dense(G, steps=steps), rtol=1e-10, atol=1e-12)


def test_newton_schulz5_eps_and_zero_input():
    """The 1e-7 guard: a zero input maps to zero, and a tiny input is visibly damped by
    eps (||G|| = 1e-7 -> X starts at G / 2e-7), exactly as Algorithm 3 prescribes."""
    Z = torch.zeros(4, 6, dtype=DT)
    assert torch.equal(newton_schulz5(Z), Z)
    g = torch.Generator().manual_seed(1)
    G = torch.randn(4, 6, generator=g, dtype=DT)
    G = G / G.norm() * 1e-7
    torch.testing.assert_close(newton_schulz5(G), newton_schulz5_dense(G), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(newton_schulz5(G, eps=1e-3), newton_schulz5_dense(G, eps=1e-3),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("m,n,r", [(12, 7, 3), (7, 12, 3), (10, 10, 4), (15, 6, 1), (5, 11, 2)])
def test_newton_schulz5_lowrank_equals_dense(m, n, r):
    """Algorithm 4: X_U (m x r) with X_U V^T = NewtonSchulz5(U V^T), for m > n (flipped
    branch), m < n and m = n; r = 1 included."""
    g = torch.Generator().manual_seed(m * 100 + n * 10 + r)
    U = torch.randn(m, r, generator=g, dtype=DT)
    V = torch.randn(n, r, generator=g, dtype=DT)
    XU = newton_schulz5_lowrank(U, V)
    assert XU.shape == (m, r)
    torch.testing.assert_close(XU @ V.T, newton_schulz5_dense(U @ V.T), rtol=1e-9, atol=1e-11)


def test_newton_schulz5_lowrank_rank_deficient_and_zero():
    """Zero momentum (LoFT-Muon's first V-step from the LoRA init) must give a zero
    update, and a rank-deficient U (duplicate columns) still matches the dense NS5."""
    V = torch.randn(7, 3, generator=torch.Generator().manual_seed(2), dtype=DT)
    assert torch.equal(newton_schulz5_lowrank(torch.zeros(5, 3, dtype=DT), V), torch.zeros(5, 3, dtype=DT))
    u = torch.randn(5, 1, generator=torch.Generator().manual_seed(3), dtype=DT)
    U = torch.cat([u, 2 * u, torch.randn(5, 1, generator=torch.Generator().manual_seed(4), dtype=DT)], 1)
    torch.testing.assert_close(newton_schulz5_lowrank(U, V) @ V.T, newton_schulz5_dense(U @ V.T),
                               rtol=1e-9, atol=1e-11)


# ------------------------------------------------------------- LoFT-Muon
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("scale", [1.0, 2.0])
@pytest.mark.parametrize("momentum", [0.95, 0.0])
def test_loft_muon_full_rank_is_dense_muon(weight_decay, scale, momentum):
    """At full rank (m = n = r, W0 = 0) every projection is the identity, so LoFT-Muon
    (Algorithm 5 with the learning rate) is Muon on W (Algorithm 2: m_k = mu m_{k-1} + g,
    W <- W - lr NS5(m_k)), with decoupled weight decay W <- (1 - lr wd) W."""
    m = n = r = 5
    steps, lr = 8, 0.05
    g = torch.Generator().manual_seed(7)
    B0 = well_conditioned(m, r, g) / scale
    A0 = well_conditioned(r, n, g)
    f = smooth_loss(m, n, 8)
    ref = DenseMuon(scale * B0 @ A0, lr=lr, momentum=momentum, weight_decay=weight_decay)
    B, A = leaf(B0), leaf(A0)
    opt = LoFTMuon([B, A], lr=lr, momentum=momentum, weight_decay=weight_decay, pairs=[(B, A, scale)])
    for k in range(1, steps + 1):
        ref.step(dense_grad(f, ref.W))
        B.grad = A.grad = None
        f(scale * B @ A).backward()
        opt.step()
        torch.testing.assert_close(scale * B.detach() @ A.detach(), ref.W, rtol=1e-8, atol=1e-10,
                                   msg=lambda s: f"W after step {k}: {s}")


@pytest.mark.parametrize("m,n,r,init,scale,weight_decay", [
    (9, 6, 2, "random", 1.0, 0.0),
    (6, 9, 3, "random", 2.0, 0.1),
    (9, 6, 2, "lora", 1.0, 0.0),
    (6, 10, 2, "lora", 0.5, 0.05),
])
def test_loft_muon_low_rank_matches_dense_definition(m, n, r, init, scale, weight_decay):
    """Algorithm 5 at low rank, defined densely: the calibrated momentum is
    m~ = sum_i mu^(k-i) g_i^V (eq. 8 with Muon's undamped momentum), the step is
    U <- (1 - lr wd) U - lr X_U with X_U V^T = NS5(m~); the first step moves V (from the
    LoRA init B = 0 that step is zero)."""
    steps, lr, mu = 8, 0.05, 0.9
    g = torch.Generator().manual_seed(m + 2 * n + r)
    if init == "lora":
        B0, A0 = torch.zeros(m, r, dtype=DT), kaiming_uniform_like_peft(r, n, g)
    else:
        B0 = torch.randn(m, r, generator=g, dtype=DT) / math.sqrt(r)
        A0 = torch.randn(r, n, generator=g, dtype=DT) * 2 / math.sqrt(n)
    W0 = torch.randn(m, n, generator=g, dtype=DT)
    f = smooth_loss(m, n, 9)
    oracle = DenseLoFTMuon(scale * B0, A0.T, lr=lr, momentum=mu, weight_decay=weight_decay)
    B, A = leaf(B0), leaf(A0)
    opt = LoFTMuon([B, A], lr=lr, momentum=mu, weight_decay=weight_decay, pairs=[(B, A, scale)])
    for k in range(1, steps + 1):
        oracle.step(dense_grad(f, W0 + oracle.U @ oracle.V.T))
        B.grad = A.grad = None
        f(W0 + scale * B @ A).backward()
        opt.step()
        torch.testing.assert_close(scale * B.detach(), oracle.U, rtol=1e-7, atol=1e-9,
                                   msg=lambda s: f"U after step {k}: {s}")
        torch.testing.assert_close(A.detach().T, oracle.V, rtol=1e-7, atol=1e-9,
                                   msg=lambda s: f"V after step {k}: {s}")


def test_loft_muon_several_pairs_evolve_independently():
    """Several pairs (same and different shapes, different scales) in one LoFT-Muon
    optimizer each follow their own dense Algorithm 5 trajectory."""
    specs = [(9, 6, 2, 1.0), (9, 6, 2, 4.0), (6, 9, 3, 0.5)]
    lr, mu, steps = 0.05, 0.9, 6
    layers = []
    for j, (m, n, r, scale) in enumerate(specs):
        g = torch.Generator().manual_seed(70 + j)
        B0 = torch.randn(m, r, generator=g, dtype=DT) / math.sqrt(r)
        A0 = torch.randn(r, n, generator=g, dtype=DT) * 2 / math.sqrt(n)
        layers.append(dict(scale=scale, f=smooth_loss(m, n, 80 + j), B=leaf(B0), A=leaf(A0),
                           oracle=DenseLoFTMuon(scale * B0, A0.T, lr=lr, momentum=mu)))
    params = [p for L in layers for p in (L["B"], L["A"])]
    opt = LoFTMuon(params, lr=lr, momentum=mu, pairs=[(L["B"], L["A"], L["scale"]) for L in layers])
    for k in range(1, steps + 1):
        for p in params:
            p.grad = None
        sum(L["f"](L["scale"] * L["B"] @ L["A"]) for L in layers).backward()
        opt.step()
        for L in layers:
            o = L["oracle"]
            o.step(dense_grad(L["f"], o.U @ o.V.T))
            torch.testing.assert_close(L["scale"] * L["B"].detach(), o.U, rtol=1e-7, atol=1e-9)
            torch.testing.assert_close(L["A"].detach().T, o.V, rtol=1e-7, atol=1e-9)
