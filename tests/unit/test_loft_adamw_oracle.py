"""Oracle tests for LoFT-AdamW (Tastan et al., Section 2 and Algorithm 1).

Every expected value here comes from an independent dense definition
(`loft_dense_oracle.py`) or from torch.optim.AdamW, never from the implementation.
PEFT convention: W = W0 + s * B @ A; paper: U = s * B, V = A^T.
"""
from __future__ import annotations

import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from loft_dense_oracle import (  # noqa: E402
    DenseLoFTAdamW,
    FactorLoFTSimple,
    dense_grad,
    kaiming_uniform_like_peft,
    well_conditioned,
)

from loft.optim import LoFTAdamW  # noqa: E402

DT = torch.float64


# ------------------------------------------------------------------------ helpers
def smooth_loss(m, n, seed):
    """f(W) = 0.5 ||W - T||^2 + 0.3 sum sin(C * W): smooth, non-quadratic; evaluated in W's
    dtype and on W's device (the implementation may run on a GPU in float32)."""
    g = torch.Generator().manual_seed(seed)
    T = torch.randn(m, n, generator=g, dtype=DT)
    C = torch.randn(m, n, generator=g, dtype=DT)
    return lambda W: 0.5 * ((W - T.to(W)) ** 2).sum() + 0.3 * torch.sin(C.to(W) * W).sum()


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def backward_pair(loss_fn, B, A, scale, W0):
    """Autograd gradients of f(W0 + s B A) w.r.t. B and A (what a PEFT model produces)."""
    for p in (B, A):
        p.grad = None
    loss = loss_fn(W0.to(B) + scale * B @ A)
    loss.backward()
    return loss.detach()


def init_factors(m, n, r, seed, init):
    """Returns (B, A) in PEFT shapes. 'lora': B = 0 and A kaiming-uniform (Hu et al.);
    'random': both factors Gaussian."""
    g = torch.Generator().manual_seed(seed)
    if init == "lora":
        return torch.zeros(m, r, dtype=DT), kaiming_uniform_like_peft(r, n, g)
    B = torch.randn(m, r, generator=g, dtype=DT) / math.sqrt(r)
    A = torch.randn(r, n, generator=g, dtype=DT) / math.sqrt(n) * 2
    return B, A


def assert_factors(impl, B, A, oracle, scale, step):
    impl.assert_close(scale * B, oracle.U, msg=lambda s: f"U = s*B differs from the oracle after step {step}: {s}")
    impl.assert_close(A.T, oracle.V, msg=lambda s: f"V = A^T differs from the oracle after step {step}: {s}")


