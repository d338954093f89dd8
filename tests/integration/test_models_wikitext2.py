"""Model loaders and the WikiText-2 task on real data slices (../shared/data), offline.

The SmolLM2 test converts the GGUF package once (~20-40 s) into <repo>/.cache/models, the
runner's default cache, so later runs (and `python run.py model=smollm2_135m`) reuse it.
"""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # plain `pytest` puts only tests/integration on the path

from loft import models  # noqa: E402
from loft.models import ModelMissingError, load_model  # noqa: E402
from tasks.base import DataCorruptError, DataMissingError  # noqa: E402
from tasks.lm.wikitext2 import Wikitext2Task  # noqa: E402

# parents: [0] integration, [1] tests, [2] the repo, [3] its parent, which holds shared/
DATA_DIR = os.environ.get("LOFT_DATA_DIR", str(Path(__file__).resolve().parents[3] / "shared" / "data"))
# Golden mean loss of SmolLM2 (float32) on the first 2000 chars of wiki.test.raw, measured on
# the GGUF file directly: the safetensors cache must reproduce the dequantized weights.
SMOLLM2_GOLDEN_LOSS = 2.992321491241455


def model_cfg(name: str, **overrides):
    """conf/model/<name>.yaml under a root that defines paths.cache_dir as conf/config.yaml does."""
    root = OmegaConf.create({"paths": {"cache_dir": ".cache"},
                             "model": OmegaConf.load(REPO / "conf" / "model" / f"{name}.yaml")})
    root.model.merge_with(overrides)
    return root.model


def make_task(**overrides) -> Wikitext2Task:
    cfg = OmegaConf.load(REPO / "conf" / "task" / "wikitext2.yaml").task
    cfg.merge_with(overrides)
    kwargs = OmegaConf.to_container(cfg)
    assert kwargs.pop("_target_") == "tasks.wikitext2.Wikitext2Task"
    return Wikitext2Task(**kwargs)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_model(model_cfg("tiny_llama"))


@pytest.fixture(scope="module")
def task(tiny):
    t = make_task(block_size=64, train_file="lm/tinyshakespeare.txt", max_train_samples=40, eval_limit=6,
                  eval_batch_size=4)
    t.setup(tiny, DATA_DIR)
    return t


def test_tiny_llama_loads(tiny):
    names = {n.rsplit(".", 1)[-1] for n, _ in tiny.model.named_modules()}
    assert tiny.name == "tiny_llama" and set(tiny.target_modules) <= names
    assert tiny.model.config.hidden_size == 64 and tiny.model.config.num_hidden_layers == 2
    assert tiny.model.dtype == torch.float32  # dtype auto on CPU
    text = "Héllo, wörld \n"
    ids = tiny.tokenizer(text)["input_ids"]
    assert ids == list(text.encode()) and tiny.tokenizer.decode(ids) == text  # one token per byte
    assert tiny.tokenizer.pad_token == tiny.tokenizer.eos_token
    torch.manual_seed(0)  # the runner's seed fixes the random init
    again = load_model(model_cfg("tiny_llama")).model
    assert all(torch.equal(a, b) for a, b in zip(tiny.model.parameters(), again.parameters()))


def test_blocks_and_batches(task):
    assert task.num_train_examples() == 40 and task.eval_blocks.shape == (6, 64)
    batches = list(task.train_batches(16, epoch=0, seed=0))
    assert [len(b["input_ids"]) for b in batches] == [16, 16, 8]
    for b in batches:
        assert torch.equal(b["labels"], b["input_ids"]) and bool(b["attention_mask"].all())
    seen = torch.cat([b["input_ids"] for b in batches])
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, task.train_blocks.tolist()))
    order = lambda e, s: torch.cat([b["input_ids"][:, 0] for b in task.train_batches(16, e, s)])  # noqa: E731
    assert torch.equal(order(0, 0), order(0, 0))  # deterministic in (seed, epoch)
    assert not torch.equal(order(0, 0), order(1, 0)) and not torch.equal(order(0, 0), order(0, 1))


