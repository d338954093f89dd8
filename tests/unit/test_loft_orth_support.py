"""Support selectors against their definitions (distances = sin of the largest principal angle),
and the single-pass gradient sketches against the dense definitions."""
from __future__ import annotations

import pytest
import torch

from loft.orth import GradSketch, select_support, subspace_distance


pytestmark = pytest.mark.usefixtures("one_thread")


M, N, R = 30, 24, 4


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def top_eigvecs(sym: torch.Tensor, r: int) -> torch.Tensor:
    """Rows: eigenvectors of the r largest eigenvalues of a symmetric matrix (eigh, not svd)."""
    vals, vecs = torch.linalg.eigh(sym.double())
    return vecs[:, vals.argsort(descending=True)[:r]].T


def orthogonal(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64)).Q


def gapped(m: int, n: int, r: int, g: torch.Generator, top=10.0, tail=0.1) -> torch.Tensor:
    """m x n with r singular values near `top` and the rest below `tail`."""
    k = min(m, n)
    s = torch.cat([top * (1 + 0.1 * torch.rand(r, generator=g, dtype=torch.float64)),
                   tail * torch.rand(k - r, generator=g, dtype=torch.float64)])
    return (orthogonal(m, g)[:, :k] * s) @ orthogonal(n, g)[:, :k].T


