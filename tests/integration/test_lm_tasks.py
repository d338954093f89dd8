"""The LM tasks offline on a tiny random LLaMA and real data slices (../shared/data).

Covers: commonsense (runner end to end, partial union, missing sets reported, training
data required only when training), batched generation == batch 1 (plain and PEFT models),
supervised tokenisation, GSM8K/MATH/Orca-Math data paths, the lm-eval protocol against a
hand-computed log-likelihood, and the prepare script's hub conversion (hub mocked).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.conftest import DATA_DIR, compose_config  # noqa: E402
from loft.runner import run  # noqa: E402
from tasks.base import DataMissingError, ModelBundle  # noqa: E402
from tasks.commonsense import ORDER, SETS, CommonsenseTask, dora_holdout, from_llm_adapters, train_pair  # noqa: E402
from tasks.generation import IGNORE_INDEX, GenerationSettings, collate_right, generate, tokenize_supervised  # noqa: E402
from tasks.math import MathReasoningTask, orca_split  # noqa: E402


@pytest.fixture(scope="module")
def tiny() -> ModelBundle:
    from omegaconf import OmegaConf

    from loft.models import load_model

    cfg = OmegaConf.load(REPO / "conf" / "model" / "tiny_llama.yaml")
    cfg.cache_dir = str(REPO / ".cache" / "models")
    torch.manual_seed(0)
    return load_model(cfg)


def _perturbed_lora(model):
    """A PEFT LoRA copy whose adapters are non-zero (B = 0 at init would hide them)."""
    import copy

    import peft

    wrapped = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2, generator=torch.Generator().manual_seed(1))
    return wrapped


# --- commonsense -------------------------------------------------------------------------

def test_runner_trains_and_evaluates_boolq(runs_dir):
    cfg = compose_config("task=boolq", "model=tiny_llama", "method=lora", "trainer.max_steps=2", "trainer.batch_size=4",
                         "trainer.warmup_steps=0", "task.eval_limit=4", "task.num_beams=1", "task.max_new_tokens=8",
                         "task.max_train_samples=16", runs_dir=runs_dir)
    record = run(cfg)
    m = record["metrics"]
    assert record["steps"] == 2 and record["final_train_loss"] is not None
    assert 0.0 <= m["boolq"] <= 1.0 and m["boolq_n"] == 4 and m["eval_examples_per_s"] > 0
    assert cfg.trainer.lr == 2e-4 and cfg.trainer.warmup_steps == 0  # Table 4 default lr without paper_lr
    on_disk = json.loads(next(Path(runs_dir).rglob("*.json")).read_text())
    assert on_disk["metrics"]["boolq_n"] == 4


def test_runner_selects_the_lowest_validation_loss_and_records_it(runs_dir):
    cfg = compose_config("task=arc_e", "model=tiny_llama", "method=lora", "trainer.max_steps=5", "trainer.batch_size=4",
                         "trainer.warmup_steps=0", "task.eval_limit=2", "task.num_beams=1", "task.max_new_tokens=4",
                         "task.max_train_samples=16", "+task.val_set_size=8", "+task.eval_every=2", runs_dir=runs_dir)
    record = run(cfg)
    selection = record["selection"]
    assert [c["step"] for c in selection["candidates"]] == [2, 4]  # step 5 is off the eval_every grid (as in HF)
    best = min(selection["candidates"], key=lambda c: c["score"])
    assert selection["selected_step"] == best["step"] and record["metrics"]["selection_score"] == best["score"]
    assert record["metrics"]["selection_examples"] == 8


def test_paper_configs_compose():
    cfg = compose_config("task=commonsense170k")
    assert cfg.model.name == "llama_7b" and cfg.trainer.lr == 2e-4 and cfg.trainer.batch_size == 16
    assert cfg.trainer.epochs == 3 and cfg.trainer.warmup_steps == 100 and cfg.trainer.scheduler == "linear"
    assert list(cfg.model.target_modules) == ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]
    assert compose_config("task=boolq", "model=llama2_7b").trainer.lr == 3e-4
    assert compose_config("task=arc_c", "model=llama3_8b").trainer.lr == 1e-4
    assert compose_config("task=obqa", "model=llama3_70b").trainer.lr == 5e-3
    assert compose_config("task=humaneval").model.name == "llama3_8b"
    for task in ["gsm8k", "math", "orca_math", *ORDER]:
        assert compose_config(f"task={task}", "trainer.max_steps=0").task.train_max_steps == 0


def test_commonsense170k_offline_partial_union_and_missing_set(tiny):
    task = CommonsenseTask(name="commonsense170k", train_file="commonsense/commonsense_170k.json", source="local",
                           max_train_samples=24, eval_limit=2, num_beams=1, max_new_tokens=4, train_max_steps=1)
    task.setup(tiny, str(DATA_DIR))
    assert task.num_train_examples() == 24
    assert set(task.train_missing) == {"piqa", "siqa", "hellaswag", "winogrande"}
    assert any("PARTIAL union" in n for n in task.notes) and any("hellaswag" in n for n in task.notes)
    batch = next(task.train_batches(8, 0, 0))
    assert batch["input_ids"].shape[0] == 8 and task.loss(tiny.model, batch).ndim == 0
    m = task.evaluate(tiny.model)
    assert m["hellaswag_missing"] == 1.0 and m["sets_missing"] == 1.0 and m["sets_evaluated"] == 7.0
    assert m["train_sets_missing"] == 4.0 and "hellaswag" not in m
    assert m["avg"] == pytest.approx(np.mean([m[k] for k in ORDER if k != "hellaswag"]))
    assert len(task.predictions) == 14


def test_published_file_first_then_the_union_with_a_note_and_the_provenance_of_what_was_read(tiny, tmp_path):
    import hashlib

    rows = json.loads((DATA_DIR / "commonsense" / "ARC-Easy" / "train.json").read_text())[:30]
    (tmp_path / "commonsense" / "ARC-Easy").mkdir(parents=True)
    (tmp_path / "commonsense" / "ARC-Easy" / "test.json").write_text(json.dumps(rows[:2]))
    union = tmp_path / "commonsense" / "commonsense_union_8.json"
    union.write_text(json.dumps(rows))

    def setup():
        task = CommonsenseTask(name="commonsense170k", train_file="commonsense/commonsense_170k.json", source="local",
                               eval_sets=["arc_e"], train_max_steps=1, eval_limit=1)
        task.setup(tiny, str(tmp_path))
        return task

    task = setup()
    assert task.num_train_examples() == 30 and any("commonsense_union_8.json" in n for n in task.notes)
    assert task.provenance() == {"train_file": "commonsense/commonsense_union_8.json", "rows": 30,
                                 "sha256": hashlib.sha256(union.read_bytes()).hexdigest()}
    published = tmp_path / "commonsense" / "commonsense_170k.json"
    published.write_text(json.dumps(rows[:12]))
    task = setup()
    assert task.num_train_examples() == 12 and not task.notes
    assert task.provenance() == {"train_file": "commonsense/commonsense_170k.json", "rows": 12,
                                 "sha256": hashlib.sha256(published.read_bytes()).hexdigest()}
    joined = CommonsenseTask(name="arc_c+obqa", train_sets=["arc_c", "obqa"], eval_sets=["arc_c"], source="local",
                             train_max_steps=1, eval_limit=1)
    joined.setup(tiny, str(DATA_DIR))
    files = [DATA_DIR / "commonsense" / f / "train.json" for f in ("ARC-Challenge", "openbookqa")]
    assert joined.provenance() == {"train_file": "ARC-Challenge/train.json+openbookqa/train.json",
                                   "rows": joined.num_train_examples(),
                                   "sha256": hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()}


def test_dora_holdout_equals_datasets_train_test_split_and_selection_restores_the_lowest_loss(tiny):
    import datasets

    ds = datasets.Dataset.from_dict({"i": list(range(500))})
    split = ds.train_test_split(test_size=120, shuffle=True, seed=42)  # DoRA finetune.py
    keep, held = dora_holdout(500, 120)
    assert list(held) == split["test"]["i"] and list(keep) == split["train"]["i"]
    task = CommonsenseTask(name="arc_e", source="local", val_set_size=10, eval_every=2, train_max_steps=1,
                           eval_limit=1, max_train_samples=20)
    task.setup(tiny, str(DATA_DIR))
    assert task.num_train_examples() == 20 and len(task.val_data) == 10
    rows = json.loads((DATA_DIR / "commonsense" / "ARC-Easy" / "train.json").read_text())
    held_rows = [rows[i] for i in dora_holdout(len(rows), 10)[1]]
    assert task.val_data.pairs == [train_pair(r, "alpaca") for r in held_rows]
    (selection,) = task.callbacks()
    assert selection.name == "selection" and selection.every == 2 and selection.examples == 10
    # the loss is HF's eval_loss: per batch of 8 the mean token loss, weighted by the batch's rows
    examples = task.val_data.examples
    by_hand = [tiny.model(**{k: v for k, v in collate_right(examples[i:i + 8], task.val_data.pad_id).items()}).loss
               for i in (0, 8)]
    expected = (8 * float(by_hand[0]) + 2 * float(by_hand[1])) / 10
    assert task.validation_loss(tiny.model) == pytest.approx(expected, rel=1e-5)
    assert not CommonsenseTask(name="arc_e").callbacks()  # off by default


def test_training_data_required_only_when_training(tiny):
    with pytest.raises(DataMissingError, match="prepare_data.py commonsense"):
        CommonsenseTask(name="piqa", source="local", train_max_steps=5).setup(tiny, str(DATA_DIR))
    task = CommonsenseTask(name="piqa", source="local", train_max_steps=0, eval_limit=2)
    task.setup(tiny, str(DATA_DIR))
    assert task.num_train_examples() == 0 and len(task.eval_rows["piqa"]) == 2
    with pytest.raises(DataMissingError, match="prepare_data.py commonsense"):
        CommonsenseTask(name="hellaswag", source="local", train_max_steps=0).setup(tiny, str(DATA_DIR))


def test_reference_prompt_style_and_masked_inputs(tiny):
    task = CommonsenseTask(name="arc_e", source="local", prompt_style="reference", train_on_inputs=False,
                           max_train_samples=4, eval_limit=2, num_beams=1, max_new_tokens=2, train_max_steps=1,
                           cutoff_len=2048)
    task.setup(tiny, str(DATA_DIR))
    example = task.train_data.examples[0]
    text = tiny.tokenizer.decode(example["input_ids"])
    assert "request.  \n\n" + " " * 16 + "### Instruction:" in text and text.endswith("<|endoftext|>")
    n_masked = sum(x == IGNORE_INDEX for x in example["labels"])
    assert tiny.tokenizer.decode(example["input_ids"][n_masked:]).startswith("the correct answer is answer")
    assert 0 < task.train_data.trained_token_fraction() < 0.2
    assert task.evaluate(tiny.model)["arc_e_n"] == 2


def test_supervised_tokenisation(tiny):
    tok = tiny.tokenizer  # one token per byte, eos = 256
    ex = tokenize_supervised(tok, "abc", "de", cutoff_len=100, train_on_inputs=False)
    assert ex["input_ids"] == [97, 98, 99, 100, 101, tok.eos_token_id]
    assert ex["labels"] == [IGNORE_INDEX] * 3 + [100, 101, tok.eos_token_id]
    assert tokenize_supervised(tok, "abc", "de", 100, True)["labels"] == ex["input_ids"]
    cut = tokenize_supervised(tok, "abc", "de", cutoff_len=4, train_on_inputs=True)
    assert cut["input_ids"] == [97, 98, 99, 100]  # truncated: no EOS, as LLM-Adapters' tokenize()


# --- generation ----------------------------------------------------------------------------

PROMPTS = ["Hello there, how", "A", "The quick brown fox jumps over", "12 + 30 =", "Once upon a time in a land",
           "zz"]


@pytest.mark.parametrize("beams", [1, 2])
def test_batched_generation_matches_batch_one(tiny, beams):
    side, training = tiny.tokenizer.padding_side, tiny.model.training
    one = generate(tiny.model, tiny.tokenizer, PROMPTS, GenerationSettings(max_new_tokens=12, num_beams=beams,
                                                                            batch_size=1))
    many = generate(tiny.model, tiny.tokenizer, PROMPTS, GenerationSettings(max_new_tokens=12, num_beams=beams,
                                                                             batch_size=4))
    assert one == many and all(len(o) == 1 for o in one)
    assert tiny.tokenizer.padding_side == side and tiny.model.training == training  # both restored


def test_generation_through_a_peft_model(tiny):
    wrapped = _perturbed_lora(tiny.model)
    settings = GenerationSettings(max_new_tokens=10, batch_size=3)
    base = generate(tiny.model, tiny.tokenizer, PROMPTS, settings)
    one = generate(wrapped, tiny.tokenizer, PROMPTS, GenerationSettings(max_new_tokens=10, batch_size=1))
    many = generate(wrapped, tiny.tokenizer, PROMPTS, settings)
    assert one == many and many != base  # the adapter is used, and batching does not change it


def test_new_text_keeps_the_leading_space_sentencepiece_strips():
    from tasks.generation import _new_text

    vocab = {0: "<pad>", 1: "def f():\n", 2: " ", 3: "   return 1"}

    class StripsFirstSpace:  # LLaMA-1/2's decoder drops one leading space of the decoded text
        def batch_decode(self, rows, skip_special_tokens=True):
            texts = ["".join(vocab[int(i)] for i in row if int(i) != 0) for row in rows]
            return [t[1:] if t.startswith(" ") else t for t in texts]

    out = torch.tensor([[0, 1, 2, 3]])
    assert _new_text(StripsFirstSpace(), out[:, :2], out, 2, 1) == ["    return 1"]  # not "   return 1"


def test_stop_strings_and_sampling(tiny):
    texts = generate(tiny.model, tiny.tokenizer, PROMPTS[:2], GenerationSettings(max_new_tokens=20, batch_size=2))
    stop = texts[0][0][3:5]
    cut = generate(tiny.model, tiny.tokenizer, PROMPTS[:2], GenerationSettings(max_new_tokens=20, batch_size=2,
                                                                                stop=(stop,)))
    assert stop not in cut[0][0] and texts[0][0].startswith(cut[0][0])
    sampled = generate(tiny.model, tiny.tokenizer, PROMPTS[:2], GenerationSettings(
        max_new_tokens=6, do_sample=True, temperature=0.8, top_p=0.95, num_return_sequences=3, batch_size=2), seed=0)
    again = generate(tiny.model, tiny.tokenizer, PROMPTS[:2], GenerationSettings(
        max_new_tokens=6, do_sample=True, temperature=0.8, top_p=0.95, num_return_sequences=3, batch_size=1), seed=0)
    assert [len(s) for s in sampled] == [3, 3] and len(again) == 2


# --- math ------------------------------------------------------------------------------------

def test_runner_evaluates_gsm8k_and_math(runs_dir):
    for task in ("gsm8k", "math"):
        record = run(compose_config(f"task={task}", "model=tiny_llama", "method=lora", "trainer.max_steps=0",
                                    "task.eval_limit=2", "task.max_new_tokens=6", runs_dir=runs_dir))
        m = record["metrics"]
        assert m["n"] == 2 and 0.0 <= m["exact_match"] <= 1.0 and m["no_answer"] == 1.0


def test_math_training_data_paths(tiny):
    task = MathReasoningTask(name="gsm8k", source="local", max_train_samples=8, eval_limit=1, train_max_steps=1,
                             cutoff_len=4096)  # bytes: room for the whole solution
    task.setup(tiny, str(DATA_DIR))
    assert task.num_train_examples() == 8 and any("MetaMathQA style" in n for n in task.notes)
    text = tiny.tokenizer.decode(task.train_data.examples[0]["input_ids"])
    assert "### Response:" in text and "The answer is: " in text and "<<" not in text
    with pytest.raises(DataMissingError, match="prepare_data.py metamathqa"):
        MathReasoningTask(name="math", source="local", train_max_steps=1).setup(tiny, str(DATA_DIR))
    with pytest.raises(DataMissingError, match="prepare_data.py orca_math"):
        MathReasoningTask(name="orca_math", source="local", train_max_steps=0).setup(tiny, str(DATA_DIR))


def test_orca_split_is_datasets_shuffle():
    import datasets

    ds = datasets.Dataset.from_dict({"i": list(range(6000))}).shuffle(seed=42)
    train_idx, eval_idx = orca_split(list(range(6000)))
    assert eval_idx == ds["i"][1000:1500]  # first 500 of the last 5000 (fsdp_qlora evaluate.py)
    assert len(train_idx) == 5500 and not set(train_idx) & set(eval_idx)


# --- lm-evaluation-harness protocol -------------------------------------------------------------

def _loglik(model, tokenizer, context: str, continuation: str) -> float:
    ids = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    n_ctx = len(tokenizer(context, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
    return float(sum(logp[i - 1, ids[i]] for i in range(n_ctx, len(ids))))


def test_runner_lm_eval_protocol(runs_dir):
    record = run(compose_config("task=obqa", "model=tiny_llama", "method=lora", "trainer.max_steps=0",
                                "task.eval_protocol=lm_eval", "task.lm_eval_data=local", "task.eval_limit=3",
                                runs_dir=runs_dir))
    m = record["metrics"]
    assert m["obqa_n"] == 3 and 0.0 <= m["obqa"] <= 1.0 and 0.0 <= m["obqa_acc_norm"] <= 1.0


def test_lm_eval_protocol_matches_hand_computed_loglikelihood(tiny):
    from tasks.commonsense.lm_eval import evaluate_commonsense

    rows = json.loads((DATA_DIR / "commonsense" / "ARC-Easy" / "test.json").read_text())[:8]
    wino = json.loads((DATA_DIR / "commonsense" / "winogrande" / "test.json").read_text())[:3]
    model = _perturbed_lora(tiny.model)  # the harness scores the PEFT model in memory
    model.eval()
    m = evaluate_commonsense(model, tiny.tokenizer, {"arc_e": rows, "winogrande": wino}, data="local", batch_size=4)
    assert m["arc_e_n"] == 8 and m["winogrande_n"] == 3 and "arc_e_acc_norm" in m
    correct = correct_norm = 0
    for r in rows:
        doc = from_llm_adapters("arc_e", r)
        scores = [_loglik(model, tiny.tokenizer, f"Question: {doc['question']}\nAnswer:", f" {c}")
                  for c in doc["choices"]["text"]]
        norm = [s / len(c) for s, c in zip(scores, doc["choices"]["text"])]  # harness: len(choice), no delimiter
        gold = doc["choices"]["label"].index(doc["answerKey"])
        correct += int(np.argmax(scores)) == gold
        correct_norm += int(np.argmax(norm)) == gold
    assert m["arc_e"] == pytest.approx(correct / 8) and m["arc_e_acc_norm"] == pytest.approx(correct_norm / 8)


# --- prepare script (hub mocked) ----------------------------------------------------------------

def test_prepare_commonsense_reproduces_the_llm_adapters_files(tmp_path, monkeypatch):
    import datasets

    sys.path.insert(0, str(REPO / "scripts"))
    import prepare_data

    def canonical(key, split):
        folder = DATA_DIR / "commonsense" / SETS[key].folder
        path = folder / ("train.json" if split == SETS[key].hub_train else "test.json")
        if not path.is_file() or key == "hellaswag":
            path = folder / "test.json"
        if not path.is_file():  # hellaswag: a hand-made row
            return [{"activity_label": "Cooking", "ctx": "A man", "endings": ["a", "b", "c", "d"], "label": "1"}]
        rows = [from_llm_adapters(key, r) for r in json.loads(path.read_text())[:50]]
        if key == "boolq":
            rows = [{"question": d["question"], "answer": bool(d["label"]), "passage": ""} for d in rows]
        return rows

    by_hub = {s.hub: k for k, s in SETS.items()}
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name=None, split=None: canonical(by_hub[(path, name)], split))
    prepare_data.main(["commonsense", "--data-dir", str(tmp_path)])
    for key in ("boolq", "arc_c", "obqa", "winogrande", "siqa", "piqa"):
        folder = SETS[key].folder
        written = json.loads((tmp_path / "commonsense" / folder / "test.json").read_text())
        assert written == json.loads((DATA_DIR / "commonsense" / folder / "test.json").read_text())[:50], key
    union = json.loads((tmp_path / "commonsense" / "commonsense_union_8.json").read_text())
    assert len(union) == 7 * 50 + 1  # seven sets of 50 rows and the hand-made hellaswag row
    assert not (tmp_path / "commonsense" / "commonsense_170k.json").exists()  # never under the published name
    published = tmp_path / "published.json"
    published.write_text(json.dumps(union[:3]))
    prepare_data.main(["commonsense", "--data-dir", str(tmp_path), "--union-from", str(published)])
    assert json.loads((tmp_path / "commonsense" / "commonsense_170k.json").read_text()) == union[:3]
    assert len(json.loads((tmp_path / "commonsense" / "commonsense_union_8.json").read_text())) == len(union)
    assert json.loads((tmp_path / "commonsense" / "hellaswag" / "test.json").read_text())[0]["answer"] == "ending2"
