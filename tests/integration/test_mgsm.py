"""MGSM: real rows of every language score with the GSM8K extraction, the per-language and
non-English metrics, and the lm-eval mgsm_direct path on a tiny model (offline, local TSVs)."""
from __future__ import annotations

import math

import pytest
import torch

import tasks.math.task as math_task
from loft.models import load_model
from tasks.math.mgsm import LANGUAGES, MGSMTask, read_mgsm
from tests.conftest import DATA_DIR, compose_config


@pytest.mark.parametrize("lang", LANGUAGES)
def test_gold_answers_score_100_percent_on_real_rows(lang):
    rows = read_mgsm(DATA_DIR / "mgsm" / f"mgsm_{lang}.tsv", lang)
    assert len(rows) == 250
    task = MGSMTask(languages=[lang])
    raw = [line.split("\t")[1].strip() for line in (DATA_DIR / "mgsm" / f"mgsm_{lang}.tsv").read_text("utf-8").splitlines()]
    for row, answer in zip(rows, raw):  # the TSV's own answer text, thousands separators included
        score = task.score(row, f"Step by step ... so the total is {answer}.\nThe answer is: {answer}")
        assert score["exact_match"] and score["exact_match_flexible"], (row["question"][:60], answer)
        assert not task.score(row, f"The answer is: {row['answer_number'] + 1:g}")["exact_match"]


def test_per_language_metrics_and_non_english_mean(monkeypatch):
    """A fake model that answers right in English and German, wrong elsewhere, on 3 problems each."""
    task = MGSMTask(languages=["en", "de", "zh"], eval_limit=3, train_max_steps=0)
    task.setup(load_model(compose_config("model=tiny_llama").model), str(DATA_DIR))
    assert [r["lang"] for r in task.eval_data] == ["en"] * 3 + ["de"] * 3 + ["zh"] * 3
    english = read_mgsm(DATA_DIR / "mgsm" / "mgsm_en.tsv", "en")[:3]
    assert [r["answer_number"] for r in task.eval_data[6:]] == [r["answer_number"] for r in english]  # same problems

    def fake_generate(model, tokenizer, prompts, settings, desc=""):
        out = []
        for prompt, row in zip(prompts, task.eval_data):
            right = row["lang"] in ("en", "de")
            out.append([f"The answer is: {row['answer_number'] + (0 if right else 1):g}"])
        return out

    monkeypatch.setattr(math_task, "generate", fake_generate)
    metrics = task.evaluate(None)
    assert metrics["exact_match_en"] == metrics["exact_match_de"] == 1.0 and metrics["exact_match_zh"] == 0.0
    assert metrics["exact_match_non_english"] == pytest.approx(0.5)
    assert metrics["exact_match"] == pytest.approx(2 / 3) and metrics["n"] == 9


@pytest.mark.slow  # ~1 min on a busy 2-core CPU: the random model generates up to 256 tokens per problem
def test_lm_eval_mgsm_direct_offline_on_a_tiny_model():
    torch.manual_seed(0)
    bundle = load_model(compose_config("model=tiny_llama").model)
    task = MGSMTask(languages=["en", "de"], eval_limit=2, train_max_steps=0, eval_protocol="lm_eval",
                    lm_eval_data="local", lm_eval_batch_size=2)
    task.setup(bundle, str(DATA_DIR))
    metrics = task.evaluate(bundle.model)
    for lang in ("en", "de"):
        assert 0.0 <= metrics[f"exact_match_{lang}"] <= 1.0 and 0.0 <= metrics[f"exact_match_flexible_{lang}"] <= 1.0
    assert metrics["n"] == 4 and math.isfinite(metrics["exact_match_non_english"])


def test_every_language_has_a_task_config():
    for lang in LANGUAGES:
        cfg = compose_config(f"task=mgsm_{lang}", "model=smollm2_135m")
        assert cfg.task.name == f"mgsm_{lang}" and list(cfg.task.languages) == [lang]
    assert compose_config("task=mgsm").task.languages is None
