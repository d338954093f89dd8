"""Whole-model behaviour: outputs unchanged at init, merge/unmerge, adapter files, Conv1D,
forward cost, and the calibration pass (memory, agreement with autograd's dense gradient,
first-order signal) on a tiny LLaMA."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.pytorch_utils import Conv1D

from loft.orth import (SUPPORTS, TRANSFORMS, LoftOrthConfig, LoftOrthLinear, adapted_layers, apply, build_transform,
                       calibrate, find_targets, load_adapter, merge_and_unload, save_adapter, select_support,
                       subspace_distance)
from loft.orth.support import haar_support


pytestmark = pytest.mark.usefixtures("one_thread")


IN, HID, OUT, R = 10, 16, 12, 4


class MLP(nn.Module):
    def __init__(self, conv: bool = False, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        lin1, lin2, self.head = nn.Linear(IN, HID), nn.Linear(HID, OUT), nn.Linear(OUT, 3)
        self.fc1, self.fc2 = (self.conv_of(lin1), self.conv_of(lin2)) if conv else (lin1, lin2)

    @staticmethod
    def conv_of(lin: nn.Linear) -> Conv1D:
        conv = Conv1D(lin.out_features, lin.in_features)  # weight stored in x out
        with torch.no_grad():
            conv.weight.copy_(lin.weight.T)
            conv.bias.copy_(lin.bias)
        return conv

    def forward(self, x):
        return self.head(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


def mse(model, batch):
    return (model(batch["x"]) - batch["y"]).pow(2).mean()


def batches(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"x": torch.randn(5, 2, IN, generator=g), "y": torch.randn(5, 2, 3, generator=g)} for _ in range(n)]


def adapt(model, support="principal", transform="cayley", **kw):
    config = LoftOrthConfig(R, support, transform, ["fc1", "fc2"], **kw)
    calib = batches() if config.uses_calibration else None
    return apply(model, config, calib, mse)


def perturb_(model, scale=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in adapted_layers(model).values():
            for p in layer.transform.parameters():
                p.add_(scale * torch.randn(p.shape, generator=g))


X = torch.randn(7, IN, generator=torch.Generator().manual_seed(123))


@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv1d"])
@pytest.mark.parametrize("support", SUPPORTS)
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_outputs_unchanged_at_init(transform, support, conv):
    base = MLP(conv)
    model = adapt(copy.deepcopy(base), support, transform)
    assert torch.equal(model(X), base(X))
    layers = adapted_layers(model)
    assert set(layers) == {"fc1", "fc2"}
    for layer in layers.values():  # only T's parametrisation trains; the base layer is frozen
        assert {n for n, p in layer.named_parameters() if p.requires_grad} == \
            {f"transform.{n}" for n, _ in layer.transform.named_parameters()}
    assert model.head.weight.requires_grad  # non-targeted flags are the caller's


@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv1d"])
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_merge_unmerge_round_trip(transform, conv):
    model = adapt(MLP(conv), "random", transform)
    perturb_(model)
    w0 = {n: l.base_layer.weight.detach().clone() for n, l in adapted_layers(model).items()}
    y = model(X)
    assert not torch.allclose(y, MLP(conv)(X), atol=1e-3)
    for layer in adapted_layers(model).values():
        layer.merge()
    torch.testing.assert_close(model(X), y, rtol=1e-5, atol=1e-6)  # merged forward = unmerged forward
    for name, layer in adapted_layers(model).items():
        assert not torch.allclose(layer.base_layer.weight, w0[name], atol=1e-4)
        layer.unmerge()
        torch.testing.assert_close(layer.base_layer.weight, w0[name], rtol=0, atol=1e-6)
    torch.testing.assert_close(model(X), y, rtol=1e-5, atol=1e-6)
    merge_and_unload(model)
    assert not adapted_layers(model) and isinstance(model.fc1, Conv1D if conv else nn.Linear)
    torch.testing.assert_close(model(X), y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("support,transform", [("principal", "cayley"), ("skewgrad", "householder"),
                                               ("random", "givens"), ("coordinate", "exp"),
                                               ("gradsvd", "cayley_neumann")])
@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv1d"])
def test_save_load_round_trip(tmp_path, support, transform, conv):
    base = MLP(conv)
    model = adapt(copy.deepcopy(base), support, transform, seed=3)
    perturb_(model)
    y = model(X)
    save_adapter(model, tmp_path)
    tensors = load_file(tmp_path / "adapter_model.safetensors")
    expected = {f"{n}.support" for n in ("fc1", "fc2")} | \
        {f"{n}.transform.{p}" for n, l in adapted_layers(model).items() for p, _ in l.transform.named_parameters()}
    assert set(tensors) == expected  # P and T's parameters only
    assert json.loads((tmp_path / "adapter_config.json").read_text())["config"]["support"] == support

    fresh = load_adapter(copy.deepcopy(base), tmp_path)  # no calibration needed: P is in the file
    assert torch.equal(fresh(X), y)
    other = adapt(copy.deepcopy(base), "random", transform, seed=99)  # an adapted model: P replaced
    assert torch.equal(load_adapter(other, tmp_path)(X), y)


def test_saved_task_head_round_trips(tmp_path):
    """modules_to_save: a trained head (not a LOFT layer) is saved with P and T and restored on load."""
    base = MLP()
    model = adapt(copy.deepcopy(base), "random", "exp")
    perturb_(model)
    with torch.no_grad():
        model.head.weight.add_(1.0)
    save_adapter(model, tmp_path, modules_to_save=["head"])
    assert {"modules_to_save.head.weight", "modules_to_save.head.bias"} <= set(load_file(tmp_path / "adapter_model.safetensors"))
    assert torch.equal(load_adapter(copy.deepcopy(base), tmp_path)(X), model(X))
    save_adapter(model, tmp_path)  # without the head: the fresh model keeps its own
    assert not torch.allclose(load_adapter(copy.deepcopy(base), tmp_path)(X), model(X))


def test_conv1d_and_linear_give_the_same_adapter(tmp_path):
    """Same calibration on the same weights stored both ways: the same supports (as subspaces:
    the basis inside a support is round-off dependent, e.g. within each invariant plane of S),
    and an adapter saved from the Linear model reproduces its outputs on the Conv1D model."""
    lin, conv = adapt(MLP(False), "skewgrad", "exp"), adapt(MLP(True), "skewgrad", "exp")
    for name in ("fc1", "fc2"):
        a, b = adapted_layers(lin)[name], adapted_layers(conv)[name]
        assert subspace_distance(a.support, b.support) < 1e-4
    perturb_(lin)
    save_adapter(lin, tmp_path)
    conv = load_adapter(MLP(True), tmp_path)
    torch.testing.assert_close(conv(X), lin(X), rtol=1e-5, atol=1e-6)
    for name in ("fc1", "fc2"):
        torch.testing.assert_close(adapted_layers(conv)[name].delta_weight(), adapted_layers(lin)[name].delta_weight())


def test_config_and_target_errors():
    with pytest.raises(ValueError, match="unknown support"):
        LoftOrthConfig(R, "svd", "cayley", ["fc1"])
    with pytest.raises(ValueError, match="unknown transform"):
        LoftOrthConfig(R, "principal", "qr", ["fc1"])
    with pytest.raises(ValueError, match="no module matches"):
        apply(MLP(), LoftOrthConfig(R, "principal", "cayley", ["nope"]))
    with pytest.raises(ValueError, match="needs calibration batches"):
        apply(MLP(), LoftOrthConfig(R, "skewgrad", "cayley", ["fc1"]))
    with pytest.raises(ValueError, match="exceeds"):
        apply(MLP(), LoftOrthConfig(IN + 1, "principal", "cayley", ["fc1"]))
    assert list(find_targets(MLP(), r"fc\d")) == ["fc1", "fc2"]  # a string is a regex


class AllocationRecorder(TorchDispatchMode):
    """Shapes of all tensors produced by non-view ops (views of the weight allocate nothing)."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view and func is not torch.ops.aten.detach.default:
            self.shapes += [tuple(t.shape) for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        return out


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_forward_costs_m_plus_n_times_r_per_token(transform):
    m, n, r, tokens = 96, 80, 4, 5
    base = nn.Linear(n, m)
    layer = LoftOrthLinear(base, haar_support(n, r, torch.Generator().manual_seed(0)),
                           build_transform(transform, r, generator=torch.Generator().manual_seed(0)))
    assert layer.support.shape == (r, n) and layer.support_image.shape == (m, r)
    assert all(p.numel() <= r * r for p in layer.parameters() if p.requires_grad)
    perturb_(nn.ModuleDict({"l": layer}))
    x = torch.randn(tokens, n, requires_grad=True)
    dense = base.weight @ (torch.eye(n) + layer.support.T @ (layer.rotation() - torch.eye(r)) @ layer.support)
    torch.testing.assert_close(layer(x), x @ dense.T + base.bias, rtol=1e-5, atol=1e-5)  # the dense reference

    with FlopCounterMode(display=False) as flops_base:
        base(x)
    with FlopCounterMode(display=False) as flops_layer:
        layer(x)
    extra = flops_layer.get_total_flops() - flops_base.get_total_flops()
    t_build = 2 * r ** 3 * 2 * r  # T itself: at most ~2r r x r products (token-independent)
    assert extra <= 2 * tokens * (n + r + m) * r + t_build  # P x, (T - I) ., B .
    assert extra < 2 * m * n * r / 4  # forming B (T - I) P would cost 2 m n r

    with AllocationRecorder() as rec:  # forward and backward: no m x n tensor anywhere
        layer(x).pow(2).sum().backward()
    assert rec.shapes and max(map(lambda s: torch.Size(s).numel(), rec.shapes)) < m * n / 4
    assert base.weight.grad is None


# --- calibration on a tiny LLaMA -----------------------------------------------------------

TARGETS = ["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"]


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=257, max_position_embeddings=64)
    return LlamaForCausalLM(cfg)


