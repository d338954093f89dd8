"""Symmetric r x r matrices stored as their upper triangle (r(r+1)/2 numbers).

LoFT's second moment keeps, for every row i of a factor, an r x r cross-term matrix p_i
(eq. 11). p_i is symmetric, so we store only its upper triangle, packed along the last
dimension: a factor with m rows holds an (m, R) matrix, R = r(r+1)/2. All three operations
the optimizer needs are then single batched GEMMs or gathers:

- accumulate  p_i += g_i^T g_i           -> pack_outer(g)
- calibrate   p_i <- C^T p_i C           -> p @ congruence_matrix(C)
- reconstruct v_ij = V_j^T p_i V_j       -> p @ reconstruction_matrix(V)
"""
from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=None)
def _triu(r: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rows, cols = torch.triu_indices(r, r, device=device)
    off_diagonal = rows != cols
    return rows, cols, off_diagonal


def packed_size(r: int) -> int:
    return r * (r + 1) // 2


def pack_outer(x: torch.Tensor) -> torch.Tensor:
    """Rows x_i (..., r) -> packed upper triangles of x_i^T x_i, shape (..., R)."""
    rows, cols, _ = _triu(x.shape[-1], x.device)
    return x[..., rows] * x[..., cols]


def unpack(p: torch.Tensor, r: int) -> torch.Tensor:
    """(..., R) -> full symmetric (..., r, r); used by tests and debugging only."""
    rows, cols, _ = _triu(r, p.device)
    full = p.new_zeros(*p.shape[:-1], r, r)
    full[..., rows, cols] = p
    full[..., cols, rows] = p
    return full


def reconstruction_matrix(v: torch.Tensor) -> torch.Tensor:
    """V (..., n, r) -> Q (..., R, n) such that (p @ Q)[i, j] = V_j^T p_i V_j.

    Off-diagonal entries appear twice in the quadratic form, hence the factor 2.
    """
    _, _, off_diagonal = _triu(v.shape[-1], v.device)
    q = pack_outer(v)
    q[..., off_diagonal] *= 2
    return q.transpose(-1, -2)


def congruence_matrix(c: torch.Tensor) -> torch.Tensor:
    """C (..., r, r) -> M (..., R, R) such that packed(C^T p C) = packed(p) @ M.

    (C^T p C)_cd = sum_{a<=b} p_ab (C_ac C_bd + [a != b] C_bc C_ad).
    """
    r = c.shape[-1]
    rows, cols, off_diagonal = _triu(r, c.device)
    a, b = rows[:, None], cols[:, None]
    cc, dd = rows[None, :], cols[None, :]
    m = c[..., a, cc] * c[..., b, dd]
    m = m + off_diagonal[:, None] * (c[..., b, cc] * c[..., a, dd])
    return m
