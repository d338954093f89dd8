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
approximation"): Q = orth(A Omega), X = (Psi^T Q)^+ (Psi^T A) ~ Q^T A, SVD of X; or, with more
sweeps over the calibration batches, by the multi-pass randomised SVD with power iterations
(Halko, Martinsson & Tropp 2011), which is much more accurate when the spectrum decays slowly.
When the range sketch is as wide as A's rank can be (min(m, n) for G, n for S) it is exact.
"""
from __future__ import annotations

import torch

SUPPORTS = ("principal", "gradsvd", "skewgrad", "random", "coordinate")
REQUIRES_GRADIENT = ("gradsvd", "skewgrad")                # chosen from the calibration gradient
GRADIENT_SUPPORTS = REQUIRES_GRADIENT + ("coordinate",)  # ...or use it when given (coordinate)


def _gaussian(rows: int, cols: int, generator: torch.Generator | None, device) -> torch.Tensor:
    # Drawn on the CPU so a seed gives the same sketch on every device.
    return torch.randn(rows, cols, generator=generator).to(device)


class GradSketch:
    """Randomised sketch of one layer's calibration gradient G = sum_b dY_b^T X_b (m x n).

    State: two test matrices and two accumulators, each (m or n) x O(r):
        g_in   = G   @ test_in    (m x a),   test_in:  n x a
        gt_out = G^T @ test_out   (n x b),   test_out: m x b
    A batch (X: tokens x n, dY: tokens x m) adds dY^T (X test_in) and X^T (dY test_out), which is
    O(tokens (m + n)(a + b)) work; G is never formed. k = r + oversample, capped by the largest
    rank of the sketched matrix (min(m, n) for G, n for S, which can have rank 2 min(m, n)).

    passes = 1 (single pass, Tropp et al. 2017), l = min(2k + 1, co-range rows):
      gradsvd / coordinate: test_in = Omega (n x k), test_out = Psi (m x l), Gaussian; g_in is the
        range sketch G Omega, gt_out^T the co-range sketch Psi^T G.
      skewgrad (S = skew(W0^T G)): test_in = Theta = [Omega | Psi] (n x (k + l)), test_out = W0 Theta,
        so S Theta = (W0^T g_in - gt_out) / 2 (one m x n x (k + l) product at the end); S is
        skew, so Psi^T S = -(S Psi)^T gives the co-range for free.
    passes = p > 1 (randomised range finder with power iterations, Halko, Martinsson & Tropp
    2011): each sweep over the same batches multiplies the orthonormalised previous result by G,
    G^T or S once (`next_pass` in between); two sweeps of G make one classical G^T G iteration:
      gradsvd alternates sides: G Omega, G^T Q, G X, ... with Q, X the orthonormalised previous
        result; the last product is exact for the projected matrix (no co-range needed).
      skewgrad: S X for X = Omega, then orth(S X), ...; finally Rayleigh-Ritz on X^T S X.
      coordinate always uses a single pass (it needs the co-range's column energies).
    """

    def __init__(self, weight: torch.Tensor, support: str, r: int, oversample: int = 8,
                 generator: torch.Generator | None = None, passes: int = 1):
        if support not in GRADIENT_SUPPORTS:
            raise ValueError(f"support {support!r} uses no gradient sketch")
        if passes < 1:
            raise ValueError(f"passes must be >= 1, got {passes}")
        w = weight.detach().float()
        m, n = w.shape
        self.support, self.shape = support, (m, n)
        self.passes, self.pass_index = (1 if support == "coordinate" else passes), 0
        self.k = min(r + oversample, n if support == "skewgrad" else min(m, n))
        self.l = min(2 * self.k + 1, n if support == "skewgrad" else m) if self.passes == 1 else 0
        omega = _gaussian(n, self.k, generator, w.device)
        if support == "skewgrad":
            theta = torch.cat([omega, _gaussian(n, self.l, generator, w.device)], 1)
            self._set_tests(theta, w @ theta)
        else:
            self._set_tests(omega, _gaussian(m, self.l, generator, w.device))

    def _set_tests(self, test_in: torch.Tensor, test_out: torch.Tensor) -> None:
        m, n = self.shape
        self.test_in, self.test_out = test_in, test_out
        self.g_in = test_in.new_zeros(m, test_in.shape[1])
        self.gt_out = test_in.new_zeros(n, test_out.shape[1])

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

    def _s_times_test(self, weight: torch.Tensor) -> torch.Tensor:
        if weight is None or tuple(weight.shape) != self.shape:
            raise ValueError(f"skewgrad needs the layer's weight W0 ({self.shape[0]} x {self.shape[1]})")
        return (weight.detach().float().T @ self.g_in - self.gt_out) / 2  # S test_in

    @torch.no_grad()
    def next_pass(self, weight: torch.Tensor | None = None) -> None:
        """Turn this pass's products into the next pass's test matrices (skewgrad needs W0)."""
        if self.pass_index + 1 >= self.passes:
            raise RuntimeError(f"the sketch has only {self.passes} pass(es)")
        self.pass_index += 1
        m, n = self.shape
        if self.support == "skewgrad":
            x = torch.linalg.qr(self._s_times_test(weight)).Q
            self._set_tests(x, weight.detach().float() @ x)
        elif self.test_in.shape[1]:  # this pass gave G X: probe G^T next
            self._set_tests(self.test_in.new_zeros(n, 0), torch.linalg.qr(self.g_in).Q)
        else:  # this pass gave G^T Q: probe G next
            self._set_tests(torch.linalg.qr(self.gt_out).Q, self.test_in.new_zeros(m, 0))

    @torch.no_grad()
    def column_energy(self) -> torch.Tensor:
        """Estimate of ||G e_j||^2 for every input coordinate j (unbiased for Gaussian Psi)."""
        if self.support == "skewgrad" or self.passes > 1:
            raise ValueError("only a single-pass G sketch estimates the column energies of G")
        return self.gt_out.pow(2).sum(1) / self.gt_out.shape[1]

    @torch.no_grad()
    def top_subspace(self, r: int, weight: torch.Tensor | None = None) -> torch.Tensor:
        """P (r x n): top right singular subspace of G, or (skewgrad, needs W0) of S."""
        if self.pass_index + 1 != self.passes:
            raise RuntimeError(f"the sketch is in pass {self.pass_index + 1} of {self.passes}")
        if self.support == "skewgrad":
            s_test = self._s_times_test(weight)
            if self.passes == 1:
                s_omega, s_psi, psi = s_test[:, : self.k], s_test[:, self.k:], self.test_in[:, self.k:]
                x = torch.linalg.qr(s_omega).Q                                     # n x k, range of S
                core = torch.linalg.lstsq(psi.T @ x, -s_psi.T).solution @ x        # ~ (X^T S) X
            else:
                x = self.test_in                                                   # orthonormal
                core = x.T @ s_test                                                # X^T S X
            core = (core - core.T) / 2  # Rayleigh-Ritz on range(X), kept skew so planes stay paired
            return (x @ torch.linalg.svd(core).U[:, :r]).T
        if self.passes == 1:
            q = torch.linalg.qr(self.g_in).Q                                       # m x k, range of G
            x = torch.linalg.lstsq(self.test_out.T @ q, self.gt_out.T).solution   # k x n, ~ Q^T G
            return torch.linalg.svd(x, full_matrices=False).Vh[:r]
        if self.test_in.shape[1]:  # last pass gave G X (X orthonormal): right vectors X V
            return torch.linalg.svd(self.g_in, full_matrices=False).Vh[:r] @ self.test_in.T
        return torch.linalg.svd(self.gt_out, full_matrices=False).U[:, :r].T      # Q^T G = (G^T Q)^T


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
    if sketch is not None and name in GRADIENT_SUPPORTS and \
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
    if name not in REQUIRES_GRADIENT:
        raise ValueError(f"unknown support {name!r}; choose one of {SUPPORTS}")
    if g is None and sketch is None:
        raise ValueError(f"support {name!r} needs the calibration gradient (grad=) or a sketch (sketch=)")
    if sketch is not None:
        return sketch.top_subspace(r, w)
    if name == "gradsvd":
        return _top_right(g, r)
    wtg = w.T @ g
    return _top_right((wtg - wtg.T) / 2, r)