def lm_batches(n=3):
    g = torch.Generator().manual_seed(5)
    out = []
    for _ in range(n):
        ids = torch.randint(0, 257, (2, 16), generator=g)
        out.append({"input_ids": ids, "labels": ids})
    return out


def dense_gradients(model: nn.Module, names) -> dict[str, torch.Tensor]:
    """dL/dW0 (out x in) by plain autograd, summed over the calibration batches, eval mode."""
    model = copy.deepcopy(model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    weights = {name: model.get_submodule(name).weight for name in names}
    for w in weights.values():
        w.requires_grad_(True)
    for batch in lm_batches():
        model(**batch).loss.backward()
    return {name: w.grad for name, w in weights.items()}


def test_calibration_state_and_bookkeeping():
    model = tiny_llama().train()
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    config = LoftOrthConfig(R, "skewgrad", "cayley", TARGETS, oversample=4)
    targets = find_targets(model, TARGETS)
    sketches = calibrate(model, targets, config, iter(lm_batches()))
    assert set(sketches) == set(targets) and len(targets) == 10
    k = R + 4
    for name, sketch in sketches.items():
        m, n = targets[name].weight.shape
        for t in sketch.tensors().values():  # O((m + n) r): every tensor is (m or n) x O(k)
            assert t.shape[0] in (m, n) and t.shape[1] <= 3 * k + 1
        assert sum(t.numel() for t in sketch.tensors().values()) <= 2 * (m + n) * (3 * k + 1)
        assert sketch.g_in.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())  # autograd formed no weight gradient
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags and model.training

    adapted = apply(model, config, lm_batches())
    assert adapted.loft_orth_calibration_s > 0
    assert adapted.loft_orth_support_s == adapted.loft_orth_calibration_s
    assert all(p.grad is None for p in adapted.parameters())
    assert adapted.model.embed_tokens.weight.requires_grad  # untouched
    principal = apply(tiny_llama(), LoftOrthConfig(R, "principal", "cayley", TARGETS))
    assert principal.loft_orth_calibration_s == 0.0 and principal.loft_orth_support_s > 0


