"""Hub models (`hf_causal_lm`, `hf_seq_cls`, `hf_image_cls`: any `model.hf_id`) through the
standard HF cache, so models fetched earlier or with `hf download <id>` load offline; without the
hub and the cache, one line names the fix and the models that work offline."""
from __future__ import annotations

from pathlib import Path

from loft import quantization
from loft.core import hub as hub_check
from loft.core.errors import ModelMissingError

CAUSAL_OFFLINE = "model=smollm2_135m or model=tiny_llama"  # what works without the hub


def _hub_source(hf_id: str, offline: str):
    """What to pass to from_pretrained: the id when the hub is reachable, else the cached
    snapshot's folder. Offline, given the id, transformers would spend ~25 s retrying the hub
    first (its adapter lookup ignores local_files_only)."""
    if hub_check.hub_reachable():  # looked up at call time: one patch target for tests
        return hf_id
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(hf_id, "config.json")
    if not isinstance(config, str):
        raise ModelMissingError(_offline_message(hf_id, offline))
    return Path(config).parent


def _from_hub(hf_id: str, load, offline: str = CAUSAL_OFFLINE):
    """`load(source)` with the hub (or its cache); a connection lost midway names the fix,
    and `offline` names the models that work without the hub."""
    try:
        return load(_hub_source(hf_id, offline))
    except OSError as err:
        if "couldn't connect" in str(err):  # the hub went away between the probe and the load
            raise ModelMissingError(_offline_message(hf_id, offline)) from err
        raise  # e.g. a wrong id: HF's own message says it best


def hf_causal_lm(cfg, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = quantization.load_kwargs(cfg, dtype)
    return _from_hub(cfg.hf_id, lambda source: (AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **extra),
                                                AutoTokenizer.from_pretrained(source)))


def hf_seq_cls(cfg, dtype, num_labels):
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


def hf_image_cls(cfg, dtype, num_labels):
    from transformers import AutoModelForImageClassification

    # ignore_mismatched_sizes: a checkpoint with its own head (e.g. ImageNet-1k) gets a new one.
    return _from_hub(cfg.hf_id, lambda source: (
        AutoModelForImageClassification.from_pretrained(source, num_labels=num_labels, dtype=dtype,
                                                        ignore_mismatched_sizes=True),
        _image_processor(source)), offline="model=tiny_vit")


def _offline_message(hf_id: str, offline: str = CAUSAL_OFFLINE) -> str:
    return (f"Cannot load {hf_id!r}: the Hugging Face hub is unreachable and the model is not in "
            f"the local HF cache. Fix: connect to the internet, or pre-download it with "
            f"`hf download {hf_id}` (`huggingface-cli download {hf_id}` on older huggingface_hub), "
            f"or run offline with {offline}.")
