"""In-support transforms T (r x r) of LOFT: every one starts at T = I exactly.

Each transform is a small nn.Module whose parameters are the only trainable numbers of a
LOFT layer and whose `matrix()` returns T. Features:
- cayley: T = (I + K)(I - K)^-1, K skew with r(r-1)/2 free entries. Same parameter layout
  and formula as PEFT's PSOFT/OFT (`torch.linalg.solve(I - K, I + K, left=False)`, the
  strict upper triangle in `torch.triu_indices` order, K = U - U^T), so generator values
  can be copied one to one. (I + K) and (I - K)^-1 commute, so either order is the same T.
- cayley_neumann: (I + K) (I + K + ... + K^(t-2)) = I + 2K + ... + 2K^(t-2) + K^(t-1), the
  Cayley transform with (I - K)^-1 replaced by its truncated Neumann series; t is PEFT's
  `num_cayley_neumann_terms` and the polynomial equals PEFT's for t >= 4 (PEFT's branches
  give I + 2K for t = 2 and the t = 4 polynomial for t = 3). Only approximately orthogonal:
  T = C (I - K^(t-1)) with C the exact Cayley factor, so the singular values of T are
  |1 - (i theta)^(t-1)| over the eigenvalues i theta of K, i.e. within ||K||_2^(t-1) of 1.
  Optional `eps` rescales K to ||K||_F <= eps (PEFT's `cayley_neumann_eps`).
- exp: T = matrix_exp(K); exactly orthogonal, det +1.
- householder: HRA-style product of 2h reflections, T = prod_j H(a_j) H(b_j), H(u) = I - 2uu^T
  (u normalised). Pairs start equal (a_j = b_j), so T = I; a product of an even number of
  reflections has det +1, so T stays in SO(r). Each pair is evaluated as I + H(a)(2aa^T - 2bb^T),
  which equals H(a)H(b) and is exactly I (not just to round-off) while a_j == b_j.
  2h defaults to r rounded up to even (any element of SO(r) is a product of <= r reflections).
- givens: products of plane rotations with learnable angles (start 0, so T = I exactly). The
  r(r-1)/2 coordinate planes are grouped by the round-robin (circle) schedule into rounds of
  disjoint planes; each round is one sparse rotation and T = G_1 G_2 ... G_R. `rounds` < the
  full count gives a cheaper, less expressive transform.

Products of many factors are evaluated by a balanced tree of batched matmuls (log depth), not
a Python loop over factors. T is computed in float32 at least (the solve needs it).
"""
from __future__ import annotations

import torch
from torch import nn

TRANSFORMS = ("cayley", "cayley_neumann", "exp", "householder", "givens")


def ordered_product(mats: torch.Tensor) -> torch.Tensor:
    """mats[0] @ mats[1] @ ... @ mats[-1] for a (L, r, r) stack, by pairwise reduction."""
    while mats.shape[0] > 1:
        tail = mats[-1:] if mats.shape[0] % 2 else mats[:0]
        even = mats[: mats.shape[0] - tail.shape[0]]
        mats = torch.cat([even[0::2] @ even[1::2], tail])
    return mats[0]


