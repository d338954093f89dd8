"""LoFT-AdamW (Tastan et al. 2026, Algorithm 1 with the corrections in DESIGN.md).

Features, each a switch for the ablations of Figure 2 / Figure 6 / Tables 6-7:
- alternate (BB1): move one factor per step, A (= V) first.
- scale_gradients (BB2): g_U (V^T V)^+ and g_V (U^T U)^+ (pseudo-inverse, so a zero
  factor such as LoRA's B = 0 is harmless).
- calibrate_momentum (BB3): m <- m C when the other factor moves.
- calibrate_second_moment (BB4): packed cross terms p_i <- C^T p_i C.
- project_update (BB5): rebuild the dense Adam update m~ / (sqrt(v~) + eps) row-chunk by
  row-chunk and project it onto the factor's subspace. False = "LoFT simple": Adam in factor
  space on the scaled, calibrated gradients (no cross terms, ~LoRA memory).
- projected_clipping (BB6): see `clip_grad_norm_`.

Engineering beyond the paper:
- Cross terms are stored packed (r(r+1)/2 per row, not r^2); previous iterates are not
  stored (calibration happens right after a factor moves).
- Reconstruction is a GEMM (rows x R) @ (R x n) per chunk, batched over all layers of one
  shape, so a step is a handful of kernels per shape, not a loop over layers.
- Float32 safety: round-off makes the cross terms slightly indefinite and v~ can reach 0
  where m~ does not, which blows the update up (the paper's own Figure 2 problem diverges
  this way). Adam's invariant m_k^2 <= K_k v_k (Cauchy-Schwarz, K_k below) holds exactly for
  the calibrated m~, v~, so clamping v~ >= m~^2 / K_k is a no-op in exact arithmetic and
  bounds every update entry like Adam's.
- Any LoRA scaling: the factors are handled as U = scale * B.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch

from .base import AdamPairOptimizer, Factors
from .packed import congruence_matrix, pack_outer_accumulate_, packed_size, reconstruction_matrix
from .pairs import PairGroup


def adam_moment_bound(beta1: float, beta2: float, step: int) -> float:
    """K_k with m_k^2 <= K_k v_k for m_k = (1-b1) sum b1^(k-i) g_i, v_k = (1-b2) sum b2^(k-i) g_i^2."""
    rho = beta1**2 / beta2
    series = float(step) if rho == 1 else (1 - rho**step) / (1 - rho)
    return (1 - beta1) ** 2 / (1 - beta2) * series


class LoFTAdamW(AdamPairOptimizer):
    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        pairs: Sequence = (),
        alternate: bool = True,
        scale_gradients: bool = True,
        calibrate_momentum: bool = True,
        calibrate_second_moment: bool = True,
        project_update: bool = True,
        projected_clipping: bool = True,
        chunk_elements: int | None = None,
    ):
        defaults = self.adam_defaults("LoFTAdamW", lr, betas, eps, weight_decay)
        if calibrate_second_moment and not project_update:
            raise ValueError(
                "calibrate_second_moment needs project_update=True (the cross terms only serve the "
                "reconstructed full update); LoFT-simple is project_update=False, calibrate_second_moment=False"
            )
        self.calibrate_momentum = calibrate_momentum
        self.calibrate_second_moment = calibrate_second_moment
        self.project_update = project_update
        self.chunk_elements = chunk_elements
        super().__init__(params, defaults, pairs, alternate, scale_gradients, projected_clipping)

    def _init_state(self, g: PairGroup, f: Factors) -> dict[str, torch.Tensor]:
        second = packed_size(f.U.shape[-1]) if self.project_update else f.U.shape[-1]
        return {
            "exp_avg_U": torch.zeros_like(f.U),
            "exp_avg_V": torch.zeros_like(f.V),
            "second_U": f.U.new_zeros(*f.U.shape[:-1], second),  # packed cross terms or factor v
            "second_V": f.V.new_zeros(*f.V.shape[:-1], second),
        }

    def _accumulate(self, g: PairGroup, f: Factors, grad_U: torch.Tensor, grad_V: torch.Tensor) -> None:
        beta1, beta2 = self.param_groups[g.group_index]["betas"]
        for side, grad in (("U", grad_U), ("V", grad_V)):
            g.state[f"exp_avg_{side}"].mul_(beta1).add_(grad, alpha=1 - beta1)
            second = g.state[f"second_{side}"]
            if self.project_update:  # block by block: the packed products stay in cache
                for ls, rs in self._blocks(*second.shape, self._chunk_elements(second)):
                    pack_outer_accumulate_(second[ls, rs], grad[ls, rs], beta2, 1 - beta2)
            else:
                second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

    def _chunk_elements(self, t: torch.Tensor) -> int:
        if self.chunk_elements is not None:
            return self.chunk_elements
        # CPU: blocks that stay in cache while the element-wise passes run over them;
        # GPU: large blocks, few launches (the transient is still bounded).
        return 1 << 24 if t.device.type == "cuda" else 1 << 18

    def _blocks(self, layers: int, rows: int, cols: int, budget: int) -> list[tuple[slice, slice]]:
        """(layer slice, row slice) blocks of about `budget` elements of a layers x rows x cols
        dense transient; rows come in runs of at least 64 (when there are that many) so the
        GEMMs that produce a block stay efficient, and layers are split when needed."""
        per_row = max(1, layers * cols)
        step = min(rows, max(budget // per_row, min(rows, 64)))
        lstep = layers if step * per_row <= budget else max(1, budget // max(1, step * cols))
        return [(slice(lo, lo + lstep), slice(i, i + step))
                for lo in range(0, layers, lstep) for i in range(0, rows, step)]

    def _direction(self, g: PairGroup, f: Factors, side: str) -> torch.Tensor:
        hp = self.param_groups[g.group_index]
        beta1, beta2 = hp["betas"]
        k = self._step_count
        bc1, bc2 = 1 - beta1**k, 1 - beta2**k
        exp_avg, second = g.state[f"exp_avg_{side}"], g.state[f"second_{side}"]
        if not self.project_update:  # Adam in factor space (LoFT simple)
            return (exp_avg / bc1) / ((second / bc2).sqrt() + hp["eps"])
        m, n, _ = g.shape
        other, pinv, rows = (f.V, f.pinv_gram_V, n) if side == "U" else (f.U, f.pinv_gram_U, m)
        other = self._layout.gather(other, rows)  # sharded: the update of a row needs every V_j
        # The invariant needs m~ and v~ built from the same projected gradients, i.e. both
        # calibrated or neither; a mixed ablation only gets v~ >= 0.
        same_history = self.calibrate_momentum == self.calibrate_second_moment
        bound = adam_moment_bound(beta1, beta2, k) if same_history else float("inf")
        return self._projected_adam(exp_avg, second, other, pinv, bc1, bc2, hp["eps"], bound)

    def _projected_adam(self, exp_avg, cross, other, pinv, bc1, bc2, eps, bound) -> torch.Tensor:
        """Delta = [m~/bc1 / (sqrt(v~/bc2) + eps)] V (V^T V)^+ with m~ = exp_avg V^T and
        v~_ij = V_j^T p_i V_j, built block by block so the dense transient stays small.

        The scalars are folded into r-sized operands so a block costs two GEMMs, four
        element-wise passes and one GEMM: with K the moment bound (1 without a floor),
            m~/bc1 / (sqrt(max(v~, m~^2/K)/bc2) + eps)
              = c/bc1 * m~ / (sqrt(max(K v~, m~^2)) + eps c),   c = sqrt(K bc2),
        where K v~ comes from the reconstruction matrix scaled by K and c/bc1 goes into
        the projection V (V^T V)^+."""
        layers, rows_total, _ = exp_avg.shape
        cols = other.shape[-2]
        floor = bound != float("inf")
        k = bound if floor else 1.0
        c = math.sqrt(k * bc2)
        other_t = other.mT                          # L x r x n
        recon = reconstruction_matrix(other, k)     # L x R x n, = K * Q
        project = (other @ pinv).mul_(c / bc1)      # L x n x r
        eps = eps * c
        out = torch.empty_like(exp_avg)
        blocks = self._blocks(layers, rows_total, cols, self._chunk_elements(exp_avg))
        biggest = max((ls.stop - ls.start) * (rs.stop - rs.start) for ls, rs in blocks)  # over-estimate, fine
        buffers = exp_avg.new_empty(3, biggest * cols)
        for ls, rs in blocks:
            lo, hi = ls.start, min(ls.stop, layers)
            i, j = rs.start, min(rs.stop, rows_total)
            shape = (hi - lo, j - i, cols)
            m_full, v_full, sq = (b[: math.prod(shape)].view(shape) for b in buffers)
            torch.matmul(exp_avg[lo:hi, i:j], other_t[lo:hi], out=m_full)
            torch.matmul(cross[lo:hi, i:j], recon[lo:hi], out=v_full)
            if floor:  # float32 safety, see module doc
                torch.maximum(v_full, torch.mul(m_full, m_full, out=sq), out=v_full)
            else:
                v_full.clamp_(min=0)
            m_full.div_(v_full.sqrt_().add_(eps))
            out[lo:hi, i:j] = m_full @ project[lo:hi]
        return out

    def _calibrate(self, g: PairGroup, side: str, c: torch.Tensor) -> None:
        if self.calibrate_momentum:
            exp_avg = g.state[f"exp_avg_{side}"]
            exp_avg.copy_(exp_avg @ c)
        if self.calibrate_second_moment:
            cross = g.state[f"second_{side}"]
            congruence = congruence_matrix(c)
            layers, rows, packed = cross.shape
            for ls, rs in self._blocks(layers, rows, packed, self._chunk_elements(cross)):
                cross[ls, rs] = cross[ls, rs] @ congruence[ls]
