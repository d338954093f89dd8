"""Models built in code from their config, no file of any kind: the LoFT paper's matrix W
(`matfac`) and randomly initialised LLaMA and ViT miniatures (`tiny_llama`, `tiny_vit`) for tests and
CPU runs. Their weights are fixed by `model.init_seed` (not the run's seed), so the model config
alone rebuilds the base a saved adapter belongs to."""
from __future__ import annotations

import contextlib

import torch

from loft import quantization


class MatFacModel(torch.nn.Module):
    """The LoFT paper's Section 2.5 matrix W (m x n, W0 = 0) as an ordinary nn.Linear, so every
    method adapts it through the same code path as a language model; the forward pass reads
    the effective weight off the layer by feeding the identity (works for any Linear adapter)."""

    def __init__(self, m: int, n: int):
        super().__init__()
        self.W = torch.nn.Linear(n, m, bias=False)
        torch.nn.init.zeros_(self.W.weight)  # the paper starts from W = 0

    def effective_weight(self) -> torch.Tensor:
        p = next(self.parameters())
        eye = torch.eye(self.W.in_features, dtype=p.dtype, device=p.device)
        return self.W(eye).T  # Linear(x) = x W^T, so W(I)^T = W (plus any adapter delta)

    def forward(self, *_args, **_kwargs) -> torch.Tensor:
        return self.effective_weight()


def matfac(cfg, dtype):
    return MatFacModel(int(cfg.m), int(cfg.n)), None


@contextlib.contextmanager
def seeded_init(cfg):
    """A random-init base stands for a pretrained checkpoint: it must not change with the run's
    seed, or a saved adapter would be useless without a copy of its base. The global RNG is
    left as it was, so the run's own random stream does not depend on the model's size."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.get("init_seed", 0)))
        yield


def byte_tokenizer():
    """256 byte tokens (id == byte value) + one <|endoftext|>: lossless on any text and
    needs no vocabulary file. Chosen over the SmolLM2 tokenizer so the tiny model does not
    depend on an optional package and keeps a 257-row embedding instead of 49152."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # GPT-2's printable stand-ins for the 256 bytes, which the ByteLevel pre-tokenizer emits.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    vocab = {chr(b if b in printable else next(extra)): b for b in range(256)}
    vocab["<|endoftext|>"] = 256
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))  # no merges: one token per byte
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", model_max_length=1 << 30)


def tiny_llama(cfg, dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.get("max_position_embeddings", 2048),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    with seeded_init(cfg):
        model = LlamaForCausalLM(config)
    return quantization.quantize_in_memory(model.to(dtype), cfg, dtype), tokenizer


def tiny_vit(cfg, dtype, num_labels):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

    config = ViTConfig(image_size=cfg.image_size, patch_size=cfg.patch_size, num_channels=3,
                       hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
                       num_attention_heads=cfg.num_attention_heads, intermediate_size=cfg.intermediate_size,
                       num_labels=num_labels)
    # The in21k ViT's normalisation (mean = std = 0.5), resized to the tiny model's input.
    processor = ViTImageProcessorPil(size={"height": cfg.image_size, "width": cfg.image_size},
                                     image_mean=[0.5] * 3, image_std=[0.5] * 3)
    with seeded_init(cfg):
        model = ViTForImageClassification(config)
    return model.to(dtype), processor