@pytest.mark.parametrize("passes", [1, 2])
@pytest.mark.parametrize("support", ["skewgrad", "gradsvd"])
def test_calibration_matches_dense_definition_on_llama(support, passes):
    """With a sketch as wide as the sketched matrix can have rank (k = min(m, n) for G, n for S)
    it is exact, so the supports of the hooked calibration pass equal the dense definitions on
    autograd's G, to round-off. (The single pass solves a square, hence less well-conditioned,
    co-range system when l = k = n: a looser tolerance, and the captured energy as well.)"""
    base = tiny_llama().eval()
    grads = dense_gradients(base, find_targets(base, TARGETS))
    ids = lm_batches()[0]["input_ids"]
    y0 = base(input_ids=ids).logits
    config = LoftOrthConfig(R, support, "cayley", TARGETS, oversample=128, calibration_passes=passes)
    model = apply(copy.deepcopy(base), config, iter(lm_batches()))  # a one-shot iterator is fine
    assert torch.equal(model(input_ids=ids).logits, y0)
    for name, layer in adapted_layers(model).items():
        w, g, p = layer.base_layer.weight.double(), grads[name].double(), layer.support.double()
        dense = select_support(support, w, R, grad=g)
        assert subspace_distance(p, dense) < (1e-2 if passes == 1 else 1e-4), name
        a = (w.T @ g - g.T @ w) / 2 if support == "skewgrad" else g
        captured = torch.linalg.matrix_norm(a @ p.T) ** 2 / torch.linalg.matrix_norm(a @ dense.T) ** 2
        assert captured.item() > 1 - 1e-5, name


@pytest.mark.parametrize("transform,factor", [("exp", 2.0), ("cayley", 4.0)])
def test_first_order_signal_is_p_skew_w_t_g_p_t(transform, factor):
    """At T = I, dL/dK = P skew(W0^T G) P^T: the gradient of the skew parameter (i, j) is
    2 (P S P^T)_ij for T = exp(K) and 4 (P S P^T)_ij for the Cayley transform (dT = 2 dK)."""
    base = tiny_llama().eval()
    grads = dense_gradients(base, find_targets(base, TARGETS))
    model = apply(copy.deepcopy(base), LoftOrthConfig(R, "random", transform, TARGETS))
    for batch in lm_batches():
        model(**batch).loss.backward()
    for name, layer in adapted_layers(model).items():
        w, g, p = layer.base_layer.weight.double(), grads[name].double(), layer.support.double()
        s = (w.T @ g - g.T @ w) / 2
        signal = (p @ s @ p.T)[layer.transform.rows, layer.transform.cols]
        torch.testing.assert_close(layer.transform.skew.grad.double(), factor * signal, rtol=1e-3, atol=1e-8)
