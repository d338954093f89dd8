"""Every method that promises it leaves the model's outputs unchanged at initialisation, and a
method that cannot adapt a model says so in one line."""
from __future__ import annotations

import copy

import pytest
import torch

from loft.core.errors import ConfigError
from loft.methods import MethodContext, build_method
from loft.models import load_model
from tests.conftest import LM_METHODS, compose_config

# Methods whose initial adapted weight is W0 by construction, up to round-off of what they
# compute at init (PiSSA subtracts and re-adds its SVD part; LoRA-GA offsets W0 by its init).
UNCHANGED_AT_INIT = {m: 1e-5 for m in LM_METHODS} | {"pissa": 1e-3, "lora_ga": 1e-3}


def tiny_llama_and_batch():
    torch.manual_seed(0)
    cfg = compose_config("model=tiny_llama")
    bundle = load_model(cfg.model)
    ids = torch.randint(0, 256, (2, 16))
    return bundle, {"input_ids": ids, "labels": ids}


@pytest.mark.parametrize("method", LM_METHODS)
def test_outputs_unchanged_at_init(method):
    bundle, batch = tiny_llama_and_batch()
    cfg = compose_config("model=tiny_llama", f"method={method}", "rank=4", "adapter_dropout=0.0")
    model = bundle.model.eval()
    with torch.no_grad():
        before = model(input_ids=batch["input_ids"]).logits
    ctx = MethodContext(4, {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
                        bundle.target_modules, total_steps=10,
                        calibration_batches=lambda n: [batch] * n, loss=lambda m, b: m(**b).loss)
    adapted = build_method(cfg.method, copy.deepcopy(model), ctx).model.eval()
    with torch.no_grad():
        after = adapted(input_ids=batch["input_ids"]).logits
    torch.testing.assert_close(after, before, atol=UNCHANGED_AT_INIT[method], rtol=UNCHANGED_AT_INIT[method])


def test_unsupported_combination_is_a_config_error():
    """BOFT's block size must divide the layer width; PEFT's refusal becomes one clear line."""
    bundle, _ = tiny_llama_and_batch()
    cfg = compose_config("model=tiny_llama", "method=boft", "rank=5")
    ctx = MethodContext(5, {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}, bundle.target_modules)
    with pytest.raises(ConfigError, match="BOFTConfig cannot adapt this model"):
        build_method(cfg.method, bundle.model, ctx)
