"""MGSM (Shi et al. 2022, "Language Models are Multilingual Chain-of-Thought Reasoners"): the
first 250 GSM8K test problems translated into ten languages, plus the English originals.

Used for LOFT's (Han et al.) multilingual out-of-distribution adaptation: the LOFT summaries
name the benchmark family but not the dataset, so MGSM is this runner's choice. Train on
English math exactly as `task=gsm8k` does (MetaMathQA, offline GSM8K's train split in
MetaMathQA style), evaluate on every language.

- Data: `<data_dir>/mgsm/mgsm_<lang>.tsv` (question TAB numeric answer, no header; from
  google-research/url-nlp, see ../shared/data/SOURCES.md). `task.eval_limit` = the first N
  problems of each language (the same problems in every language).
- `eval_protocol=generate` (default): the `gsm8k` benchmark of tasks/math/benchmarks.py unchanged
  (MetaMath prompt in English around the translated question, greedy chain of thought,
  MetaMath answer extraction, `exact_match_flexible` = last number).
- `eval_protocol=lm_eval`: lm-evaluation-harness's `mgsm_direct_<lang>` (native-language
  "Question:/Answer:" prompt, the answer number directly, zero-shot); offline the local TSVs
  replace the hub dataset (juletxara/mgsm) as the commonsense sets do (tasks/lm_eval_protocol.py).
  `exact_match_<lang>` is the harness' strict filter (remove_whitespace), `exact_match_flexible_<lang>`
  its flexible-extract filter.
- Metrics: `exact_match_<lang>` (and `_flexible_`) per language, `exact_match` over all
  evaluated problems, `exact_match_non_english` the mean over the non-English languages.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from tasks.base import ConfigError, DataMissingError
from tasks.math.task import MathReasoningTask
from tasks.sources import check_source

LANGUAGES = ("en", "bn", "de", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")
MGSM_FIX = ("MGSM's TSVs (google-research/url-nlp, mgsm/mgsm_<lang>.tsv) belong in {folder}; "
            "see ../shared/data/SOURCES.md")


def read_mgsm(path: Path, lang: str) -> list[dict]:
    """Rows as GSM8K test rows (`answer` ends in '#### N', so the GSM8K scorer applies), plus
    the harness' fields (`answer_number`; `answer` None marks a test doc there)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = [r for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r]
    out = []
    for i, row in enumerate(rows):
        if len(row) != 2:
            raise ValueError(f"{path}, line {i + 1}: expected question TAB answer, got {len(row)} fields")
        number = float(row[1].replace(",", ""))
        out.append({"question": row[0], "answer": f"#### {row[1]}", "answer_number": number, "lang": lang})
    return out


class MGSMTask(MathReasoningTask):
    def __init__(self, name: str = "mgsm", languages: list[str] | None = None, eval_protocol: str = "generate",
                 lm_eval_data: str = "auto", lm_eval_batch_size: int = 16, eval_limit: int | None = None,
                 benchmark: str | None = None, eval_file: str | None = None, **kwargs):
        if benchmark not in (None, "gsm8k") or eval_file is not None:
            raise ConfigError("task=mgsm always uses the GSM8K protocol on <data_dir>/mgsm/: leave task.benchmark "
                              "and task.eval_file null")
        # eval_limit counts per language (the same first N problems in each), not overall
        super().__init__(name=name, benchmark="gsm8k", eval_limit=None, **kwargs)
        self.limit_per_language = eval_limit
        self.languages = list(languages or LANGUAGES)
        unknown = sorted(set(self.languages) - set(LANGUAGES))
        if unknown:
            raise ConfigError(f"task.languages: {unknown} are not MGSM languages ({', '.join(LANGUAGES)})")
        if eval_protocol not in ("generate", "lm_eval"):
            raise ConfigError(f"task.eval_protocol={eval_protocol!r}: use generate or lm_eval")
        self.lm_eval_data = check_source(lm_eval_data, key="task.lm_eval_data")
        self.eval_protocol, self.lm_eval_batch_size = eval_protocol, lm_eval_batch_size

    def _eval_rows(self, data_dir: Path) -> list[dict]:
        folder = data_dir / "mgsm"
        rows = []
        for lang in self.languages:
            path = folder / f"mgsm_{lang}.tsv"
            if not path.is_file():
                raise DataMissingError(f"{path} not found. Fix: " + MGSM_FIX.format(folder=folder))
            rows.extend(read_mgsm(path, lang)[: self.limit_per_language])
        return rows

    def evaluate(self, model) -> dict[str, float]:
        if self.eval_protocol == "lm_eval":
            return self._evaluate_harness(model)
        metrics = super().evaluate(model)
        per_lang: dict[str, list[dict]] = {}
        for row, pred in zip(self.eval_data, self.predictions):
            pred["lang"] = row["lang"]
            per_lang.setdefault(row["lang"], []).append(pred)
        for lang, preds in per_lang.items():
            for key in ("exact_match", "exact_match_flexible"):
                metrics[f"{key}_{lang}"] = float(np.mean([p[key] for p in preds]))
        return self._with_non_english_mean(metrics)

    def _evaluate_harness(self, model) -> dict[str, float]:
        from tasks.lm_eval_protocol import harness_config, run_harness, use_hub

        hub = use_hub(self.lm_eval_data)
        by_lang = {lang: [r for r in self.eval_data if r["lang"] == lang] for lang in self.languages}
        specs = [f"mgsm_direct_{lang}" if hub else harness_config(
            f"mgsm_direct_{lang}", [{"question": r["question"], "answer": None, "answer_number": r["answer_number"],
                                     "equation_solution": None} for r in rows])
            for lang, rows in by_lang.items()]
        out = run_harness(model, self.tokenizer, specs, max(map(len, by_lang.values())) if hub else None,
                          self.lm_eval_batch_size)
        metrics: dict[str, float] = {}
        for lang in self.languages:
            res = out["results"][f"mgsm_direct_{lang}"]
            metrics[f"exact_match_{lang}"] = float(res["exact_match,remove_whitespace"])
            metrics[f"exact_match_flexible_{lang}"] = float(res["exact_match,flexible-extract"])
        counts = [len(by_lang[lang]) for lang in self.languages]
        for key in ("exact_match", "exact_match_flexible"):
            metrics[key] = float(np.average([metrics[f"{key}_{lang}"] for lang in self.languages], weights=counts))
        metrics["n"] = float(sum(counts))
        return self._with_non_english_mean(metrics)

    def _with_non_english_mean(self, metrics: dict[str, float]) -> dict[str, float]:
        others = [metrics[f"exact_match_{lang}"] for lang in self.languages if lang != "en"]
        if others:
            metrics["exact_match_non_english"] = float(np.mean(others))
        return metrics
