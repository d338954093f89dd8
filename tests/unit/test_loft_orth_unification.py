"""LOFT's unification (Han et al. 2026, abstract): W0 (I + P^T (T - I) P) with the matching
support P and transform T reproduces PEFT's own OFT, BOFT and HRA layers at the same
parameters, to float64 round-off. PSOFT (principal support, Cayley) is checked against PEFT's
PsoftConfig in test_loft_orth_psoft.py.

Row-vector convention of PEFT: OFT and BOFT compute base(x @ R), so the input rotation in
column form is R^T, and LOFT's T is R^T restricted to the support. What LOFT cannot express
is asserted as such: OFT's and BOFT's block structure is not a LOFT transform (a rank-n
Cayley T has n(n-1)/2 free entries, and its gradient leaves the block pattern), BOFT's
magnitude vector boft_s scales the outputs of W0 x (LOFT has none), and HRA's support is
span(U), which trains with U while LOFT's P is frozen."""
from __future__ import annotations

import pytest
import torch
from peft import BOFTConfig, HRAConfig, OFTConfig, get_peft_model
from peft.tuners.boft import layer as boft_layer
from torch import nn

from loft.orth import LoftOrthLinear
from loft.orth.transforms import Cayley, CayleyNeumann, Householder

pytestmark = pytest.mark.usefixtures("one_thread")
TOL = {"rtol": 1e-10, "atol": 1e-11}


