"""LoftOrthLinear: a frozen Linear / Conv1D whose input side is rotated inside a rank-r support.

W+ = W0 (I + P^T (T - I) P)    W0: m x n (out x in), P: r x n (orthonormal rows), T: r x r.
Forward: y = W0 x + B (T - I)(P x) with B = W0 P^T (m x r) computed once, so a token costs
(m + n) r + r^2 on top of the base layer, like LoRA, and no m x n matrix is ever formed.
Features:
- any transform module with `matrix()` (transforms.py) supplies T; it holds the only trainable
  parameters; the base layer (weight and bias) is frozen.
- merge()/unmerge(): W0 <- W0 + B (T - I) P and back. Additive, so it round-trips for every
  transform, the only approximately orthogonal cayley_neumann included.
- nn.Linear and transformers' Conv1D (GPT-2; weight stored in x out).
- P (`support`) and B (`support_image`) are float32 buffers (float64 for a float64 layer),
  persistent so that a full state_dict stays self-consistent; the forward casts them to the
  input dtype. T is computed in float32 at least.
"""
from __future__ import annotations

import torch
from torch import nn


def is_conv1d(module: nn.Module) -> bool:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # transformers is optional for nn.Linear-only models
        return False
    return isinstance(module, Conv1D)


def weight_out_in(module: nn.Module) -> torch.Tensor:
    """The weight as m x n (out x in): a view, so in-place edits reach the module."""
    if isinstance(module, nn.Linear):
        return module.weight
    if is_conv1d(module):
        return module.weight.T
    raise TypeError(f"LOFT adapts nn.Linear and transformers' Conv1D, not {type(module).__name__}")


class LoftOrthLinear(nn.Module):
    def __init__(self, base_layer: nn.Module, support: torch.Tensor, transform: nn.Module):
        super().__init__()
        w = weight_out_in(base_layer).detach()
        m, n = w.shape
        r = support.shape[0]
        if tuple(support.shape) != (r, n) or getattr(transform, "r", r) != r:
            raise ValueError(f"support {tuple(support.shape)} and transform rank must match r x {n}")
        base_layer.requires_grad_(False)
        self.base_layer = base_layer
        self.transform = transform.to(w.device)
        self.merged = False
        dtype = torch.promote_types(w.dtype, torch.float32)  # float32, or float64 for float64 layers
        self.register_buffer("support", support.detach().to(w.device, dtype).contiguous())
        self.register_buffer("support_image", w.to(dtype) @ self.support.T)  # B = W0 P^T

    @property
    def r(self) -> int:
        return self.support.shape[0]

    @property
    def in_features(self) -> int:
        return self.support.shape[1]

    @property
    def out_features(self) -> int:
        return self.support_image.shape[0]

    def rotation(self) -> torch.Tensor:
        """The current T (r x r)."""
        return self.transform.matrix()

    def _rotation_minus_identity(self) -> torch.Tensor:
        t = self.rotation()
        return t - torch.eye(self.r, dtype=t.dtype, device=t.device)

    @torch.no_grad()
    def set_support(self, support: torch.Tensor) -> None:
        """Replace P (and with it B = W0 P^T); the layer must be unmerged."""
        if self.merged:
            raise RuntimeError("unmerge before changing the support")
        if support.shape != self.support.shape:
            raise ValueError(f"support must be {tuple(self.support.shape)}, got {tuple(support.shape)}")
        self.support.copy_(support)
        self.support_image.copy_(weight_out_in(self.base_layer).to(self.support.dtype) @ self.support.T)

    @torch.no_grad()
    def delta_weight(self) -> torch.Tensor:
        """W+ - W0 = B (T - I) P (m x n, in the buffers' dtype): for merging only, never in forward."""
        return self.support_image @ self._rotation_minus_identity().to(self.support.dtype) @ self.support

    @torch.no_grad()
    def _add_to_weight(self, sign: int) -> None:
        w = weight_out_in(self.base_layer)
        dtype = torch.promote_types(w.dtype, self.support.dtype)  # at least float32
        w.copy_((w.to(dtype) + sign * self.delta_weight().to(dtype)).to(w.dtype))

    def merge(self) -> None:
        if self.merged:
            raise RuntimeError("already merged")
        self._add_to_weight(+1)
        self.merged = True

    def unmerge(self) -> None:
        if not self.merged:
            raise RuntimeError("not merged")
        self._add_to_weight(-1)
        self.merged = False

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        y = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return y
        d = self._rotation_minus_identity().to(x.dtype)
        z = x @ self.support.to(x.dtype).T            # (..., r): P x
        z = z @ d.T                                    # (T - I) P x
        return y + (z @ self.support_image.to(x.dtype).T).to(y.dtype)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, r={self.r}, merged={self.merged}"
