"""Machinery shared by the LoFT optimizers: pairing, alternation, gradient scaling,
calibration of the states when a factor moves, projected clipping, and state round trips.

Conventions (paper <-> PEFT): U = scale * B (m x r), V = A^T (n x r), W = W0 + U V^T.
Every step both factors' states absorb the new gradient; only the factor whose turn it is
moves (Building Block 1). When U moves from U_k to U_{k+1}, the states that live in U's
column space (those of V) are recalibrated at once with C^U = (U_k^T U_{k+1})(U_{k+1}^T
U_{k+1})^+, which is what Algorithm 1 applies one step later; doing it eagerly means the
previous iterates never need to be stored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from .pairs import PairGroup, as_pairs, group_pairs
from .sharding import Whole, distribute_tensor, factor_layout, is_dtensor, local


@dataclass
class Factors:
    """One group's factors and gradients in paper form, all stacked over layers (L x ...)."""

    U: torch.Tensor       # L x m x r
    V: torch.Tensor       # L x n x r
    grad_U: torch.Tensor  # L x m x r, dL/dU = G V
    grad_V: torch.Tensor  # L x n x r, dL/dV = G^T U
    pinv_gram_U: torch.Tensor  # (U^T U)^+
    pinv_gram_V: torch.Tensor  # (V^T V)^+


def _pinv_gram(x: torch.Tensor, layout: Whole) -> tuple[torch.Tensor, torch.Tensor]:
    gram = layout.sum(x.mT @ x)
    return gram, torch.linalg.pinv(gram, hermitian=True)


def _calibration(old: torch.Tensor, new: torch.Tensor, layout: Whole) -> torch.Tensor:
    """C = (old^T new)(new^T new)^+: maps coordinates in span(old) to span(new) (eq. 7)."""
    return layout.sum(old.mT @ new) @ _pinv_gram(new, layout)[1]