class OneLayer(nn.Module):
    def __init__(self, m: int, n: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.lin = nn.Linear(n, m, dtype=torch.float64)
        nn.init.normal_(self.lin.weight)  # a generic W0 (Kaiming's scale does not matter here)

    def forward(self, x):
        return self.lin(x)


def peft_layer(config, m: int, n: int, seed: int = 0):
    wrapped = get_peft_model(OneLayer(m, n, seed), config).double()  # PEFT makes float32 adapters
    return wrapped.base_model.model.lin


def skew_vector(k: torch.Tensor) -> torch.Tensor:
    """The strict upper triangle of K in torch.triu_indices order (LOFT's `skew` layout)."""
    rows, cols = torch.triu_indices(k.shape[0], k.shape[0], 1)
    return k[rows, cols]


def loft_layer(base: nn.Linear, support: torch.Tensor, transform: nn.Module) -> LoftOrthLinear:
    return LoftOrthLinear(base, support.to(torch.float64), transform).eval()


def inputs(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(3, 5, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def base_of(layer) -> nn.Linear:
    return layer.get_base_layer()


# --- OFT: block-diagonal rotation on coordinate blocks ------------------------------------

@pytest.mark.parametrize("m,n,b", [(12, 8, 4), (24, 16, 8), (16, 16, 2)])
@pytest.mark.parametrize("neumann", [False, True], ids=["cayley", "cayley_neumann"])
def test_matches_peft_oft(m, n, b, neumann):
    """OFT = LOFT with the full support P = I_n and T = blockdiag(R_i)^T, a Cayley transform
    whose generator is OFT's, block by block: K = Q exactly (Neumann: K = -Q, PEFT's two
    branches use opposite signs). The outputs agree to round-off; so do the gradients on
    OFT's own entries, while LOFT's generator also has gradient off the blocks (what differs:
    OFT trains n(b-1)/2 numbers, a rank-n LOFT Cayley n(n-1)/2)."""
    layer = peft_layer(OFTConfig(r=0, oft_block_size=b, target_modules=["lin"], module_dropout=0.0,
                                 use_cayley_neumann=neumann, num_cayley_neumann_terms=5), m, n)
    rot = layer.oft_R["default"]
    with torch.no_grad():
        rot.weight.copy_(0.3 * torch.randn(rot.weight.shape, dtype=torch.float64))
    q_blocks = rot._pytorch_skew_symmetric(rot.weight, b)                 # (n/b, b, b)
    k = torch.block_diag(*q_blocks.detach()) * (-1 if neumann else 1)
    transform = (CayleyNeumann(n, terms=5) if neumann else Cayley(n)).double()  # float64 before the copy
    with torch.no_grad():
        transform.skew.copy_(skew_vector(k))
    loft = loft_layer(base_of(layer), torch.eye(n), transform)

    x = inputs(n)
    y_peft, y_loft = layer(x), loft(x)
    torch.testing.assert_close(y_loft, y_peft, **TOL)

    y_peft.square().sum().backward()
    y_loft.square().sum().backward()
    grad_k = transform.generator().new_zeros(n, n)
    rows, cols = torch.triu_indices(n, n, 1)
    grad_k[rows, cols] = transform.skew.grad
    on_block = torch.block_diag(*torch.ones(n // b, b, b, dtype=torch.bool))
    grad_q = torch.block_diag(*rot._pytorch_skew_symmetric(rot.weight.grad, b))  # same layout, upper triangle
    sign = -1 if neumann else 1
    torch.testing.assert_close(sign * torch.triu(grad_k * on_block, 1), torch.triu(grad_q, 1), rtol=1e-9, atol=1e-10)
    if b < n:  # what differs: the gradient leaves the block pattern
        assert torch.triu(grad_k * ~on_block, 1).abs().max() > 1e-3


@pytest.mark.parametrize("m,n,b", [(6, 12, 4), (16, 16, 8)])
def test_one_oft_block_is_a_coordinate_support(m, n, b):
    """A single OFT block (the others at R = I) is LOFT at rank b on the coordinate support
    of that block's axes (rows e_j of I), with T = R_k^T: the rank-b picture of the claim."""
    layer = peft_layer(OFTConfig(r=0, oft_block_size=b, target_modules=["lin"], module_dropout=0.0,
                                 use_cayley_neumann=False), m, n)
    rot, block = layer.oft_R["default"], 1
    with torch.no_grad():
        rot.weight.zero_()
        rot.weight[block] = 0.4 * torch.randn(rot.weight.shape[1], dtype=torch.float64)
    transform = Cayley(b).double()
    with torch.no_grad():
        transform.skew.copy_(rot.weight[block])  # the same b(b-1)/2 numbers
    support = torch.eye(n)[block * b:(block + 1) * b]
    loft = loft_layer(base_of(layer), support, transform)
    x = inputs(n)
    torch.testing.assert_close(loft(x), layer(x), **TOL)


# --- BOFT: butterfly product of permuted block-diagonal rotations, times a magnitude -------

def blockdiag_batch(blocks: torch.Tensor) -> torch.Tensor:
    """(N, D, H, H) -> (N, DH, DH): what PEFT's CUDA kernel FastBlockDiag computes."""
    return torch.stack([torch.block_diag(*factor) for factor in blocks])


@pytest.mark.parametrize("m,n,b,factors", [(16, 16, 4, 1), (16, 16, 4, 2), (24, 16, 2, 3)])
def test_matches_peft_boft(m, n, b, factors, monkeypatch):
    """BOFT's rotation is prod_i B_i with B_i = P_i blockdiag(R_i) P_i^T (P_i a permutation);
    in column form W0 B_0^T B_1^T ... : one LOFT factor per butterfly factor, support the
    permutation P_i^T (orthonormal rows, r = n), Cayley generator blockdiag of BOFT's skew
    parts (0.5 (R - R^T): the same numbers), applied in sequence (each merged into W0 before
    the next). Equal to round-off with boft_s = 1 (its init); with a trained boft_s the PEFT
    output is exactly diag(s) times LOFT's W0 x part: the magnitude vector is what differs."""
    if factors > 1:  # without its CUDA kernel PEFT falls back to one factor; stand in for the kernel
        monkeypatch.setattr(boft_layer, "get_fbd_cuda", lambda: True)
        monkeypatch.setattr(boft_layer.FastBlockDiag, "apply", staticmethod(blockdiag_batch))
    layer = peft_layer(BOFTConfig(boft_block_size=b, boft_n_butterfly_factor=factors, target_modules=["lin"],
                                  boft_dropout=0.0), m, n)
    params, perms = layer.boft_R["default"], layer.boft_P.to(torch.float64)
    assert params.shape[:2] == (factors, n // b)
    with torch.no_grad():
        params.copy_(0.3 * torch.randn(params.shape, dtype=torch.float64))
    base = base_of(layer)
    w0, bias = base.weight.detach().clone(), base.bias.detach().clone()
    weight = w0
    for i in range(factors):
        skew = 0.5 * (params[i] - params[i].transpose(-1, -2)).detach()
        transform = Cayley(n).double()
        with torch.no_grad():
            transform.skew.copy_(skew_vector(torch.block_diag(*skew)))
        factor = loft_layer(nn.Linear(n, m, bias=False, dtype=torch.float64), perms[i].T, transform)
        with torch.no_grad():
            factor.base_layer.weight.copy_(weight)
            factor.set_support(perms[i].T.contiguous())
            factor.merge()
        weight = factor.base_layer.weight.detach().clone()
    x = inputs(n)
    with torch.no_grad():
        torch.testing.assert_close(x @ weight.T + bias, layer(x), **TOL)
        layer.boft_s["default"].copy_(1 + 0.5 * torch.randn(m, 1, dtype=torch.float64))
        scale = layer.boft_s["default"].squeeze(-1)
        torch.testing.assert_close(layer(x) - bias, scale * (x @ weight.T), **TOL)
        assert not torch.allclose(layer(x), x @ weight.T + bias)  # no LOFT transform absorbs diag(s)


# --- HRA: a product of r Householder reflections ------------------------------------------

@pytest.mark.parametrize("m,n,r", [(12, 10, 4), (20, 16, 8), (8, 16, 6)])
def test_matches_peft_hra(m, n, r):
    """HRA's W0 H(u_1) ... H(u_r) acts as I outside span(U): LOFT with P = an orthonormal basis
    of span(U) (r x n) and the householder transform with vectors P u_i, in HRA's order, is
    the same layer. LOFT's householder takes an even count of reflections (det T = +1), so an
    odd r has no LOFT twin with this transform; and LOFT keeps P frozen while HRA's U trains."""
    layer = peft_layer(HRAConfig(r=r, apply_GS=False, target_modules=["lin"]), m, n)
    u = layer.hra_u["default"]  # n x r
    with torch.no_grad():
        u.copy_(torch.randn(u.shape, dtype=torch.float64))
    q, _ = torch.linalg.qr(u.detach())
    support = q.T                                          # r x n, orthonormal rows spanning U
    transform = Householder(r, reflections=r).double()
    with torch.no_grad():
        transform.vectors.copy_((support @ u).T)           # row i = P u_i
    loft = loft_layer(base_of(layer), support, transform)
    x = inputs(n)
    torch.testing.assert_close(loft(x), layer(x), **TOL)
    with pytest.raises(ValueError, match="even number"):
        Householder(r + 1, reflections=r + 1)


@pytest.mark.parametrize("m,n,r", [(12, 10, 4), (8, 16, 6)])
def test_hra_gram_schmidt_is_minus_identity_on_span(m, n, r):
    """HRA with apply_GS: W0 (I - 2 Q Q^T), Q the Gram-Schmidt basis of U: LOFT with P = Q^T and
    T = -I_r (even r: a product of r reflections along P's rows)."""
    layer = peft_layer(HRAConfig(r=r, apply_GS=True, target_modules=["lin"]), m, n)
    u = layer.hra_u["default"]
    with torch.no_grad():
        u.copy_(torch.randn(u.shape, dtype=torch.float64))
    support = torch.linalg.qr(u.detach())[0].T
    transform = Householder(r, reflections=r).double()
    with torch.no_grad():
        transform.vectors.copy_(torch.eye(r, dtype=torch.float64))  # prod of H(e_i) = -I
    loft = loft_layer(base_of(layer), support, transform)
    x = inputs(n)
    torch.testing.assert_close(loft(x), layer(x), **TOL)
