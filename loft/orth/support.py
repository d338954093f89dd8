"""Support selection for LOFT: P (r x n, orthonormal rows) spanning the rotated input subspace.

W0 is m x n (nn.Linear convention, out x in); G = dL/dW0 summed over the calibration batches.
Supports:
- principal: top-r right singular vectors of W0 (full float32 SVD, the call PSOFT makes, so
  the two share P bit for bit).
- gradsvd: top-r right singular vectors of G.
- skewgrad: the dominant r-dimensional singular subspace of S = skew(W0^T G) = (W0^T G - G^T W0)/2
  (n x n). At T = I + E the first-order signal is dL/dE = P S P^T, and this P maximises
  ||P S P^T||_F. S is skew, so S^T S = S S^T (left and right singular subspaces coincide) and
  its singular values come in equal pairs, one per invariant plane: use an even r; with an odd
  r the last direction is an arbitrary unit vector of the r-th plane.
- random: Haar-random (QR of a Gaussian, column signs fixed by diag(R) > 0).
- coordinate: r coordinate axes e_j (as rows of I, in increasing j) with the largest gradient
  energy ||G e_j||^2; with a sketch, the Johnson-Lindenstrauss estimate ||Psi^T G e_j||^2 / l;
  with no gradient information, the largest ||W0 e_j||^2 (the inputs the layer responds to most).

Gradient-informed supports take either the dense G (`grad=`, for tests and small layers) or a
`GradSketch` (`sketch=`) filled during calibration, so that G and S are never formed: the sketch
holds O((m + n) r) numbers per layer and is reduced to P by the single-pass randomised SVD of
Tropp, Yurtsever, Udell & Cevher (2017, "Practical sketching algorithms for low-rank matrix
approximation"): Q = orth(A Omega), X = (Psi^T Q)^+ (Psi^T A) ~ Q^T A, SVD of X. When the range
sketch has min(m, n) columns it is exact.
"""
from __future__ import annotations

import torch

SUPPORTS = ("principal", "gradsvd", "skewgrad", "random", "coordinate")


def _gaussian(rows: int, cols: int, generator: torch.Generator | None, device) -> torch.Tensor:
    # Drawn on the CPU so a seed gives the same sketch on every device.
    return torch.randn(rows, cols, generator=generator).to(device)


class GradSketch:
    """Single-pass sketch of one layer's calibration gradient G = sum_b dY_b^T X_b (m x n).

    State: two test matrices and two accumulators, each (m or n) x O(r):
        g_in   = G   @ test_in    (m x a),   test_in:  n x a
        gt_out = G^T @ test_out   (n x b),   test_out: m x b
    A batch (X: tokens x n, dY: tokens x m) adds dY^T (X test_in) and X^T (dY test_out), which is
    O(tokens (m + n)(a + b)) work; G is never formed.

    gradsvd / coordinate sketch G itself: test_in = Omega (n x k), test_out = Psi (m x l), Gaussian;
    g_in is the range sketch G Omega, gt_out^T the co-range sketch Psi^T G.
    skewgrad sketches S = skew(W0^T G): test_in = Theta = [Omega | Psi] (n x (k + l)) and
    test_out = W0 Theta, so that S Theta = (W0^T g_in - gt_out) / 2, one m x n x (k + l) product
    at the end. S is skew, so Psi^T S = -(S Psi)^T gives the co-range for free.
    k = min(r + oversample, m, n) and l = min(2k + 1, co-range rows), as Tropp et al. recommend.
    """

    def __init__(self, weight: torch.Tensor, support: str, r: int, oversample: int = 8,
                 generator: torch.Generator | None = None):
        if support not in ("gradsvd", "skewgrad", "coordinate"):
            raise ValueError(f"support {support!r} uses no gradient sketch")
        w = weight.detach().float()
        m, n = w.shape
        self.support, self.shape = support, (m, n)
        self.k = min(r + oversample, m, n)
        if support == "skewgrad":
            self.l = min(2 * self.k + 1, n)
            self.test_in = _gaussian(n, self.k + self.l, generator, w.device)
            self.test_out = w @ self.test_in
        else:
            self.l = min(2 * self.k + 1, m)
            self.test_in = _gaussian(n, self.k, generator, w.device)
            self.test_out = _gaussian(m, self.l, generator, w.device)
        self.g_in = w.new_zeros(m, self.test_in.shape[1])
        self.gt_out = w.new_zeros(n, self.test_out.shape[1])

    def tensors(self) -> dict[str, torch.Tensor]:
        """Everything the sketch holds (for memory accounting)."""
        return {"test_in": self.test_in, "test_out": self.test_out, "g_in": self.g_in, "gt_out": self.gt_out}

    @torch.no_grad()
    def update(self, x: torch.Tensor, dy: torch.Tensor) -> None:
        """Add one batch: x (..., n) the layer input, dy (..., m) the gradient of its output."""
        m, n = self.shape
        x, dy = x.detach().reshape(-1, n).float(), dy.detach().reshape(-1, m).float()
        self.g_in.addmm_(dy.T, x @ self.test_in)
        self.gt_out.addmm_(x.T, dy @ self.test_out)

    @torch.no_grad()
    def update_grad(self, grad: torch.Tensor) -> None:
        """Add a dense gradient (m x n); the same accumulators as `update` with grad = dy^T x."""
        g = grad.detach().float()
        self.g_in.addmm_(g, self.test_in)
        self.gt_out.addmm_(g.T, self.test_out)

    @torch.no_grad()
    def column_energy(self) -> torch.Tensor:
        """Estimate of ||G e_j||^2 for every input coordinate j (unbiased for Gaussian Psi)."""
        if self.support == "skewgrad":
            raise ValueError("a skewgrad sketch does not estimate the column energies of G")
        return self.gt_out.pow(2).sum(1) / self.gt_out.shape[1]

    @torch.no_grad()
    def top_subspace(self, r: int, weight: torch.Tensor | None = None) -> torch.Tensor:
        """P (r x n): top right singular subspace of G, or (skewgrad, needs W0) of S."""
        if self.support != "skewgrad":
            q = torch.linalg.qr(self.g_in).Q                                       # m x k, range of G
            x = torch.linalg.lstsq(self.test_out.T @ q, self.gt_out.T).solution   # k x n, ~ Q^T G
            return torch.linalg.svd(x, full_matrices=False).Vh[:r]
        if weight is None or tuple(weight.shape) != self.shape:
            raise ValueError(f"skewgrad needs the layer's weight W0 ({self.shape[0]} x {self.shape[1]})")
        s_theta = (weight.detach().float().T @ self.g_in - self.gt_out) / 2       # S Theta, n x (k + l)
        s_omega, s_psi = s_theta[:, : self.k], s_theta[:, self.k:]
        q = torch.linalg.qr(s_omega).Q                                             # n x k, range of S
        psi = self.test_in[:, self.k:]
        x = torch.linalg.lstsq(psi.T @ q, -s_psi.T).solution                      # k x n, ~ Q^T S
        core = x @ q                                                               # ~ Q^T S Q
        core = (core - core.T) / 2  # Rayleigh-Ritz on range(Q), kept skew so planes stay paired
        return (q @ torch.linalg.svd(core).U[:, :r]).T