class LowRankPairOptimizer(torch.optim.Optimizer):
    """Base class: subclasses define the state (`_init_state`), how a gradient enters it
    (`_accumulate`), the step direction of a factor (`_direction`) and how the state of a
    factor follows when the *other* factor moves (`_calibrate`).

    Under FSDP2 the factors are DTensors sharded by rows (`sharding.py`): the optimizer works
    on the local shards, sums r x r products over ranks through `self._layout`, and gathers
    its state in `state_dict()` so checkpoints do not depend on the number of processes."""

    supports_fsdp = True  # capability flag read by loft.methods / loft.train.checkpoint

    def __init__(
        self,
        params: Iterable,
        defaults: dict,
        pairs: Sequence,
        alternate: bool,
        scale_gradients: bool,
        projected_clipping: bool,
    ):
        super().__init__(params, defaults)
        pairs = as_pairs(pairs)
        group_of = {id(p): gi for gi, g in enumerate(self.param_groups) for p in g["params"]}
        for pair in pairs:
            if id(pair.B) not in group_of or id(pair.A) not in group_of:
                raise ValueError("every LoRA pair must also be among the optimizer's params")
        self.alternate = alternate
        self.scale_gradients = scale_gradients
        self.projected_clipping = projected_clipping
        self._layout = factor_layout(pairs)
        self._groups: list[PairGroup] = group_pairs(pairs, group_of)
        paired = {id(t) for pair in pairs for t in (pair.B, pair.A)}
        self._plain_index: list[int] = []  # param group index of each inner group
        plain_groups = []
        for gi, group in enumerate(self.param_groups):
            plain = [p for p in group["params"] if id(p) not in paired]
            if plain:
                self._plain_index.append(gi)
                plain_groups.append({"params": plain, **self._plain_hypers(group)})
        self._plain = self._make_plain_optimizer(plain_groups) if plain_groups else None
        self._step_count = 0
        self._update_U = False  # Algorithm 1, line 2: the first step moves V (= A^T)

    # ----- hooks for subclasses -------------------------------------------------------
    def _plain_hypers(self, group: dict) -> dict:
        raise NotImplementedError

    def _make_plain_optimizer(self, groups: list[dict]) -> torch.optim.Optimizer:
        raise NotImplementedError

    def _init_state(self, g: PairGroup, f: Factors) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _accumulate(self, g: PairGroup, f: Factors, grad_U: torch.Tensor, grad_V: torch.Tensor) -> None:
        raise NotImplementedError

    def _direction(self, g: PairGroup, f: Factors, side: str) -> torch.Tensor:
        """Delta for factor `side` ('U' or 'V'); the factor moves by -lr * Delta."""
        raise NotImplementedError

    def _calibrate(self, g: PairGroup, side: str, c: torch.Tensor) -> None:
        """The states of `side` live in the other factor's span, which just moved by `c`."""
        raise NotImplementedError

    # ----- common machinery ---------------------------------------------------------------
    @staticmethod
    def _work_dtype(t: torch.Tensor) -> torch.dtype:
        return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype

    def _factors(self, g: PairGroup) -> Factors:
        dtype = self._work_dtype(g.Bs[0])
        B, A = (torch.stack([local(t) for t in ts]).to(dtype) for ts in (g.Bs, g.As))
        grad_B, grad_A = (torch.stack([local(t.grad) if t.grad is not None else torch.zeros_like(local(t))
                                       for t in ts]).to(dtype) for ts in (g.Bs, g.As))
        s = g.scale
        U, V = B * s, A.mT
        _, pinv_U = _pinv_gram(U, self._layout)
        _, pinv_V = _pinv_gram(V, self._layout)
        # dL/dB = s G A^T = s grad_U  and  dL/dA = s B^T G = grad_V^T
        return Factors(U, V, grad_B / s, grad_A.mT.contiguous(), pinv_U, pinv_V)

    def _sides_to_update(self) -> tuple[str, ...]:
        if not self.alternate:
            return ("U", "V")
        return ("U",) if self._update_U else ("V",)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._step_count += 1
        if self._plain is not None:
            for inner, gi in zip(self._plain.param_groups, self._plain_index):
                inner.update(self._plain_hypers(self.param_groups[gi]))
            self._plain.step()
        for g in self._groups:
            self._step_group(g)
        if self.alternate:
            self._update_U = not self._update_U
        return loss

    def _step_group(self, g: PairGroup) -> None:
        f = self._factors(g)
        if not g.state:
            g.state.update(self._init_state(g, f))
        grad_U, grad_V = f.grad_U, f.grad_V
        if self.scale_gradients:  # Building Block 2
            grad_U, grad_V = grad_U @ f.pinv_gram_V, grad_V @ f.pinv_gram_U
        self._accumulate(g, f, grad_U, grad_V)
        sides = self._sides_to_update()
        deltas = {side: self._direction(g, f, side) for side in sides}  # both from step-k factors
        hp = self.param_groups[g.group_index]
        decay = 1.0 - hp["lr"] * hp["weight_decay"]
        if "U" in deltas:
            new_U = f.U * decay - hp["lr"] * deltas["U"]
            self._calibrate(g, "V", _calibration(f.U, new_U, self._layout))
            torch._foreach_copy_([local(b) for b in g.Bs], list((new_U / g.scale).unbind(0)))
        if "V" in deltas:
            new_V = f.V * decay - hp["lr"] * deltas["V"]
            self._calibrate(g, "U", _calibration(f.V, new_V, self._layout))
            torch._foreach_copy_([local(a) for a in g.As], list(new_V.mT.unbind(0)))

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Clip all gradients by one global norm. With projected clipping (Building Block 6)
        a pair counts with the norm of the full-gradient update it will make, ||G P_V||_F
        when U moves next (||P_U G||_F for V), computed from r x r products. Sharded, every
        term is a sum over rows, so the local sums add up over ranks (one scalar all-reduce)."""
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not self.projected_clipping and not self._layout.sharded:
            return torch.nn.utils.clip_grad_norm_(params, max_norm)
        paired = {id(t) for g in self._groups for t in (*g.Bs, *g.As)} if self.projected_clipping else set()
        sq = [local(p.grad).detach().to(self._work_dtype(p)).pow(2).sum() for p in params if id(p) not in paired]
        for g in self._groups if self.projected_clipping else ():
            f = self._factors(g)
            for side in self._sides_to_update():
                grad, pinv, other = (
                    (f.grad_U, f.pinv_gram_V, f.V) if side == "U" else (f.grad_V, f.pinv_gram_U, f.U)
                )
                scaled = grad @ pinv  # ||scaled other^T||^2 = tr(scaled^T scaled other^T other)
                sq.append(((scaled.mT @ scaled) * self._layout.sum(other.mT @ other)).sum())
        if not sq:
            return torch.zeros(())
        widest = max((t.dtype for t in sq), key=lambda d: torch.finfo(d).bits)
        total = self._layout.sum(torch.stack([t.to(widest) for t in sq]).sum()).sqrt()
        coef = max_norm / (total + 1e-6)
        if coef < 1:
            torch._foreach_mul_([local(p.grad) for p in params], coef.item())
        return total

    def state_bytes(self) -> int:
        """Bytes of optimizer state this process holds (pair states plus the plain optimizer's
        tensors); sharded, that is this process's shards only."""
        n = sum(t.numel() * t.element_size() for g in self._groups for t in g.state.values())
        if self._plain is not None:
            for st in self._plain.state.values():
                n += sum(local(t).numel() * t.element_size() for t in st.values() if torch.is_tensor(t) and t.ndim > 0)
        return n

    def _state_rows(self, g: PairGroup, key: str) -> int:
        """Rows of a stacked state tensor: m for the states of U (keys ending _U), n for V's."""
        m, n, _ = g.shape
        side = key.rsplit("_", 1)[-1]
        if side not in ("U", "V"):
            raise KeyError(f"pair state {key!r} must end in _U or _V (the factor whose rows it follows)")
        return m if side == "U" else n

    def state_dict(self) -> dict:
        """Everything needed to continue bit-for-bit; sharded, the full (gathered) state, the
        same dict one process would hold (every rank must call this)."""
        lay = self._layout
        plain = self._plain.state_dict() if self._plain is not None else None
        if plain is not None and lay.sharded:
            plain["state"] = {i: {k: v.full_tensor() if is_dtensor(v) else v for k, v in st.items()}
                              for i, st in plain["state"].items()}
        return {
            "step": self._step_count,
            "update_U": self._update_U,
            # rows are looked up only when sharded: an unsharded subclass may keep other state (LoRA-Pro's step)
            "pair_state": [{k: self._saved(lay.gather(v, self._state_rows(g, k)) if lay.sharded else v)
                            for k, v in g.state.items()} for g in self._groups],
            "plain": plain,
            "param_groups": [{k: v for k, v in grp.items() if k != "params"} for grp in self.param_groups],
        }

    def _saved(self, full: torch.Tensor) -> torch.Tensor:
        """A copy for the state dict; a gathered one goes to the CPU (it is the whole model's)."""
        return full.cpu() if self._layout.sharded else full.clone()

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a full state (from any number of processes); sharded, keep this rank's rows."""
        if len(state_dict["pair_state"]) != len(self._groups):
            raise ValueError("optimizer state has a different number of LoRA pair groups")
        if len(state_dict["param_groups"]) != len(self.param_groups):
            raise ValueError("optimizer state has a different number of param groups")
        for g, saved in zip(self._groups, state_dict["pair_state"]):
            device = local(g.Bs[0]).device
            g.state = {k: self._layout.split(v.to(device)).clone() for k, v in saved.items()}
        for grp, saved in zip(self.param_groups, state_dict["param_groups"]):
            grp.update(saved)
        if self._plain is not None:
            self._plain.load_state_dict(state_dict["plain"])
            self._shard_plain_state()
        self._step_count = state_dict["step"]
        self._update_U = state_dict["update_U"]

    def _shard_plain_state(self) -> None:
        """torch's load_state_dict leaves full tensors beside DTensor params; cut them like the param."""
        for p, st in self._plain.state.items():
            if is_dtensor(p):
                for k, v in st.items():
                    if torch.is_tensor(v) and not is_dtensor(v) and v.shape == p.shape:
                        st[k] = distribute_tensor(v, p.device_mesh, p.placements, src_data_rank=None)


class AdamPairOptimizer(LowRankPairOptimizer):
    """What the AdamW-type pair optimizers (LoFT-AdamW, LoRA-Pro) share: their hyperparameters,
    checked in one place, and plain AdamW for the parameters outside a pair."""

    @staticmethod
    def adam_defaults(name: str, lr: float, betas, eps: float, weight_decay: float) -> dict:
        if lr < 0 or eps < 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid {name} hyperparameters lr={lr} betas={betas} eps={eps} wd={weight_decay}")
        return dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)

    def _plain_hypers(self, group: dict) -> dict:
        return {k: group[k] for k in ("lr", "betas", "eps", "weight_decay")}

    def _make_plain_optimizer(self, groups: list[dict]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(groups)
