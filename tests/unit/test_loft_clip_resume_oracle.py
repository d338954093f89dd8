"""Projected gradient clipping (Building Block 6) and bit-for-bit resumption for the
LoFT optimizers. Expected norms come from dense projections computed in the test."""
from __future__ import annotations

import io
import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from loft_dense_oracle import DenseLoFTAdamW, dense_grad, kaiming_uniform_like_peft, proj  # noqa: E402

from loft.optim import LoFTAdamW, LoFTMuon, LoFTSGD  # noqa: E402

DT = torch.float64


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def problem(m, n, seed):
    g = torch.Generator().manual_seed(seed)
    T = torch.randn(m, n, generator=g, dtype=DT)
    C = torch.randn(m, n, generator=g, dtype=DT)
    tb = torch.randn(m, generator=g, dtype=DT)

    def f(W):
        return 0.5 * ((W - T) ** 2).sum() + 0.3 * torch.sin(C * W).sum()

    def total(W, b):
        return f(W) + 0.5 * ((b - tb) ** 2).sum() + 0.2 * (b * torch.tanh(W).sum(1)).sum()

    return f, total


def factors(m, n, r, seed, init="random"):
    g = torch.Generator().manual_seed(seed)
    if init == "lora":
        B = torch.zeros(m, r, dtype=DT)
        A = kaiming_uniform_like_peft(r, n, g)
    else:
        B = torch.randn(m, r, generator=g, dtype=DT) / math.sqrt(r)
        A = torch.randn(r, n, generator=g, dtype=DT) * 2 / math.sqrt(n)
    b = torch.randn(m, generator=g, dtype=DT)
    return B, A, b


def grads_with_dense(total, B, A, b, scale):
    """Fills B.grad, A.grad, b.grad and returns the dense G = df/dW."""
    for p in (B, A, b):
        p.grad = None
    W = scale * B @ A
    W.retain_grad()
    total(W, b).backward()
    return W.grad.detach().clone()


# ---------------------------------------------------------- 7. projected clipping
@pytest.mark.parametrize("init", ["random", "lora"])
@pytest.mark.parametrize("scale", [1.0, 3.0])
@pytest.mark.parametrize("max_norm_factor", [0.3, 10.0])
def test_projected_clipping_norm_and_rescaling(init, scale, max_norm_factor):
    """Building Block 6: when U is about to be updated, the pair's effective gradient is
    grad_U~ V^T = G P_V, so its norm is ||G P_V||_F (||P_U G||_F when V is next). The
    total combines it with the plain grad norms of non-pair params; when the total exceeds
    max_norm every gradient is scaled by the same factor so that the total becomes
    max_norm (torch convention, up to its 1e-6 guard). Checked on a V-phase and a U-phase."""
    m, n, r = 8, 6, 2
    f, total = problem(m, n, seed=7)
    B0, A0, b0 = factors(m, n, r, seed=8, init=init)
    B, A, b = leaf(B0 / scale), leaf(A0), leaf(b0)
    opt = LoFTAdamW([B, A, b], lr=0.02, pairs=[(B, A, scale)], projected_clipping=True)
    for phase in ("V", "U", "V", "U"):
        G = grads_with_dense(total, B, A, b, scale)
        U, V = scale * B.detach(), A.detach().T
        eff = proj(U) @ G if phase == "V" else G @ proj(V)
        expected = math.sqrt(eff.norm() ** 2 + b.grad.norm() ** 2)
        g0 = [p.grad.clone() for p in (B, A, b)]
        max_norm = max_norm_factor * expected
        got = float(opt.clip_grad_norm_(max_norm))
        # rel 1e-6: the math, whatever precision the norm is accumulated in (see the
        # float64-precision test below for the stricter check)
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-12), f"phase {phase}"
        coef = min(1.0, max_norm / (expected + 1e-6))
        for p, old in zip((B, A, b), g0):
            torch.testing.assert_close(p.grad, coef * old, rtol=1e-5, atol=1e-14)
        # the clipped total, measured the same way, is at most max_norm
        eff_after = coef * eff
        assert math.sqrt(eff_after.norm() ** 2 + b.grad.norm() ** 2) <= max_norm * (1 + 1e-9)
        opt.step()


@pytest.mark.parametrize("projected_clipping", [True, False])
def test_clip_norm_is_computed_in_gradient_precision(projected_clipping):
    """Like torch.nn.utils.clip_grad_norm_, float64 gradients give a float64-accurate
    total norm (projected or not), not a float32-rounded one."""
    m, n, r = 8, 6, 2
    f, total = problem(m, n, seed=13)
    B0, A0, b0 = factors(m, n, r, seed=14)
    B, A, b = leaf(B0), leaf(A0), leaf(b0)
    opt = LoFTAdamW([B, A, b], lr=0.02, pairs=[(B, A)], projected_clipping=projected_clipping)
    G = grads_with_dense(total, B, A, b, 1.0)
    if projected_clipping:
        pair_sq = (proj(B.detach()) @ G).norm() ** 2
    else:
        pair_sq = B.grad.norm() ** 2 + A.grad.norm() ** 2
    expected = math.sqrt(pair_sq + b.grad.norm() ** 2)
    got = opt.clip_grad_norm_(1e9)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_unprojected_clipping_uses_plain_gradient_norms():
    """projected_clipping=False: ordinary torch clipping over the raw gradients of B, A
    and the plain params (what LoRA does)."""
    m, n, r = 8, 6, 2
    f, total = problem(m, n, seed=9)
    B0, A0, b0 = factors(m, n, r, seed=10)
    B, A, b = leaf(B0), leaf(A0), leaf(b0)
    opt = LoFTAdamW([B, A, b], lr=0.02, pairs=[(B, A)], projected_clipping=False)
    grads_with_dense(total, B, A, b, 1.0)
    expected = math.sqrt(sum(p.grad.norm() ** 2 for p in (B, A, b)))
    got = float(opt.clip_grad_norm_(0.1 * expected))
    assert got == pytest.approx(expected, rel=1e-10)
    assert math.sqrt(sum(p.grad.norm() ** 2 for p in (B, A, b))) == pytest.approx(0.1 * expected, rel=1e-5)


