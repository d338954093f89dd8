"""LOFT with the principal support and the Cayley transform is PEFT's PSOFT with its magnitude
vectors off (psoft_mag_a = psoft_mag_b = False) and psoft_alpha = r (scaling 1).

PSOFT: A = V_r^T (r x in), B = U_r S_r / scaling (out x r), R = (I + Q)(I - Q)^-1 with Q from
the strict upper triangle (torch.triu_indices order), delta y = scaling * B (R - I) A x.
LOFT:  P = V_r^T, B = W0 P^T, T = (I + K)(I - K)^-1, delta y = B (T - I) P x."""
from __future__ import annotations

import copy

import pytest
import torch
from peft import PsoftConfig, get_peft_model
from peft.tuners.psoft.layer import PsoftLayer
from transformers import LlamaConfig, LlamaForCausalLM

from loft.orth import LoftOrthConfig, adapted_layers, apply, num_adapter_parameters


pytestmark = pytest.mark.usefixtures("one_thread")


R = 8
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=257, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def psoft_and_loft(neumann: bool):
    base = tiny_llama()
    psoft = get_peft_model(copy.deepcopy(base), PsoftConfig(
        r=R, psoft_alpha=R, psoft_mag_a=False, psoft_mag_b=False, target_modules=TARGETS,
        use_cayley_neumann=neumann, num_cayley_neumann_terms=5))
    loft = apply(copy.deepcopy(base), LoftOrthConfig(R, "principal", "cayley_neumann" if neumann else "cayley",
                                                     TARGETS, neumann_terms=5))
    for p in loft.parameters():  # compare like for like: PEFT trains only the adapter
        p.requires_grad_(False)
    for layer in adapted_layers(loft).values():
        layer.transform.requires_grad_(True)
    psoft_layers = {n.removeprefix("base_model.model."): m for n, m in psoft.named_modules()
                    if isinstance(m, PsoftLayer)}
    loft_layers = adapted_layers(loft)
    assert psoft_layers.keys() == loft_layers.keys() and len(loft_layers) == 14
    return psoft, loft, [(psoft_layers[n], loft_layers[n]) for n in loft_layers]


@pytest.mark.parametrize("neumann", [False, True], ids=["cayley", "cayley_neumann"])
def test_principal_cayley_is_psoft(neumann):
    psoft, loft, pairs = psoft_and_loft(neumann)
    g = torch.Generator().manual_seed(1)
    for ps, lo in pairs:
        A, B = ps._psoft_A_cache["default"], ps._psoft_B_cache["default"]
        assert torch.equal(lo.support, A)  # the same float32 SVD call
        torch.testing.assert_close(lo.support_image, B, rtol=1e-5, atol=1e-6)  # W0 V_r = U_r S_r
        w = 0.3 * torch.randn(R * (R - 1) // 2, generator=g)
        with torch.no_grad():
            ps.psoft_R["default"].weight.copy_(w)
            lo.transform.skew.copy_(w)
        torch.testing.assert_close(lo.rotation(), ps._get_R_matrix("default"), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(lo.delta_weight(), ps.get_delta_weight("default"), rtol=1e-5, atol=1e-6)

    ids = torch.randint(0, 257, (2, 12), generator=g)
    out_p = psoft(input_ids=ids, labels=ids)
    out_l = loft(input_ids=ids, labels=ids)
    torch.testing.assert_close(out_l.logits, out_p.logits, rtol=1e-5, atol=1e-5)
    out_p.loss.backward()
    out_l.loss.backward()
    for ps, lo in pairs:  # same gradients, so training follows the same path
        torch.testing.assert_close(lo.transform.skew.grad, ps.psoft_R["default"].weight.grad, rtol=1e-4, atol=1e-7)
    n_psoft = sum(p.numel() for p in psoft.parameters() if p.requires_grad)
    assert num_adapter_parameters(loft) == n_psoft == 14 * R * (R - 1) // 2


def test_trainable_parameter_counts_vs_psoft_default():
    """PSOFT's defaults add two magnitude vectors (2r) per layer; LOFT trains r(r-1)/2."""
    base = tiny_llama()
    psoft = get_peft_model(copy.deepcopy(base), PsoftConfig(r=R, psoft_alpha=R, target_modules=TARGETS))
    loft = apply(copy.deepcopy(base), LoftOrthConfig(R, "principal", "cayley", TARGETS))
    n_psoft = sum(p.numel() for p in psoft.parameters() if p.requires_grad)
    assert num_adapter_parameters(loft) == 14 * R * (R - 1) // 2 == 392
    assert n_psoft == 392 + 14 * 2 * R == 616
