"""Symmetric r x r matrices stored as their upper triangle (r(r+1)/2 numbers).

LoFT's second moment keeps, for every row i of a factor, an r x r cross-term matrix p_i
(eq. 11). p_i is symmetric, so we store only its upper triangle, packed along the last
dimension: a factor with m rows holds an (m, R) matrix, R = r(r+1)/2. All three operations
the optimizer needs are then single batched GEMMs or gathers:

- accumulate  p_i += g_i^T g_i           -> pack_outer(g)
- calibrate   p_i <- C^T p_i C           -> p @ congruence_matrix(C)
- reconstruct v_ij = V_j^T p_i V_j       -> p @ reconstruction_matrix(V)

Picking the pairs (a, b) of the upper triangle is done by multiplying with 0/1 selection
matrices (r x R) rather than by gathering along the last dimension: a GEMM against a one-hot
matrix is exact (each output is one product with 1 plus zeros) and on CPU it is 2-5x faster
than a last-dimension gather, which is what the hot path of the optimizer did before.
"""
from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=None)
def _triu(r: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rows, cols = torch.triu_indices(r, r, device=device)
    off_diagonal = rows != cols
    return rows, cols, off_diagonal


@functools.lru_cache(maxsize=None)
def _selectors(r: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """r x R matrices with x @ first = x[..., rows], x @ second = x[..., cols], and
    x @ first_doubled = x[..., rows] * (2 off the diagonal, 1 on it)."""
    rows, cols, off_diagonal = _triu(r, device)
    index = torch.arange(rows.numel(), device=device)
    first = torch.zeros(r, rows.numel(), device=device, dtype=dtype)
    second = torch.zeros_like(first)
    first[rows, index] = 1
    second[cols, index] = 1
    return first, second, first * (1 + off_diagonal.to(dtype))


def packed_size(r: int) -> int:
    return r * (r + 1) // 2


def pack_outer(x: torch.Tensor) -> torch.Tensor:
    """Rows x_i (..., r) -> packed upper triangles of x_i^T x_i, shape (..., R)."""
    first, second, _ = _selectors(x.shape[-1], x.device, x.dtype)
    return (x @ first).mul_(x @ second)


def pack_outer_accumulate_(p: torch.Tensor, x: torch.Tensor, beta: float, weight: float) -> torch.Tensor:
    """p <- beta * p + weight * pack_outer(x), in place, without forming pack_outer(x)."""
    first, second, _ = _selectors(x.shape[-1], x.device, x.dtype)
    return p.mul_(beta).addcmul_(x @ first, x @ second, value=weight)


def unpack(p: torch.Tensor, r: int) -> torch.Tensor:
    """(..., R) -> full symmetric (..., r, r); used by tests and debugging only."""
    rows, cols, _ = _triu(r, p.device)
    full = p.new_zeros(*p.shape[:-1], r, r)
    full[..., rows, cols] = p
    full[..., cols, rows] = p
    return full


def reconstruction_matrix(v: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """V (..., n, r) -> Q (..., R, n), contiguous, such that (p @ Q)[i, j] = scale * V_j^T p_i V_j.

    Off-diagonal entries appear twice in the quadratic form, hence the factor 2. Built
    directly in (R, n) layout: the reconstruction GEMM then reads it with unit stride.
    """
    _, second, first_doubled = _selectors(v.shape[-1], v.device, v.dtype)
    vt = v.transpose(-1, -2)
    left = first_doubled.T * scale if scale != 1.0 else first_doubled.T
    return (left @ vt).mul_(second.T @ vt)


def congruence_matrix(c: torch.Tensor) -> torch.Tensor:
    """C (..., r, r) -> M (..., R, R) such that packed(C^T p C) = packed(p) @ M.

    (C^T p C)_cd = sum_{a<=b} p_ab (C_ac C_bd + [a != b] C_bc C_ad).
    """
    r = c.shape[-1]
    _, _, off_diagonal = _triu(r, c.device)
    first, second, _ = _selectors(r, c.device, c.dtype)
    c_a, c_b = first.T @ c, second.T @ c  # rows a and b of C, (..., R, r)
    m = (c_a @ first).mul_(c_b @ second)  # C_ac C_bd
    cross = (c_b @ first).mul_(c_a @ second).mul_(off_diagonal.to(c.dtype)[:, None])  # [a != b] C_bc C_ad
    return m.add_(cross)