def test_clipped_steps_match_dense_eq9_with_clipped_full_gradient():
    """Clipping scales B.grad and A.grad by c, i.e. the dense gradient G by c; the LoFT
    step must then be eq. (9) applied to c_k G_k (checked over 8 steps, clipping active)."""
    m, n, r = 7, 5, 2
    f, _ = problem(m, n, seed=11)
    B0, A0, _ = factors(m, n, r, seed=12)
    oracle = DenseLoFTAdamW(B0, A0.T, lr=0.03)
    B, A = leaf(B0), leaf(A0)
    opt = LoFTAdamW([B, A], lr=0.03, pairs=[(B, A)])
    max_norm = 0.5
    for k in range(1, 9):
        G = dense_grad(f, oracle.U @ oracle.V.T)
        P = proj(oracle.U) @ G if k % 2 == 1 else G @ proj(oracle.V)
        coef = min(1.0, max_norm / (P.norm().item() + 1e-6))
        assert coef < 1.0
        oracle.step(coef * G)
        B.grad = A.grad = None
        f(B @ A).backward()
        opt.clip_grad_norm_(max_norm)
        opt.step()
        torch.testing.assert_close(B.detach(), oracle.U, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(A.detach().T, oracle.V, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------ 5. bit-for-bit resumption
ADAMW_FLAGS = [
    {},
    {"alternate": False},
    {"scale_gradients": False},
    {"calibrate_momentum": False},
    {"calibrate_second_moment": False},
    {"calibrate_momentum": False, "calibrate_second_moment": False},
    {"project_update": False, "calibrate_second_moment": False},
    {"projected_clipping": False},
]


def _drive(opt, params, total, scale, steps, clip):
    B, A, b = params
    for _ in range(steps):
        for p in params:
            p.grad = None
        total(scale * B @ A, b).backward()
        if clip:
            opt.clip_grad_norm_(1.0)
        opt.step()


def _resume_check(make_opt, total, scale, clip, with_plain=True, init="random"):
    m, n, r = 9, 6, 3
    B0, A0, b0 = factors(m, n, r, seed=21, init=init)

    def fresh(src):
        return [leaf(t) for t in src]

    straight = fresh((B0, A0, b0))
    opt = make_opt(straight if with_plain else straight[:2], straight)
    _drive(opt, straight, total, scale, 12, clip)

    first = fresh((B0, A0, b0))
    opt1 = make_opt(first if with_plain else first[:2], first)
    _drive(opt1, first, total, scale, 7, clip)
    buf = io.BytesIO()
    torch.save(opt1.state_dict(), buf)
    del opt1
    buf.seek(0)
    second = fresh(first)  # copies of the parameters after step 7
    opt2 = make_opt(second if with_plain else second[:2], second)
    opt2.load_state_dict(torch.load(buf, weights_only=False))
    _drive(opt2, second, total, scale, 5, clip)
    for name, p, q in zip(("B", "A", "b"), straight, second):
        assert torch.equal(p.detach(), q.detach()), f"{name} differs after 7 + 5 vs 12 steps"


@pytest.mark.parametrize("flags", ADAMW_FLAGS, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()) or "default")
@pytest.mark.parametrize("clip", [False, True])
def test_loft_adamw_resume_bit_for_bit(flags, clip):
    """state_dict()/load_state_dict() restore moments, cross-terms, previous iterates,
    step count and alternation phase: 7 steps + save/load + 5 steps == 12 steps exactly.
    A non-pair param (plain AdamW state) is present, weight decay is on, scale != 1."""
    _, total = problem(9, 6, seed=20)
    scale = 2.0

    def make(params, all_params):
        B, A, _ = all_params
        return LoFTAdamW(params, lr=0.02, weight_decay=0.05, pairs=[(B, A, scale)], **flags)

    _resume_check(make, total, scale, clip)


def test_loft_adamw_resume_from_lora_init():
    """Resumption also holds from B = 0 (rank-deficient first calibration)."""
    _, total = problem(9, 6, seed=22)

    def make(params, all_params):
        B, A, _ = all_params
        return LoFTAdamW(params, lr=0.02, pairs=[(B, A)])

    _resume_check(make, total, 1.0, clip=False, init="lora")


@pytest.mark.parametrize("alternate", [True, False])
def test_loft_muon_resume_bit_for_bit(alternate):
    """LoFT-Muon (Algorithm 5): momentum buffers, previous iterates and the alternation
    phase survive a save/load exactly."""
    _, total = problem(9, 6, seed=23)
    scale = 0.5

    def make(params, all_params):
        B, A, _ = all_params
        return LoFTMuon(params, lr=0.02, momentum=0.9, weight_decay=0.05,
                        pairs=[(B, A, scale)], alternate=alternate)

    _resume_check(make, lambda W, b: total(W, b.detach()), scale, clip=False, with_plain=False)


def test_loft_sgd_resume_bit_for_bit():
    """LoFT-GD with momentum: the same save/load contract (alternation phase included)."""
    _, total = problem(9, 6, seed=24)

    def make(params, all_params):
        B, A, _ = all_params
        return LoFTSGD(params, lr=0.01, momentum=0.9, pairs=[(B, A)])

    _resume_check(make, lambda W, b: total(W, b.detach()), 1.0, clip=False, with_plain=False)