def subspace_distance(p: torch.Tensor, q: torch.Tensor) -> float:
    """sin of the largest principal angle between the row spaces of p and q (orthonormal rows,
    equal count): ||(I - Q^T Q) P^T||_2, computed in float64 (no arccos near 1)."""
    p, q = p.detach().double(), q.detach().double().to(p.device)
    return torch.linalg.matrix_norm(p.T - q.T @ (q @ p.T), ord=2).item()


def _top_right(a: torch.Tensor, r: int) -> torch.Tensor:
    return torch.linalg.svd(a, full_matrices=False).Vh[:r]


def haar_support(n: int, r: int, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Haar-distributed r x n matrix with orthonormal rows (Mezzadri 2007); drawn on the CPU."""
    q, rr = torch.linalg.qr(torch.randn(n, r, generator=generator, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(rr))).T.to(dtype)


def coordinate_support(energy: torch.Tensor, r: int) -> torch.Tensor:
    idx = torch.topk(energy, r).indices.sort().values
    p = energy.new_zeros(r, energy.shape[0])
    p[torch.arange(r, device=energy.device), idx] = 1.0
    return p


@torch.no_grad()
def select_support(name: str, weight: torch.Tensor, r: int, grad: torch.Tensor | None = None,
                   sketch: GradSketch | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """P (r x n, orthonormal rows, on weight's device) for W0 = `weight` (m x n), computed in
    float32 (float64 for a float64 weight).

    gradsvd and skewgrad need `grad` (dense G, m x n) or `sketch`; coordinate uses either when
    given; random draws from `generator`.
    """
    w = weight.detach().to(torch.promote_types(weight.dtype, torch.float32))
    m, n = w.shape
    if not 1 <= r <= min(m, n):
        raise ValueError(f"rank r={r} must be in [1, min(m, n)={min(m, n)}] for a {m} x {n} weight")
    if grad is not None and sketch is not None:
        raise ValueError("pass either grad or sketch, not both")
    if grad is not None and tuple(grad.shape) != (m, n):
        raise ValueError(f"grad has shape {tuple(grad.shape)}, expected the weight's {(m, n)}")
    g = grad.detach().to(w.dtype) if grad is not None else None
    if sketch is not None and name in ("gradsvd", "skewgrad", "coordinate") and \
            (name == "skewgrad") != (sketch.support == "skewgrad"):  # G-sketch vs S-sketch
        raise ValueError(f"a {sketch.support} sketch cannot select a {name} support")
    if name == "principal":
        return _top_right(w, r)
    if name == "random":
        return haar_support(n, r, generator, w.dtype).to(w.device)
    if name == "coordinate":
        if g is not None:
            return coordinate_support(g.pow(2).sum(0), r)
        return coordinate_support(sketch.column_energy() if sketch is not None else w.pow(2).sum(0), r)
    if name not in ("gradsvd", "skewgrad"):
        raise ValueError(f"unknown support {name!r}; choose one of {SUPPORTS}")
    if g is None and sketch is None:
        raise ValueError(f"support {name!r} needs the calibration gradient (grad=) or a sketch (sketch=)")
    if sketch is not None:
        return sketch.top_subspace(r, w)
    if name == "gradsvd":
        return _top_right(g, r)
    wtg = w.T @ g
    return _top_right((wtg - wtg.T) / 2, r)