def planted_skew(n: int, r: int, g: torch.Generator, top=10.0, tail=0.1) -> torch.Tensor:
    """Skew n x n with r/2 invariant planes of strength ~top, the rest below tail."""
    blocks = torch.zeros(n, n, dtype=torch.float64)
    sig = torch.cat([top * (1 + 0.1 * torch.rand(r // 2, generator=g, dtype=torch.float64)),
                     tail * torch.rand(n // 2 - r // 2, generator=g, dtype=torch.float64)])
    for i, s in enumerate(sig):
        blocks[2 * i, 2 * i + 1], blocks[2 * i + 1, 2 * i] = s, -s
    q = orthogonal(n, g)
    return q @ blocks @ q.T


def skew_of(w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    wtg = w.T @ g
    return (wtg - wtg.T) / 2


def grad_with_skew(w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """A G with skew(W^T G) = s (m >= n): G = W (W^T W)^-1 s, so W^T G = s is already skew."""
    return w @ torch.linalg.solve(w.T @ w, s)


def assert_orthonormal_rows(p: torch.Tensor) -> None:
    torch.testing.assert_close(p.double() @ p.double().T, torch.eye(p.shape[0], dtype=torch.float64),
                               rtol=0, atol=1e-5)


def test_principal_is_top_right_singular_subspace():
    w = torch.randn(M, N, generator=gen(0))
    p = select_support("principal", w, R)
    assert p.shape == (R, N)
    assert_orthonormal_rows(p)
    assert subspace_distance(p, top_eigvecs(w.T @ w, R)) < 1e-4
    s = torch.linalg.svdvals(w.double())
    energy = torch.linalg.matrix_norm(w.double() @ p.double().T) ** 2
    assert energy.item() == pytest.approx((s[:R] ** 2).sum().item(), rel=1e-5)


def test_gradsvd_is_top_right_singular_subspace_of_g():
    g = gen(1)
    w, grad = torch.randn(M, N, generator=g), torch.randn(M, N, generator=g)
    p = select_support("gradsvd", w, R, grad=grad)
    assert_orthonormal_rows(p)
    assert subspace_distance(p, top_eigvecs(grad.T @ grad, R)) < 1e-4


@pytest.mark.parametrize("r", [2, 4, 6])
def test_skewgrad_is_dominant_subspace_of_skew_w_t_g(r):
    g = gen(2)
    w, grad = torch.randn(M, N, generator=g, dtype=torch.float64), torch.randn(M, N, generator=g, dtype=torch.float64)
    p = select_support("skewgrad", w, r, grad=grad)
    s = skew_of(w, grad)
    explicit = torch.linalg.svd(s).Vh[:r]
    assert subspace_distance(p, explicit) < 1e-8
    assert subspace_distance(p, top_eigvecs(-s @ s, r)) < 1e-8  # S^T S = -S^2: no svd involved
    # P maximises the first-order signal ||P S P^T||_F: it captures the top r singular values.
    sv = torch.linalg.svdvals(s)
    assert torch.linalg.matrix_norm(p @ s @ p.T) ** 2 == pytest.approx((sv[:r] ** 2).sum().item(), rel=1e-10)


def test_random_support_is_seeded_and_haar():
    w = torch.randn(M, N, generator=gen(3))
    p1, p2 = select_support("random", w, R, generator=gen(5)), select_support("random", w, R, generator=gen(5))
    assert torch.equal(p1, p2)
    assert_orthonormal_rows(p1)
    assert not torch.equal(p1, select_support("random", w, R, generator=gen(6)))
    g = gen(7)  # Haar: E[P^T P] = (r / n) I
    projs = torch.stack([(lambda q: q.T @ q)(select_support("random", w[:, :6], 2, generator=g).double())
                         for _ in range(200)])
    torch.testing.assert_close(projs.mean(0), torch.eye(6, dtype=torch.float64) / 3, rtol=0, atol=0.08)


def test_coordinate_support():
    g = gen(4)
    w, grad = torch.randn(M, N, generator=g), 0.1 * torch.randn(M, N, generator=g)
    hot = [3, 11, 17, 20]
    grad[:, hot] *= 30
    p = select_support("coordinate", w, R, grad=grad)
    assert torch.equal(p, torch.eye(N)[hot])  # the axes of largest ||G e_j||, increasing j
    w_hot = [0, 5, 9, 23]
    w[:, w_hot] *= 30
    assert torch.equal(select_support("coordinate", w, R), torch.eye(N)[w_hot])  # no gradient: ||W0 e_j||


def test_selector_errors():
    w = torch.randn(M, N)
    with pytest.raises(ValueError, match="needs the calibration gradient"):
        select_support("skewgrad", w, R)
    with pytest.raises(ValueError, match="rank"):
        select_support("principal", w, N + 1)
    with pytest.raises(ValueError, match="unknown support"):
        select_support("nope", w, R)
    with pytest.raises(ValueError, match="cannot select"):
        select_support("skewgrad", w, R, sketch=GradSketch(w, "gradsvd", R))


@pytest.mark.parametrize("support", ["gradsvd", "skewgrad"])
def test_streaming_update_equals_dense_update(support):
    """update(x, dy) accumulates exactly what update_grad(dy^T x) does, without forming dy^T x."""
    g = gen(8)
    w = torch.randn(M, N, generator=g)
    a, b = GradSketch(w, support, R, generator=gen(9)), GradSketch(w, support, R, generator=gen(9))
    for _ in range(3):
        x, dy = torch.randn(2, 5, N, generator=g), torch.randn(2, 5, M, generator=g)
        a.update(x, dy)
        b.update_grad(dy.reshape(-1, M).T @ x.reshape(-1, N))
    for key, t in a.tensors().items():
        torch.testing.assert_close(t, b.tensors()[key], rtol=1e-4, atol=1e-4)


def test_sketch_state_is_o_m_plus_n_times_r():
    w = torch.randn(200, 150)
    for support in ("gradsvd", "skewgrad"):
        sk = GradSketch(w, support, 4, oversample=4)
        k = 8
        for t in sk.tensors().values():
            assert t.shape[0] in (200, 150) and t.shape[1] <= 2 * (3 * k + 1)
        assert sum(t.numel() for t in sk.tensors().values()) <= 2 * (200 + 150) * (3 * k + 1)


def split(total: torch.Tensor, parts: int, g: torch.Generator) -> list[torch.Tensor]:
    """Random summands of `total`: the calibration gradient arrives as a sum over batches."""
    pieces = [torch.randn(total.shape, generator=g, dtype=total.dtype) for _ in range(parts - 1)]
    return [*pieces, total - sum(pieces)]


@pytest.mark.parametrize("oversample", [2, 8])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sketched_gradsvd_matches_dense_with_a_gap(oversample, seed):
    g = gen(10 + seed)
    w, grad = torch.randn(M, N, generator=g), gapped(M, N, R, g, tail=0.01)
    sk = GradSketch(w, "gradsvd", R, oversample, generator=gen(seed))
    for piece in split(grad, 4, g):
        sk.update_grad(piece.float())
    sketched = select_support("gradsvd", w, R, sketch=sk)
    assert_orthonormal_rows(sketched)
    assert subspace_distance(sketched, select_support("gradsvd", w.double(), R, grad=grad)) < 0.02


@pytest.mark.parametrize("oversample", [2, 8])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sketched_skewgrad_matches_dense_with_a_gap(oversample, seed):
    g = gen(20 + seed)
    w = torch.randn(M, N, generator=g, dtype=torch.float64)
    s = planted_skew(N, R, g, tail=0.01)
    grad = grad_with_skew(w, s)
    torch.testing.assert_close(skew_of(w, grad), s)
    sk = GradSketch(w.float(), "skewgrad", R, oversample, generator=gen(seed))
    for piece in split(grad, 4, g):
        sk.update_grad(piece.float())
    sketched = select_support("skewgrad", w.float(), R, sketch=sk)
    assert_orthonormal_rows(sketched)
    dense = select_support("skewgrad", w, R, grad=grad)
    assert subspace_distance(dense, top_eigvecs(-s @ s, R)) < 1e-8
    assert subspace_distance(sketched, dense) < 0.02


@pytest.mark.parametrize("support", ["gradsvd", "skewgrad"])
def test_sketch_is_exact_when_it_spans_everything(support):
    """With k = min(m, n) columns the range sketch captures G (or S) exactly, so the sketched
    support equals the dense one up to round-off even without a planted gap."""
    g = gen(30)
    w, grad = torch.randn(M, N, generator=g), torch.randn(M, N, generator=g)
    sk = GradSketch(w, support, R, oversample=N, generator=gen(31))
    assert sk.k == N
    for piece in split(grad, 3, g):
        sk.update_grad(piece)
    assert subspace_distance(select_support(support, w, R, sketch=sk), select_support(support, w, R, grad=grad)) < 1e-3


def test_sketched_coordinate_energies():
    g = gen(40)
    w, grad = torch.randn(M, N, generator=g), 0.1 * torch.randn(M, N, generator=g)
    hot = [1, 8, 13, 22]
    grad[:, hot] *= 20
    sk = GradSketch(w, "coordinate", R, generator=gen(41))
    for piece in split(grad, 3, g):
        sk.update_grad(piece)
    assert torch.equal(select_support("coordinate", w, R, sketch=sk), torch.eye(N)[hot])


def decaying(m: int, n: int, g: torch.Generator, rate=0.85) -> torch.Tensor:
    """m x n with slowly decaying singular values rate^i: the hard case for one pass."""
    k = min(m, n)
    s = rate ** torch.arange(k, dtype=torch.float64)
    return (orthogonal(m, g)[:, :k] * s) @ orthogonal(n, g)[:, :k].T


def sweep(sk: GradSketch, grad: torch.Tensor, w: torch.Tensor, g: torch.Generator) -> GradSketch:
    """Feed G (as batch summands) once per pass, as calibrate() does."""
    for i in range(sk.passes):
        if i:
            sk.next_pass(w)
        for piece in split(grad, 3, g):
            sk.update_grad(piece.float())
    return sk


def captured(a: torch.Tensor, p: torch.Tensor, r: int) -> float:
    """||A P^T||_F^2 over its maximum, the sum of the top r squared singular values."""
    a, p = a.double(), p.double()
    return (torch.linalg.matrix_norm(a @ p.T) ** 2 / (torch.linalg.svdvals(a)[:r] ** 2).sum()).item()


@pytest.mark.parametrize("passes", [2, 3, 4])
@pytest.mark.parametrize("support", ["gradsvd", "skewgrad"])
def test_multi_pass_sketch_matches_dense_with_a_gap(support, passes):
    g = gen(50 + passes)
    w = torch.randn(M, N, generator=g, dtype=torch.float64)
    if support == "gradsvd":
        grad = gapped(M, N, R, g, tail=0.01)
    else:
        grad = grad_with_skew(w, planted_skew(N, R, g, tail=0.01))
    sk = sweep(GradSketch(w.float(), support, R, oversample=4, generator=gen(1), passes=passes), grad, w.float(), g)
    assert sk.l == 0 and all(t.shape[1] <= R + 4 for t in sk.tensors().values())  # no co-range needed
    sketched = select_support(support, w.float(), R, sketch=sk)
    assert_orthonormal_rows(sketched)
    assert subspace_distance(sketched, select_support(support, w, R, grad=grad)) < 5e-3


@pytest.mark.parametrize("support", ["gradsvd", "skewgrad"])
def test_power_iterations_help_when_the_spectrum_decays_slowly(support):
    """Slow decay (0.85^i): one pass captures visibly less than the optimum; power iterations
    (more sweeps over the same batches) close the gap."""
    g = gen(60)
    w = torch.randn(M, N, generator=g, dtype=torch.float64)
    grad = decaying(M, N, g) if support == "gradsvd" else grad_with_skew(w, skew_of(torch.eye(N, dtype=torch.float64),
                                                                                   decaying(N, N, g)))
    a = grad if support == "gradsvd" else skew_of(w, grad)
    caps = {}
    for passes in (1, 6):
        sk = sweep(GradSketch(w.float(), support, R, oversample=2, generator=gen(2), passes=passes), grad, w.float(), g)
        caps[passes] = captured(a, select_support(support, w.float(), R, sketch=sk), R)
    assert caps[1] < 0.9 and caps[6] > 0.96


def test_sketch_pass_bookkeeping():
    w = torch.randn(M, N)
    sk = GradSketch(w, "gradsvd", R, passes=2)
    with pytest.raises(RuntimeError, match="pass 1 of 2"):
        sk.top_subspace(R)
    sk.next_pass(w)
    with pytest.raises(RuntimeError, match="only 2 pass"):
        sk.next_pass(w)
    assert GradSketch(w, "coordinate", R, passes=3).passes == 1  # energies need the co-range
