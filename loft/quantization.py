"""4-bit base models (QLoRA, Dettmers et al. 2023; QLoFT = LoFT on such a base, LoFT paper F.2).

`model.quantization=nf4` (or `fp4`; default `none`) loads a causal LM through transformers'
`BitsAndBytesConfig`: every Linear of the decoder becomes a bitsandbytes `Linear4bit` holding
4-bit codes plus per-block scales (double-quantized, the QLoRA recipe), while the embeddings,
norms and LM head stay in floating point. The method then runs
`peft.prepare_model_for_kbit_training` (norms and head upcast to float32, gradient
checkpointing on, input grads enabled) and adds full-precision adapters; only methods whose
update lives entirely in adapters can do so (the method config's `kbit_base` flag).

Memory of one m x n base weight: 4 bits per entry plus one 8-bit scale per 64-entry block
and one float32 per 256 blocks (double quantization): 4 + 8/64 + 32/(64*256) ~ 4.127 bits,
against 16 in bf16 and 32 in float32 (about 3.9x and 7.8x smaller).
"""
from __future__ import annotations

import tempfile

import torch

from loft.core.errors import ConfigError
from loft.validation import QUANTIZATIONS as KINDS  # defined where configs are checked (no torch there)

CAUSAL_LOADERS = ("tiny_llama", "smollm2", "hf_causal_lm")


def kind_of(model_cfg) -> str:
    kind = str(model_cfg.get("quantization", "none") or "none")
    if kind not in KINDS:
        raise ConfigError(f"model.quantization={kind}: use one of {', '.join(KINDS)}")
    if kind != "none" and model_cfg.get("loader") not in CAUSAL_LOADERS:
        raise ConfigError(f"model.quantization={kind} supports causal LMs (loaders {', '.join(CAUSAL_LOADERS)}), "
                          f"not model={model_cfg.get('name')}; set model.quantization=none")
    return kind


def bnb_config(kind: str, compute_dtype: torch.dtype):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=kind, bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def load_kwargs(model_cfg, dtype: torch.dtype) -> dict:
    """Extra `from_pretrained` arguments: nothing for `none`, else the 4-bit config and a device
    map (bitsandbytes quantizes while loading, so the full-precision weights never sit on the GPU)."""
    kind = kind_of(model_cfg)
    if kind == "none":
        return {}
    device = torch.cuda.current_device() if torch.cuda.is_available() else "cpu"
    return {"quantization_config": bnb_config(kind, dtype), "device_map": {"": device}}


def quantize_in_memory(model, model_cfg, dtype: torch.dtype):
    """A model built in code (tiny_llama) goes through the same `from_pretrained` path as a hub
    model, via a temporary folder, so it is quantized exactly as the real ones are."""
    kwargs = load_kwargs(model_cfg, dtype)
    if not kwargs:
        return model
    with tempfile.TemporaryDirectory(prefix="loft-quantize-") as folder:
        model.save_pretrained(folder)
        return type(model).from_pretrained(folder, dtype=dtype, **kwargs)


def is_quantized(model: torch.nn.Module) -> bool:
    return any(_is_4bit(m) for m in model.modules())


def _is_4bit(module) -> bool:
    return type(module).__name__ == "Linear4bit" and type(module).__module__.startswith("bitsandbytes")


def place(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """`model.to(device, dtype)`, except that 4-bit codes keep their storage: on a quantized
    model only the floating-point parameters are cast, and `dtype` becomes the compute dtype
    the 4-bit layers dequantize to (transformers refuses `.to(dtype)` on such a model)."""
    if not is_quantized(model):
        model.to(device=device, dtype=dtype)
        return
    model.to(device)
    for module in model.modules():
        if _is_4bit(module):
            module.compute_dtype = dtype
    for name, p in model.named_parameters():
        if p.is_floating_point() and type(p).__name__ != "Params4bit":
            p.data = p.data.to(dtype)


def prepare(model: torch.nn.Module, method_cfg) -> dict:
    """Refuse a method that cannot train on a 4-bit base, else apply the QLoRA preparation.
    Returns what the record keeps about the base ({} for a full-precision base)."""
    if not is_quantized(model):
        return {}
    ok = method_cfg.get("kbit_base", False)
    if ok is not True:
        why = ok if isinstance(ok, str) else "its config does not declare kbit_base: true (an update that lives in an adapter alone)"
        raise ConfigError(f"method={method_cfg.name} cannot run on a 4-bit base: {why}; use a LoRA-family "
                          f"method (lora, dora, rslora, loraplus, adalora, loft*, lora_pro) or model.quantization=none")
    from peft import prepare_model_for_kbit_training

    info = {"quantization": quant_type(model), "base_4bit_bytes": base_4bit_bytes(model)}
    prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,  # the QLoRA recipe
                                    gradient_checkpointing_kwargs={"use_reentrant": False})
    return info


def quant_type(model: torch.nn.Module) -> str:
    return next(m.weight.quant_state.quant_type for m in model.modules() if _is_4bit(m))


def base_4bit_bytes(model: torch.nn.Module) -> int:
    """Bytes of the 4-bit layers' weights: packed codes plus their quantization state."""
    total = 0
    for module in model.modules():
        if _is_4bit(module):
            w = module.weight
            total += w.numel() * w.element_size() + _state_bytes(w.quant_state)
    return total


def _state_bytes(state) -> int:
    total = state.absmax.numel() * state.absmax.element_size()
    if state.state2 is not None:  # double quantization: the scales' own scales
        total += _state_bytes(state.state2)
    return total + (state.offset.numel() * state.offset.element_size() if state.offset is not None else 0)


def dequantized_copy(model: torch.nn.Module, dense: torch.nn.Module) -> torch.nn.Module:
    """Load the dequantized 4-bit weights of `model` into `dense` (same architecture, plain
    Linear layers): the full-precision model the 4-bit one computes with."""
    import bitsandbytes.functional as bnbf

    modules = dict(dense.named_modules())
    with torch.no_grad():
        for name, module in model.named_modules():
            if _is_4bit(module):
                w = bnbf.dequantize_4bit(module.weight.data, module.weight.quant_state)
                modules[name].weight.copy_(w.to(modules[name].weight.dtype))
    return dense