def test_loss_and_perplexity(task, tiny):
    model = tiny.model
    loss = task.loss(model, next(task.train_batches(4, 0, 0)))
    assert loss.ndim == 0 and torch.isfinite(loss)
    model.train()
    metrics = task.evaluate(model)
    assert model.training  # restored
    # Independently: token-level NLL from the logits, summed over all eval blocks.
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=task.eval_blocks).logits
        nll = F.cross_entropy(logits[:, :-1].flatten(0, 1).double(), task.eval_blocks[:, 1:].flatten(),
                              reduction="sum")
    model.train()
    mean = nll.item() / task.eval_blocks[:, 1:].numel()
    assert metrics["eval_loss"] == pytest.approx(mean, rel=1e-5)
    assert math.isfinite(metrics["perplexity"]) and metrics["perplexity"] == pytest.approx(math.exp(mean), rel=1e-5)
    assert 100 < metrics["perplexity"] < 400  # random init: about the vocabulary size (257)


def test_missing_file_names_the_fix(tiny, tmp_path, monkeypatch):
    with pytest.raises(DataMissingError, match="prepare_data.py wikitext2"):
        make_task(train_file="lm/no_such_corpus.txt").setup(tiny, DATA_DIR)
    # A canonical WikiText-2 file absent locally: local-only, then auto with the hub unreachable.
    with pytest.raises(DataMissingError, match="prepare_data.py wikitext2 --data-dir"):
        make_task(source="local").setup(tiny, str(tmp_path))
    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(DataMissingError, match="hub unreachable.*tinyshakespeare"):
        make_task().setup(tiny, str(tmp_path))


def test_hub_model_offline_error(monkeypatch):
    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelMissingError, match="hf download no-such-org/no-such-model.*model=tiny_llama"):
        load_model(model_cfg("gpt2", hf_id="no-such-org/no-such-model"))


def test_prepare_data_writes_canonical_layout(tmp_path, monkeypatch):
    import datasets

    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import prepare_data

    rows = ["", " = Title = \n", "", " Body text . \n"]  # the hub's rows: blank lines are ""
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, split: {"text": rows})
    prepare_data.main(["wikitext2", "--data-dir", str(tmp_path)])
    for name in ("train", "valid", "test"):
        assert (tmp_path / "lm" / f"wiki.{name}.raw").read_text() == " \n = Title = \n \n Body text . \n"


@pytest.mark.slow  # the first run converts the GGUF file (~20-40 s); later runs take ~1 s
def test_smollm2_loads_from_cache():
    cfg = model_cfg("smollm2_135m", dtype="float32")
    load_model(cfg)  # converts into the cache unless a previous run did
    cache = REPO / ".cache" / "models"
    assert (cache / models.smollm2_gguf().stem / "model.safetensors").is_file()
    assert not list(cache.glob(".*tmp-*"))  # no half-written cache left behind
    start = time.perf_counter()
    bundle = load_model(cfg)
    assert time.perf_counter() - start < 30  # a cache hit, not a second conversion
    assert bundle.name == "smollm2_135m" and bundle.model.config.model_type == "llama"
    assert bundle.tokenizer.pad_token is not None
    text = (Path(DATA_DIR) / "lm" / "wiki.test.raw").read_text(encoding="utf-8")[:2000]
    ids = bundle.tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        loss = bundle.model(input_ids=ids, labels=ids).loss.item()
    assert loss == pytest.approx(SMOLLM2_GOLDEN_LOSS, rel=1e-4)


def test_offline_train_split_falls_back_to_validation_with_a_note(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda timeout=3.0: False)
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "wikitext2_tok_valid.txt").write_text("valid " * 200)
    (tmp_path / "lm" / "wiki.test.raw").write_text("test " * 200)
    t = make_task(block_size=64)
    t.setup(tiny, str(tmp_path))
    assert bytes(t.train_blocks[0].tolist()).decode().startswith("valid valid")  # byte tokenizer
    assert bytes(t.eval_blocks[0].tolist()).decode().startswith("test test")
    assert len(t.notes) == 1 and "validation split" in t.notes[0] and "not the paper's protocol" in t.notes[0]
    # Never when the run evaluates on the validation split, nor for a corpus the user named.
    with pytest.raises(DataMissingError):
        make_task(block_size=64, eval_file="lm/wikitext2_tok_valid.txt").setup(tiny, str(tmp_path))
    with pytest.raises(DataMissingError):
        make_task(block_size=64, source="local").setup(tiny, str(tmp_path))
    with pytest.raises(DataMissingError):
        make_task(block_size=64, train_file="lm/other.txt").setup(tiny, str(tmp_path))
    # A canonical train file that is there but damaged is named, not replaced by the validation split.
    (tmp_path / "lm" / "wiki.train.raw").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(DataCorruptError, match=r"wiki.train.raw is damaged.*prepare_data.py wikitext2"):
        make_task(block_size=64).setup(tiny, str(tmp_path))