class SkewGenerator(nn.Module):
    """K = U - U^T, U strictly upper triangular with entries `skew` (r(r-1)/2 numbers, init 0)."""

    def __init__(self, r: int):
        super().__init__()
        self.r = r
        self.skew = nn.Parameter(torch.zeros(r * (r - 1) // 2))
        rows, cols = torch.triu_indices(r, r, 1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def generator(self) -> torch.Tensor:
        w = self.skew.float() if self.skew.dtype in (torch.float16, torch.bfloat16) else self.skew
        upper = w.new_zeros(self.r, self.r).index_put((self.rows, self.cols), w)
        return upper - upper.T


class Cayley(SkewGenerator):
    def matrix(self) -> torch.Tensor:
        k = self.generator()
        eye = torch.eye(self.r, dtype=k.dtype, device=k.device)
        return torch.linalg.solve(eye - k, eye + k, left=False)  # X (I - K) = I + K


class CayleyNeumann(SkewGenerator):
    def __init__(self, r: int, terms: int = 5, eps: float | None = None):
        super().__init__(r)
        if terms < 2:
            raise ValueError(f"cayley_neumann needs at least 2 terms, got {terms}")
        self.terms, self.eps = terms, eps

    def matrix(self) -> torch.Tensor:
        k = self.generator()
        if self.eps is not None:  # keep the series well inside its radius of convergence
            norm = torch.linalg.matrix_norm(k)
            if torch.isfinite(norm) and norm > self.eps:
                k = k * (self.eps / (norm + 1e-12))
        eye = torch.eye(self.r, dtype=k.dtype, device=k.device)
        series = eye  # Horner: I + K (I + K (... )) with terms - 1 summands I, K, ..., K^(t-2)
        for _ in range(self.terms - 2):
            series = eye + k @ series
        return series + k @ series


class MatrixExp(SkewGenerator):
    def matrix(self) -> torch.Tensor:
        return torch.linalg.matrix_exp(self.generator())


class Householder(nn.Module):
    """`vectors` (2h x r): rows 2j and 2j + 1 are the pair (a_j, b_j); init a_j = b_j ~ N(0, I)."""

    def __init__(self, r: int, reflections: int | None = None, generator: torch.Generator | None = None):
        super().__init__()
        reflections = reflections if reflections is not None else r + r % 2
        if reflections < 2 or reflections % 2:
            raise ValueError(f"householder needs an even number >= 2 of reflections, got {reflections}")
        self.r = r
        half = torch.randn(reflections // 2, r, generator=generator)
        self.vectors = nn.Parameter(half.repeat_interleave(2, dim=0))

    def matrix(self) -> torch.Tensor:
        v = self.vectors.float() if self.vectors.dtype in (torch.float16, torch.bfloat16) else self.vectors
        u = v / v.norm(dim=1, keepdim=True)
        a, b = u[0::2], u[1::2]  # (h, r) each
        # H(a)H(b) - I = H(a)(2aa^T - 2bb^T): exactly 0 while a == b.
        d = 2 * (a[:, :, None] * a[:, None, :] - b[:, :, None] * b[:, None, :])
        d = d - 2 * a[:, :, None] * (a[:, None, :] @ d)
        eye = torch.eye(self.r, dtype=u.dtype, device=u.device)
        return ordered_product(eye + d)


def round_robin(r: int) -> list[list[tuple[int, int]]]:
    """Rounds of disjoint pairs covering each of the r(r-1)/2 pairs once (circle method)."""
    players = list(range(r + r % 2))  # an odd r gets a dummy player r; its games are dropped
    size = len(players)
    rounds = []
    for _ in range(size - 1):
        pairs = [(players[i], players[size - 1 - i]) for i in range(size // 2)]
        rounds.append([(min(p), max(p)) for p in pairs if max(p) < r])
        players = [players[0], players[-1], *players[1:-1]]
    return rounds


class Givens(nn.Module):
    """`angles`: one per plane of the first `rounds` round-robin rounds, init 0."""

    def __init__(self, r: int, rounds: int | None = None):
        super().__init__()
        schedule = round_robin(r)
        if rounds is not None:
            if not 1 <= rounds <= len(schedule):
                raise ValueError(f"givens rounds must be in [1, {len(schedule)}] for r={r}, got {rounds}")
            schedule = schedule[:rounds]
        self.r = r
        idx = torch.tensor([(t, i, j) for t, planes in enumerate(schedule) for i, j in planes], dtype=torch.long)
        self.register_buffer("plane", idx.reshape(-1, 3), persistent=False)  # (round, i, j) per angle
        self.num_rounds = len(schedule)
        self.angles = nn.Parameter(torch.zeros(idx.shape[0]))

    def matrix(self) -> torch.Tensor:
        th = self.angles.float() if self.angles.dtype in (torch.float16, torch.bfloat16) else self.angles
        c, s = torch.cos(th), torch.sin(th)
        t, i, j = self.plane.unbind(1)
        eye = torch.eye(self.r, dtype=th.dtype, device=th.device)
        g = eye.repeat(self.num_rounds, 1, 1)
        g = g.index_put((t, i, i), c).index_put((t, j, j), c)
        g = g.index_put((t, i, j), -s).index_put((t, j, i), s)
        return ordered_product(g)


def build_transform(
    name: str,
    r: int,
    *,
    neumann_terms: int = 5,
    neumann_eps: float | None = None,
    householder_reflections: int | None = None,
    givens_rounds: int | None = None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """The transform `name` for rank r, at T = I. `generator` seeds Householder's vectors."""
    if name == "cayley":
        return Cayley(r)
    if name == "cayley_neumann":
        return CayleyNeumann(r, neumann_terms, neumann_eps)
    if name == "exp":
        return MatrixExp(r)
    if name == "householder":
        return Householder(r, householder_reflections, generator)
    if name == "givens":
        return Givens(r, givens_rounds)
    raise ValueError(f"unknown transform {name!r}; choose one of {TRANSFORMS}")
