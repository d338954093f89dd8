"""A new optimizer method is one YAML, one module and one registration line with its
capability flags; the builder refuses or accepts it by those flags alone (not by its name)."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from loft.core.errors import ConfigError
from loft.train.distributed import supports_sharding
from loft.methods import OPTIMIZERS, MethodContext, build_method, register_optimizer, unregister
from loft.models import load_model
from loft.runner import run
from tests.conftest import LM_METHODS, compose_config

SMALL_MATFAC = ("task=matfac", "model.m=48", "model.n=32", "task.target_rank=4", "rank=4", "trainer.max_steps=30",
                "trainer.lr=0.01")

# The YAML of the toy method, as conf/method/toy_sign.yaml would hold it: LoRA factors
# stepped by sign descent on each pair.
TOY_YAML = """
name: toy_sign
target_modules: null
adapter:
  kind: peft
  config: LoraConfig
  kwargs: {r: 4, lora_alpha: 4, lora_dropout: 0.0}
optimizer:
  kind: toy_sign_sgd
  kwargs: {decay: 1.0}
"""


class PairSignSGD(torch.optim.Optimizer):
    """The toy method's module: p <- p - lr * decay^t * sign(grad), over LoRA parameters."""

    def __init__(self, params, lr, decay=1.0):
        super().__init__(params, {"lr": lr, "decay": decay})
        self.steps = 0

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            scale = group["lr"] * group["decay"] ** self.steps
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-scale)
        self.steps += 1


@pytest.fixture
def toy_sign():
    @register_optimizer("toy_sign_sgd", needs_lora_pairs=True, shardable=False)  # the one registration line
    def toy_sign_sgd(model, params, hp, kwargs):
        return PairSignSGD(params, lr=hp["lr"], **kwargs)

    yield OmegaConf.create(TOY_YAML)
    unregister("toy_sign_sgd")


def _with_method(cfg, method_cfg):
    with open_dict(cfg):
        cfg.method = method_cfg
    return cfg


def test_toy_optimizer_method_trains_on_matfac_through_the_runner(toy_sign, runs_dir):
    cfg = _with_method(compose_config(*SMALL_MATFAC, "method=lora", runs_dir=runs_dir), toy_sign)
    record = run(cfg, overrides=[])
    on_disk = json.loads((runs_dir / "matfac" / "matfac" / "toy_sign" / "r4_seed0.json").read_text())
    loss = on_disk["history"]["loss"]
    assert record["method"] == "toy_sign" and len(loss) == 30
    assert loss[-1] < 0.85 * loss[0]  # sign descent on (B, A) fits the rank-4 target (slowly at this lr)
    assert on_disk["trainable_params"] == 4 * (48 + 32)


def test_toy_optimizer_is_refused_without_lora_pairs(toy_sign):
    """needs_lora_pairs=True: on full fine-tuning (adapter kind none) there are no pairs."""
    cfg = compose_config(*SMALL_MATFAC, "method=full")
    bundle = load_model(cfg.model)
    no_pairs = OmegaConf.merge(toy_sign, {"adapter": {"kind": "none"}})
    ctx = MethodContext(4, {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}, bundle.target_modules)
    with pytest.raises(ConfigError, match="method=toy_sign found no LoRA pairs"):
        build_method(no_pairs, bundle.model, ctx)
    assert isinstance(build_method(toy_sign, load_model(cfg.model).model, ctx).optimizer, PairSignSGD)


def test_toy_optimizer_is_refused_under_fsdp_before_adapting(toy_sign, monkeypatch):
    """shardable=False: refused under FSDP from the flag, before the model is touched."""
    cfg = compose_config(*SMALL_MATFAC, "method=lora")
    model = load_model(cfg.model).model
    before = copy.deepcopy(model.state_dict())
    ctx = MethodContext(4, {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}, ["W"])
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ConfigError, match="method=toy_sign cannot run under FSDP: optimizer kind toy_sign_sgd is not sh"):
        build_method(toy_sign, model, ctx)
    assert model.state_dict().keys() == before.keys()  # no adapter was added
    # LoRA with AdamW (shardable) passes the same check
    build_method(cfg.method, model, ctx)


def test_calibration_flag_refuses_a_task_without_calibration_batches():
    cfg = compose_config("model=tiny_llama", "method=loft_orth_gradsvd", "rank=4")
    bundle = load_model(cfg.model)
    ctx = MethodContext(4, {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}, bundle.target_modules)
    with pytest.raises(ConfigError, match="method=loft_orth_gradsvd needs calibration batches from the task"):
        build_method(cfg.method, bundle.model, ctx)
    build_method(compose_config("model=tiny_llama", "method=loft_orth_principal", "rank=4").method, bundle.model, ctx)


@pytest.mark.parametrize("method", LM_METHODS)
def test_shardable_flag_agrees_with_the_optimizer_object(method):
    """The registry's flag and the optimizer's own `supports_fsdp` (read by loft.train.checkpoint) agree."""
    cfg = compose_config("model=tiny_llama", f"method={method}", "rank=4")
    bundle = load_model(cfg.model)
    ids = torch.randint(0, 256, (2, 8))
    ctx = MethodContext(4, {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
                        bundle.target_modules, total_steps=10, calibration_batches=lambda n: [{"input_ids": ids, "labels": ids}] * n,
                        loss=lambda m, b: m(**b).loss)
    optimizer = build_method(cfg.method, bundle.model, ctx).optimizer
    assert OPTIMIZERS[cfg.method.optimizer.kind].shardable == supports_sharding(optimizer)
