"""The in-support transforms: T = I at init, orthogonality, parameter counts, and
Proposition 1 (the singular values of W+ = W0 (I + P^T (T - I) P) are those of W0)."""
from __future__ import annotations

import pytest
import torch

from loft.orth import TRANSFORMS, LoftOrthLinear, build_transform, select_support
from loft.orth.transforms import round_robin


pytestmark = pytest.mark.usefixtures("one_thread")


DT = torch.float64


def random_params_(module: torch.nn.Module, scale: float, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize("name", TRANSFORMS)
@pytest.mark.parametrize("r", [1, 2, 5, 8])
def test_identity_at_init_exactly(name, r):
    t = build_transform(name, r, generator=torch.Generator().manual_seed(r))
    assert torch.equal(t.matrix(), torch.eye(r))


@pytest.mark.parametrize("r", [2, 3, 6, 7])
def test_parameter_counts_and_givens_schedule(r):
    skew = r * (r - 1) // 2
    for name in ("cayley", "cayley_neumann", "exp", "givens"):
        assert sum(p.numel() for p in build_transform(name, r).parameters()) == skew
    assert sum(p.numel() for p in build_transform("householder", r).parameters()) == (r + r % 2) * r
    planes = [p for rnd in round_robin(r) for p in rnd]
    assert sorted(planes) == [(i, j) for i in range(r) for j in range(i + 1, r)]  # each plane once
    assert all(len({i for p in rnd for i in p}) == 2 * len(rnd) for rnd in round_robin(r))  # disjoint


@pytest.mark.parametrize("name", ["cayley", "exp", "householder", "givens"])
def test_exactly_orthogonal_with_det_one(name):
    t = build_transform(name, 6, generator=torch.Generator().manual_seed(0)).to(DT)
    random_params_(t, 0.7)
    T = t.matrix()
    torch.testing.assert_close(T.T @ T, torch.eye(6, dtype=DT), rtol=0, atol=1e-12)
    assert torch.linalg.det(T).item() == pytest.approx(1.0, abs=1e-12)
    assert (T - torch.eye(6, dtype=DT)).abs().max() > 0.1


def test_cayley_and_neumann_formulas():
    t, n = build_transform("cayley", 5).to(DT), build_transform("cayley_neumann", 5, neumann_terms=7).to(DT)
    random_params_(t, 0.2)
    n.load_state_dict(t.state_dict())
    K, I = t.generator(), torch.eye(5, dtype=DT)
    torch.testing.assert_close(t.matrix(), torch.linalg.solve(I - K, I + K), rtol=0, atol=1e-12)  # orders commute
    series = sum(torch.linalg.matrix_power(K, j) for j in range(6))  # Neumann (I - K)^-1, t - 1 terms
    torch.testing.assert_close(n.matrix(), (I + K) @ series, rtol=0, atol=1e-12)
    assert n.matrix().flatten().tolist() != t.matrix().flatten().tolist()


def test_neumann_eps_rescales_generator():
    n = build_transform("cayley_neumann", 4, neumann_eps=0.5).to(DT)
    random_params_(n, 3.0)
    ref = build_transform("cayley_neumann", 4).to(DT)
    with torch.no_grad():
        ref.skew.copy_(n.skew * 0.5 / torch.linalg.matrix_norm(n.generator()))
    torch.testing.assert_close(n.matrix(), ref.matrix())


def trained_layer(name: str, support: str, m=12, n=10, r=4, steps=6):
    g = torch.Generator().manual_seed(7)
    base = torch.nn.Linear(n, m, dtype=DT)
    with torch.no_grad():
        base.weight.copy_(torch.randn(m, n, generator=g, dtype=DT))
    P = select_support(support, base.weight, r, generator=g)
    layer = LoftOrthLinear(base, P, build_transform(name, r, generator=g)).to(DT)
    opt = torch.optim.Adam(layer.transform.parameters(), lr=0.05)
    for _ in range(steps):
        x, y = torch.randn(16, n, generator=g, dtype=DT), torch.randn(16, m, generator=g, dtype=DT)
        opt.zero_grad()
        torch.nn.functional.mse_loss(layer(x), y).backward()
        opt.step()
    return layer


@pytest.mark.parametrize("support", ["principal", "random"])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_proposition1_singular_values_preserved(name, support):
    layer = trained_layer(name, support)
    W0 = layer.base_layer.weight.detach().clone()
    T = layer.rotation().detach()
    r = T.shape[0]
    assert (T - torch.eye(r, dtype=DT)).abs().max() > 1e-2  # training moved T
    P = layer.support
    W_plus = W0 @ (torch.eye(W0.shape[1], dtype=DT) + P.T @ (T - torch.eye(r, dtype=DT)) @ P)
    layer.merge()
    torch.testing.assert_close(layer.base_layer.weight, W_plus, rtol=0, atol=1e-12)  # merge = the formula
    s0, s_plus = torch.linalg.svdvals(W0), torch.linalg.svdvals(W_plus)
    if name == "cayley_neumann":
        # T = C (I - K^(t-1)), C the exact Cayley factor commuting with K, so sigma(T) lies within
        # rho^(t-1) of 1 (rho = ||K||_2), and sigma_i(W+) / sigma_i(W0) too (multiplicative Weyl).
        rho = torch.linalg.matrix_norm(layer.transform.generator().detach(), ord=2).item()
        bound = rho ** (layer.transform.terms - 1)
        assert rho < 1
        assert (s_plus / s0 - 1).abs().max().item() <= bound + 1e-12
        sv_T = torch.linalg.svdvals(T)
        assert (sv_T - 1).abs().max().item() <= bound + 1e-12
    else:
        torch.testing.assert_close(s_plus, s0, rtol=1e-12, atol=0)