# -------------------------------------------------------------- oracle self-check
def test_dense_oracle_is_adamw_at_full_rank():
    """Sanity check of the test oracle itself: with P_U = P_V = I (m = n = r), eq. (9)
    is exactly AdamW on W (Section 2.4, 'recovers full fine-tuning')."""
    m = n = r = 5
    g = torch.Generator().manual_seed(1)
    U, V = well_conditioned(m, r, g), well_conditioned(n, r, g)
    f = smooth_loss(m, n, 2)
    oracle = DenseLoFTAdamW(U, V, lr=0.02, weight_decay=0.1)
    W = leaf(U @ V.T)
    ref = torch.optim.AdamW([W], lr=0.02, weight_decay=0.1)
    for _ in range(10):
        oracle.step(dense_grad(f, oracle.U @ oracle.V.T))
        ref.zero_grad()
        f(W).backward()
        ref.step()
    torch.testing.assert_close(oracle.U @ oracle.V.T, W.detach(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------ 1. full rank == AdamW on W
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("scale", [1.0, 2.5])
@pytest.mark.parametrize("eps", [1e-8, 1e-3])
def test_full_rank_recovers_torch_adamw(weight_decay, scale, eps, impl):
    """Section 2.4: with r = m = n and full-rank factors (P_U = P_V = I), LoFT-AdamW on
    (B, A) follows torch.optim.AdamW on the dense W = s B A (W0 = 0) to round-off.
    A non-pair parameter b, coupled to W in the loss, must get plain AdamW with the same
    hyper-parameters. eps = 1e-3 makes the eps-outside-the-sqrt convention visible."""
    m = n = r = 6
    steps, lr, betas = 20, 0.02, (0.9, 0.99)
    g = torch.Generator().manual_seed(0)
    B0 = well_conditioned(m, r, g) / scale
    A0 = well_conditioned(r, n, g)
    b0 = torch.randn(m, generator=g, dtype=DT)
    tb = torch.randn(m, generator=g, dtype=DT)
    f = smooth_loss(m, n, 3)

    def total_loss(W, b):
        return f(W) + 0.5 * ((b - tb.to(b)) ** 2).sum() + 0.2 * (b * torch.tanh(W).sum(1)).sum()

    # reference: AdamW on the dense matrix
    W_ref, b_ref = leaf(scale * B0 @ A0), leaf(b0)
    ref = torch.optim.AdamW([W_ref, b_ref], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    # LoFT on the factors
    B, A, b = impl.leaf(B0), impl.leaf(A0), impl.leaf(b0)
    opt = LoFTAdamW([B, A, b], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                    pairs=[(B, A, scale)])
    for k in range(1, steps + 1):
        ref.zero_grad()
        total_loss(W_ref, b_ref).backward()
        ref.step()
        for p in (B, A, b):
            p.grad = None
        total_loss(scale * B @ A, b).backward()
        opt.step()
        impl.assert_close(scale * B @ A, W_ref.detach(), msg=lambda s: f"W differs from AdamW after step {k}: {s}")
        impl.assert_close(b, b_ref.detach(), msg=lambda s: f"non-pair param differs from AdamW after step {k}: {s}")


# ----------------------------------------------- 2. low rank == dense eq. (9)
LOW_RANK_CASES = [
    # (m, n, r, init, scale, weight_decay, eps)
    (7, 5, 2, "random", 1.0, 0.0, 1e-8),
    (5, 8, 3, "random", 1.0, 0.0, 1e-8),
    (7, 5, 2, "random", 0.5, 0.1, 1e-8),
    (5, 8, 3, "lora", 1.0, 0.0, 1e-8),
    (9, 6, 2, "lora", 2.0, 0.05, 1e-3),
    (6, 9, 3, "random", 1.0, 0.0, 1e-3),
]


@pytest.mark.parametrize("m,n,r,init,scale,weight_decay,eps", LOW_RANK_CASES)
def test_low_rank_matches_dense_eq9(m, n, r, init, scale, weight_decay, eps, impl):
    """Eq. (8)-(9) with Building Block 5: at low rank each step equals the dense
    definition built from sequentially projected gradients g_i^V = G_i P_{V_i}...P_{V_k}
    (resp. G_i^T P_{U_i}...P_{U_k}), followed by the projection onto the fixed factor's
    subspace. Checks both factors after every step (first step moves A only; from the
    LoRA init B = 0 that step is a no-op because P_U = 0). W0 != 0 on purpose: the
    optimizer never sees W0."""
    steps, lr, betas = 10, 0.03, (0.9, 0.999)
    B0, A0 = init_factors(m, n, r, seed=10 + m + n, init=init)
    W0 = torch.randn(m, n, generator=torch.Generator().manual_seed(4), dtype=DT)
    f = smooth_loss(m, n, seed=m * n)
    oracle = DenseLoFTAdamW(scale * B0, A0.T, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    B, A = impl.leaf(B0), impl.leaf(A0)
    opt = LoFTAdamW([B, A], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                    pairs=[(B, A, scale)])
    for k in range(1, steps + 1):
        oracle.step(dense_grad(f, W0 + oracle.U @ oracle.V.T))
        backward_pair(f, B, A, scale, W0)
        opt.step()
        assert_factors(impl, B, A, oracle, scale, k)


def test_lora_init_first_step_is_a_noop_and_second_moves_B_only():
    """Algorithm 1 starts with update_U = False. From B = 0 the first (V) step has
    P_U = 0, so A stays put; the second step moves B and leaves A alone."""
    m, n, r = 8, 6, 2
    B0, A0 = init_factors(m, n, r, seed=0, init="lora")
    f = smooth_loss(m, n, seed=1)
    B, A = leaf(B0), leaf(A0)
    opt = LoFTAdamW([B, A], lr=0.01, pairs=[(B, A)])
    backward_pair(f, B, A, 1.0, torch.zeros(m, n, dtype=DT))
    opt.step()
    assert torch.equal(B.detach(), B0) and torch.allclose(A.detach(), A0, rtol=0, atol=1e-15)
    backward_pair(f, B, A, 1.0, torch.zeros(m, n, dtype=DT))
    opt.step()
    assert torch.allclose(A.detach(), A0, rtol=0, atol=1e-15)
    assert B.detach().abs().max() > 1e-3


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_alternation_moves_one_factor_per_step(weight_decay):
    """Building Block 1 and Algorithm 1: A (V) moves on odd steps, B (U) on even steps;
    weight decay touches only the factor being updated (Section 2.4)."""
    m, n, r = 8, 6, 3
    B0, A0 = init_factors(m, n, r, seed=3, init="random")
    f = smooth_loss(m, n, seed=5)
    B, A = leaf(B0), leaf(A0)
    opt = LoFTAdamW([B, A], lr=0.01, weight_decay=weight_decay, pairs=[(B, A)])
    for k in range(1, 7):
        b_before, a_before = B.detach().clone(), A.detach().clone()
        backward_pair(f, B, A, 1.0, torch.zeros(m, n, dtype=DT))
        opt.step()
        moved_B = not torch.equal(B.detach(), b_before)
        moved_A = not torch.equal(A.detach(), a_before)
        assert (moved_A, moved_B) == ((True, False) if k % 2 == 1 else (False, True)), f"step {k}"


# --------------------------------------------- calibration ablations, defined densely
@pytest.mark.parametrize("calibrate_momentum,calibrate_second_moment",
                         [(False, True), (True, False), (False, False)])
@pytest.mark.parametrize("init", ["random", "lora"])
def test_calibration_ablations_match_dense_definition(calibrate_momentum, calibrate_second_moment, init, impl):
    """Building Blocks 3 and 4 switched off: skipping the recalibration (C = I in
    Algorithm 1, lines 9-12) means the step-i gradient enters the moments as
    G_i V_i (V_i^T V_i)^+ V_k^T instead of the sequential projection g_i^V."""
    m, n, r = 7, 6, 2
    steps, lr = 10, 0.03
    B0, A0 = init_factors(m, n, r, seed=21, init=init)
    f = smooth_loss(m, n, seed=22)
    oracle = DenseLoFTAdamW(B0, A0.T, lr=lr, calibrate_momentum=calibrate_momentum,
                            calibrate_second_moment=calibrate_second_moment)
    full = DenseLoFTAdamW(B0, A0.T, lr=lr)
    B, A = impl.leaf(B0), impl.leaf(A0)
    opt = LoFTAdamW([B, A], lr=lr, pairs=[(B, A)], calibrate_momentum=calibrate_momentum,
                    calibrate_second_moment=calibrate_second_moment)
    W0 = torch.zeros(m, n, dtype=DT)
    for k in range(1, steps + 1):
        oracle.step(dense_grad(f, oracle.U @ oracle.V.T))
        full.step(dense_grad(f, full.U @ full.V.T))
        backward_pair(f, B, A, 1.0, W0)
        opt.step()
        assert_factors(impl, B, A, oracle, 1.0, k)
    # the ablation must actually change the trajectory (otherwise this test proves nothing)
    assert (oracle.U - full.U).abs().max() > 1e-6 or (oracle.V - full.V).abs().max() > 1e-6


def test_tolerance_rejects_a_wrong_definition(impl):
    """The comparison must be able to fail at the tolerance in use (float32 on a GPU included):
    LoFT without second-moment calibration, checked against the full definition, is caught."""
    m, n, r = 7, 6, 2
    B0, A0 = init_factors(m, n, r, seed=21, init="random")
    f = smooth_loss(m, n, seed=22)
    oracle = DenseLoFTAdamW(B0, A0.T, lr=0.03)
    B, A = impl.leaf(B0), impl.leaf(A0)
    opt = LoFTAdamW([B, A], lr=0.03, pairs=[(B, A)], calibrate_second_moment=False)
    with pytest.raises(AssertionError, match="differs from the oracle"):
        for k in range(1, 11):
            oracle.step(dense_grad(f, oracle.U @ oracle.V.T))
            backward_pair(f, B, A, 1.0, torch.zeros(m, n, dtype=DT))
            opt.step()
            assert_factors(impl, B, A, oracle, 1.0, k)


def test_loft_simple_is_factor_space_adam_on_calibrated_scaled_gradients(impl):
    """LoFT (simple), Appendix E.2: project_update=False, calibrate_second_moment=False is
    Adam in factor space on the scaled (BB 2), momentum-calibrated (BB 3) gradients."""
    m, n, r = 8, 5, 2
    steps, lr, wd = 10, 0.02, 0.1
    B0, A0 = init_factors(m, n, r, seed=31, init="random")
    f = smooth_loss(m, n, seed=32)
    oracle = FactorLoFTSimple(B0, A0.T, lr=lr, weight_decay=wd)
    B, A = impl.leaf(B0), impl.leaf(A0)
    opt = LoFTAdamW([B, A], lr=lr, weight_decay=wd, pairs=[(B, A)],
                    project_update=False, calibrate_second_moment=False)
    for k in range(1, steps + 1):
        oracle.step(dense_grad(f, oracle.U @ oracle.V.T))
        backward_pair(f, B, A, 1.0, torch.zeros(m, n, dtype=DT))
        opt.step()
        assert_factors(impl, B, A, oracle, 1.0, k)


def test_project_update_false_requires_no_second_moment_calibration():
    """Calibrated cross-terms p are meaningless without the projected full update; the
    combination project_update=False, calibrate_second_moment=True must be refused."""
    B, A = leaf(torch.randn(4, 2, dtype=DT)), leaf(torch.randn(2, 3, dtype=DT))
    with pytest.raises(Exception):
        LoFTAdamW([B, A], lr=0.01, pairs=[(B, A)], project_update=False, calibrate_second_moment=True)


# ------------------------------------------------ 8. every ablation runs and matters
FLAGS = ["alternate", "scale_gradients", "calibrate_momentum", "calibrate_second_moment", "project_update"]
ABLATIONS = [
    dict(zip(FLAGS, bits))
    for bits in [tuple(bool((i >> j) & 1) for j in range(5)) for i in range(32)]
    if not all(bits) and not (bits[4] is False and bits[3] is True)
]


def _run(flags, steps=10, m=9, n=7, r=3, seed=41):
    B0, A0 = init_factors(m, n, r, seed=seed, init="random")
    f = smooth_loss(m, n, seed=seed + 1)
    B, A = leaf(B0), leaf(A0)
    opt = LoFTAdamW([B, A], lr=0.03, weight_decay=0.01, pairs=[(B, A)], **flags)
    history = []
    for _ in range(steps):
        backward_pair(f, B, A, 1.0, torch.zeros(m, n, dtype=DT))
        opt.step()
        history.append((B.detach().clone(), A.detach().clone()))
    return history


@pytest.mark.parametrize("flags", ABLATIONS, ids=lambda d: "-".join(k for k, v in d.items() if not v) + "-off")
def test_ablation_runs_finite_and_differs_from_full_loft(flags):
    """Appendix E.1 ablations: each valid flag combination runs, stays finite, and changes
    the trajectory relative to full LoFT (a flag that is silently ignored fails here)."""
    full = _run({})
    abl = _run(flags)
    for B, A in abl:
        assert torch.isfinite(B).all() and torch.isfinite(A).all()
    diff = max((B1 - B2).abs().max().item() + (A1 - A2).abs().max().item()
               for (B1, A1), (B2, A2) in zip(full, abl))
    assert diff > 1e-6, f"ablation {flags} reproduces full LoFT (max diff {diff:.2e})"
    if not flags["alternate"]:
        B1, A1 = abl[0]
        B0, A0 = init_factors(9, 7, 3, seed=41, init="random")
        assert not torch.equal(B1, B0) and not torch.equal(A1, A0), \
            "alternate=False must update both factors on every step"


# ------------------------------------- 4. float32 stability on the Figure 2 problem
def _figure2(dtype, lr, steps=100, method="loft", device="cpu"):
    m, n, r = 1024, 512, 8
    g = torch.Generator().manual_seed(0)
    X = torch.randn(m, 8, generator=g, dtype=DT)
    Y = torch.randn(n, 8, generator=g, dtype=DT)
    target = (X @ Y.T / math.sqrt(8)).to(device, dtype)
    A_init = kaiming_uniform_like_peft(r, n, g).to(device, dtype)

    def f(W):
        return ((W - target) ** 2).sum()

    if method == "full":
        W = torch.zeros(m, n, dtype=dtype, requires_grad=True)
        opt = torch.optim.AdamW([W], lr=lr, weight_decay=0.0)
        for _ in range(steps):
            W.grad = None
            f(W).backward()
            opt.step()
        return f(W.detach()).item()
    if method == "initial":
        return f(torch.zeros(m, n, dtype=dtype)).item()
    B = torch.zeros(m, r, dtype=dtype, device=device, requires_grad=True)
    A = A_init.clone().requires_grad_(True)
    opt = LoFTAdamW([B, A], lr=lr, weight_decay=0.0, pairs=[(B, A)])
    for _ in range(steps):
        B.grad = A.grad = None
        f(B @ A).backward()
        opt.step()
    return f((B @ A).detach()).item()


@pytest.mark.parametrize("lr", [0.05, 0.01])
def test_figure2_float32_tracks_float64(lr, impl):
    """Section 2.5 / Figure 2: f(W) = ||W - A||_F^2, rank(A) = r = 8, m = 1024, n = 512,
    LoRA init, Adam lr tuned for full fine-tuning. In float32 the reconstructed second
    moment can reach 0 (or go negative) where the momentum is not 0, and a naive
    implementation diverges within a few steps (checked while writing this test). Float32 must stay finite and within 2x of
    float64, and float64 LoFT must track full fine-tuning (within 2x of its loss)."""
    loss64 = _figure2(torch.float64, lr)
    loss32 = _figure2(torch.float32, lr, device=impl.device)
    full64 = _figure2(torch.float64, lr, method="full")
    initial = _figure2(torch.float64, lr, method="initial")
    assert math.isfinite(loss32)
    assert 0.5 * loss64 <= loss32 <= 2.0 * loss64, f"float32 {loss32:.4g} vs float64 {loss64:.4g}"
    assert loss64 <= 2.0 * full64, f"LoFT {loss64:.4g} vs full fine-tuning {full64:.4g}"
    assert loss64 < 0.5 * initial


# ------------------------------------------------- several pairs in one optimizer
def test_several_pairs_evolve_independently(impl):
    """Each pair is its own LoFT problem: with three pairs in one optimizer (two of the
    same shape with different scales, one of another shape, plus a LoRA-init pair) and a
    loss that is a sum over layers, every pair follows its own dense eq. (9) trajectory."""
    specs = [(7, 5, 2, "random", 1.0), (7, 5, 2, "random", 3.0), (5, 8, 3, "random", 0.5),
             (7, 5, 2, "lora", 2.0)]
    lr, steps = 0.03, 8
    layers = []
    for j, (m, n, r, init, scale) in enumerate(specs):
        B0, A0 = init_factors(m, n, r, seed=50 + j, init=init)
        layers.append(dict(scale=scale, f=smooth_loss(m, n, seed=60 + j), B=impl.leaf(B0), A=impl.leaf(A0),
                           oracle=DenseLoFTAdamW(scale * B0, A0.T, lr=lr, weight_decay=0.05)))
    params = [p for L in layers for p in (L["B"], L["A"])]
    opt = LoFTAdamW(params, lr=lr, weight_decay=0.05,
                    pairs=[(L["B"], L["A"], L["scale"]) for L in layers])
    for k in range(1, steps + 1):
        for p in params:
            p.grad = None
        sum(L["f"](L["scale"] * L["B"] @ L["A"]) for L in layers).backward()
        opt.step()
        for L in layers:
            o = L["oracle"]
            o.step(dense_grad(L["f"], o.U @ o.V.T))
            assert_factors(impl, L["B"], L["A"], o, L["scale"], k)
