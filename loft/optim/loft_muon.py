"""LoFT-Muon (Appendix D.1, Algorithm 5) and LoFT-GD (the SGD special case of Lemma 2).

Both keep one calibrated first moment per factor, m^U <- mu m^U C^V + g~_U, so their state
is LoRA-sized. LoFT-Muon moves U by -lr * X_U with X_U V^T = NewtonSchulz5(m^U V^T)
(Algorithm 4, never forming the m x n matrix); the paper's Algorithm 5 omits the learning
rate, which we restore. LoFT-GD moves U by -lr * m^U. Parameters outside the pairs get
torch's AdamW (Muon) or SGD (GD), as Muon implementations usually do.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from .base import Factors, LowRankPairOptimizer
from .newton_schulz import newton_schulz5_lowrank
from .pairs import PairGroup


class LoFTSGD(LowRankPairOptimizer):
    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        pairs: Sequence = (),
        alternate: bool = True,
        scale_gradients: bool = True,
        calibrate_momentum: bool = True,
        projected_clipping: bool = True,
    ):
        if lr < 0 or weight_decay < 0 or not 0 <= momentum < 1:
            raise ValueError(f"invalid hyperparameters lr={lr} momentum={momentum} wd={weight_decay}")
        self.calibrate_momentum = calibrate_momentum
        defaults = self._defaults(lr, momentum, weight_decay)
        super().__init__(params, defaults, pairs, alternate, scale_gradients, projected_clipping)

    @staticmethod
    def _defaults(lr, momentum, weight_decay) -> dict:
        return dict(lr=lr, momentum=momentum, weight_decay=weight_decay)

    def _plain_hypers(self, group: dict) -> dict:
        return {k: group[k] for k in ("lr", "momentum", "weight_decay")}

    def _make_plain_optimizer(self, groups: list[dict]) -> torch.optim.Optimizer:
        return torch.optim.SGD(groups)

    def _init_state(self, g: PairGroup, f: Factors) -> dict[str, torch.Tensor]:
        return {"momentum_U": torch.zeros_like(f.U), "momentum_V": torch.zeros_like(f.V)}

    def _accumulate(self, g: PairGroup, f: Factors, grad_U: torch.Tensor, grad_V: torch.Tensor) -> None:
        mu = self.param_groups[g.group_index]["momentum"]
        g.state["momentum_U"].mul_(mu).add_(grad_U)
        g.state["momentum_V"].mul_(mu).add_(grad_V)

    def _direction(self, g: PairGroup, f: Factors, side: str) -> torch.Tensor:
        return g.state[f"momentum_{side}"].clone()

    def _calibrate(self, g: PairGroup, side: str, c: torch.Tensor) -> None:
        if self.calibrate_momentum:
            mom = g.state[f"momentum_{side}"]
            mom.copy_(mom @ c)


class LoFTMuon(LoFTSGD):
    def __init__(
        self,
        params: Iterable,
        lr: float = 2e-2,
        momentum: float = 0.95,
        weight_decay: float = 0.0,
        pairs: Sequence = (),
        alternate: bool = True,
        ns_steps: int = 5,
        adamw_betas: tuple[float, float] = (0.9, 0.999),
        adamw_eps: float = 1e-8,
        scale_gradients: bool = True,
        calibrate_momentum: bool = True,
        projected_clipping: bool = True,
    ):
        self.ns_steps = ns_steps
        self._adamw_betas, self._adamw_eps = tuple(adamw_betas), adamw_eps
        super().__init__(params, lr, momentum, weight_decay, pairs, alternate, scale_gradients,
                         calibrate_momentum, projected_clipping)

    def _plain_hypers(self, group: dict) -> dict:
        return dict(lr=group["lr"], weight_decay=group["weight_decay"], betas=self._adamw_betas, eps=self._adamw_eps)

    def _make_plain_optimizer(self, groups: list[dict]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(groups)

    def _direction(self, g: PairGroup, f: Factors, side: str) -> torch.Tensor:
        m, n, _ = g.shape
        other, tall = (f.V, m > n) if side == "U" else (f.U, n > m)
        return newton_schulz5_lowrank(g.state[f"momentum_{side}"], other, steps=self.ns_steps,
                                      gram=lambda x: self._layout.sum(x.mT @ x), tall=tall)
