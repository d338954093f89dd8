"""The commonsense task: its data, its loss (the causal-LM loss of SupervisedLMTask) and its metrics.

`CommonsenseTask(name=commonsense170k)` trains on the union and evaluates every set; with a
set's name it trains on that set's training split and evaluates its test file. Offline,
missing evaluation sets are reported (`<set>_missing = 1`, left out of `avg`) and a partial
training union is noted (`train_sets_missing`).

Options, with their sources (NVlabs/DoRA `commonsense_reasoning/finetune.py`,
`commonsense_evaluate.py`, `llama*_DoRA.sh`; AGI-Edgerunners/LLM-Adapters):
- `prompt_style`: see tasks/commonsense/prompts.py (paper presets: reference).
- `val_set_size` / `eval_every` (paper presets: 120 / 80; task default 0 = off): hold out
  that many training rows as `finetune.py` does (`dora_holdout`), score the validation loss
  every `eval_every` steps and restore the candidate with the lowest loss when training ends
  (`load_best_model_at_end`), through loft/train/selection.ModelSelection (mode=min). As in
  HF's Trainer the last step is a candidate only on an `eval_every` boundary (or when there is
  no other). The loss is HF's `eval_loss`: batches of 8 (the Trainer's default eval batch),
  the mean of the batch losses weighted by batch size. DoRA shuffles the held-out rows
  before batching them; we keep the split's order (a small change in the value, not in which
  rows are scored).
- `train_on_inputs=True` (the scripts' default: the loss covers the prompt too), cutoff_len 256.
- Decoding: 4-beam search, 32 new tokens (the scripts' `generate(num_beams=4, ...)` without
  `do_sample`, so their sampling knobs are inert); `num_beams=1` is greedy; we batch with left
  padding (tasks/generation.py) where the scripts run batch 1.
- Answers: decode the new tokens, keep `split("### Response:")[-1]`, first match of the set's
  regex (tasks/commonsense/sets.py). Accuracy = exact equality with `answer`; `<set>_caseless`
  applies the regex to the lower-cased text.
- `eval_protocol=lm_eval`: log-likelihood multiple choice (tasks/commonsense/lm_eval.py).
- `stop_at_answer=true` ends a greedy row once its answer is decided; not exact in one corner
  (a row that writes "### Response:" again is re-read by the `[-1]` split), hence off by default.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from loft.core.errors import ConfigError, DataMissingError
from loft.train.selection import ModelSelection
from tasks.base import ModelBundle
from tasks.commonsense.data import CommonsenseFiles, dora_holdout
from tasks.commonsense.prompts import PROMPT_STYLES, eval_prompt, train_pair
from tasks.commonsense.sets import ORDER, SETS, extract_answer, response_part
from tasks.generation import (GenerationSettings, SupervisedData, SupervisedLMTask, Timer, causal_lm_loss,
                              collate_right, generate)
from tasks.sources import check_source, random_subset, write_predictions

VAL_BATCH_SIZE = 8  # HF TrainingArguments.per_device_eval_batch_size default (DoRA sets none)


def _choice(label: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"task.{label}={value!r}: use one of {', '.join(allowed)}")


class CommonsenseTask(SupervisedLMTask):
    name = "commonsense"

    def __init__(self, name: str = "boolq", train_sets: list[str] | None = None, eval_sets: list[str] | None = None,
                 train_file: str | None = None, source: str = "auto", max_train_samples: int | None = None,
                 eval_limit: int | None = None, cutoff_len: int = 256, train_on_inputs: bool = True,
                 prompt_style: str = "alpaca", eval_protocol: str = "generate", num_beams: int = 4,
                 max_new_tokens: int = 32, eval_batch_size: int = 16, stop_at_answer: bool = False,
                 lm_eval_batch_size: int = 16, lm_eval_data: str = "auto", predictions_file: str | None = None,
                 train_max_steps: int | None = None, subset_seed: int = 0, val_set_size: int = 0,
                 eval_every: int = 80):
        check_source(source)
        _choice("prompt_style", prompt_style, PROMPT_STYLES)
        _choice("eval_protocol", eval_protocol, ("generate", "lm_eval"))
        check_source(lm_eval_data, "task.lm_eval_data")
        if int(val_set_size) < 0 or int(eval_every) < 1:
            raise ConfigError(f"task.val_set_size={val_set_size} / task.eval_every={eval_every}: use a size >= 0 "
                              "(0 = no held-out rows) and a step interval >= 1")
        default = [name] if name in SETS else list(ORDER)
        self.train_sets, self.eval_sets = list(train_sets or default), list(eval_sets or default)
        for k in self.train_sets + self.eval_sets:
            if k not in SETS:
                raise ConfigError(f"unknown commonsense set {k!r}: choose from {', '.join(ORDER)}")
        self.name, self.train_file, self.source = name, train_file, source
        self.max_train_samples, self.eval_limit = max_train_samples, eval_limit
        self.cutoff_len, self.train_on_inputs, self.prompt_style = int(cutoff_len), bool(train_on_inputs), prompt_style
        self.eval_protocol, self.lm_eval_data, self.lm_eval_batch_size = eval_protocol, lm_eval_data, lm_eval_batch_size
        self.generation = GenerationSettings(max_new_tokens=int(max_new_tokens), num_beams=int(num_beams),
                                             batch_size=int(eval_batch_size))
        self.stop_at_answer, self.predictions_file = bool(stop_at_answer), predictions_file
        self.train_max_steps, self.subset_seed = train_max_steps, int(subset_seed)
        self.val_set_size, self.eval_every = int(val_set_size), int(eval_every)
        self.val_data: SupervisedData | None = None
        self.notes: list[str] = []
        self._provenance: dict | None = None

    # --- data ------------------------------------------------------------------------

    def setup(self, bundle: ModelBundle, data_dir: str) -> None:
        self.tokenizer = bundle.tokenizer
        files = CommonsenseFiles(Path(data_dir), self.source, self.eval_limit)
        where = Path(data_dir) / "commonsense"
        training = files.training(self.train_file, self.train_sets)
        if training.note:
            self._note(training.note)
        self.train_missing, rows = training.missing, training.rows
        if self.train_max_steps != 0 and (not rows or (self.train_file is None and self.train_missing)):
            raise DataMissingError(
                f"no training data for task={self.name} (missing: {', '.join(self.train_missing) or self.train_file}) "
                f"under {where}. Fix: `{files.fix}` (online), or evaluate only with trainer.max_steps=0.")
        self._provenance = training.provenance()
        val_rows: list[dict] = []
        if self.val_set_size and rows:
            if self.val_set_size >= len(rows):
                raise ConfigError(f"task.val_set_size={self.val_set_size} leaves no training rows "
                                  f"(of {len(rows)}): use a smaller size or 0")
            keep, held = dora_holdout(len(rows), self.val_set_size)
            rows, val_rows = [rows[i] for i in keep], [rows[i] for i in held]
        rows = random_subset(rows, self.max_train_samples, self.subset_seed)  # same for every method and seed
        self.train_data = self._supervised(rows, f"tokenize {self.name}")
        self.val_data = self._supervised(val_rows, "tokenize validation") if val_rows else None

        self.eval_rows: dict[str, list[dict]] = {}
        self.eval_missing: list[str] = []
        for k in self.eval_sets:
            got = files.read_set(k, "test")
            if got is None:
                self.eval_missing.append(k)
                self._note(f"eval set {k} ({SETS[k].folder}/test.json) not found under {where} and the hub is "
                           f"not reachable: skipped, reported as {k}_missing=1 and left out of avg. "
                           f"Fix: `{files.fix}` (online).")
                continue
            self.eval_rows[k] = got[: self.eval_limit] if self.eval_limit is not None else got
        if not self.eval_rows:
            raise DataMissingError(f"no evaluation set of task={self.name} found under {where}. Fix: `{files.fix}` "
                                   "(online).")

    def _supervised(self, rows: list[dict], desc: str) -> SupervisedData:
        return SupervisedData(self.tokenizer, (train_pair(r, self.prompt_style) for r in rows), self.cutoff_len,
                              self.train_on_inputs, desc=desc)

    def provenance(self) -> dict | None:
        """The training file's name, the rows read from it and its sha256 (None: none read)."""
        return self._provenance

    # --- model selection (DoRA: val_set_size, eval_step, load_best_model_at_end) ------

    def callbacks(self) -> list:
        if self.val_data is None:
            return []
        return [ModelSelection(self.validation_loss, self.eval_every, len(self.val_data), mode="min", final=False)]

    @torch.no_grad()
    def validation_loss(self, model) -> float:
        """HF Trainer's eval_loss on the held-out rows: batch losses weighted by batch size."""
        was_training = model.training
        model.eval()
        try:
            examples, total = self.val_data.examples, 0.0
            for i in range(0, len(examples), VAL_BATCH_SIZE):
                chunk = examples[i:i + VAL_BATCH_SIZE]
                total += float(causal_lm_loss(model, collate_right(chunk, self.val_data.pad_id))) * len(chunk)
            return total / len(examples)
        finally:
            model.train(was_training)

    # --- evaluation ------------------------------------------------------------------

    def evaluate(self, model) -> dict[str, float]:
        if self.eval_protocol == "lm_eval":
            from tasks.commonsense.lm_eval import evaluate_commonsense

            metrics = evaluate_commonsense(model, self.tokenizer, self.eval_rows, data=self.lm_eval_data,
                                           batch_size=self.lm_eval_batch_size)
        else:
            metrics = self._evaluate_generate(model)
        scored = [k for k in self.eval_sets if k in self.eval_rows]
        if len(self.eval_sets) > 1:
            metrics["avg"] = float(np.mean([metrics[k] for k in scored]))
            metrics["sets_evaluated"] = float(len(scored))
            metrics["sets_missing"] = float(len(self.eval_missing))
        for k in self.eval_missing:
            metrics[f"{k}_missing"] = 1.0
        if self.train_missing and self.train_file:
            metrics["train_sets_missing"] = float(len(self.train_missing))  # partial union, see the log
        return metrics

    def _evaluate_generate(self, model) -> dict[str, float]:
        metrics: dict[str, float] = {}
        records = []
        total_n, total_s = 0, 0.0
        for k, rows in self.eval_rows.items():
            prompts = [eval_prompt(r, self.prompt_style) for r in rows]
            done = None
            if self.stop_at_answer and self.generation.num_beams == 1:
                done = lambda text, k=k: extract_answer(k, response_part(text)) != ""  # noqa: E731
            with Timer() as t:
                outputs = generate(model, self.tokenizer, prompts, self.generation, done=done, desc=f"eval {k}")
            total_n, total_s = total_n + len(rows), total_s + t.seconds
            correct = caseless = no_answer = 0
            for r, out in zip(rows, outputs):
                text = response_part(out[0])
                pred = extract_answer(k, text)
                correct += pred == r["answer"]
                caseless += extract_answer(k, text, ignore_case=True) == r["answer"]
                no_answer += pred == ""
                records.append({"set": k, "answer": r["answer"], "pred": pred, "output": out[0]})
            n = len(rows)
            metrics[k] = correct / n
            metrics[f"{k}_caseless"] = caseless / n
            metrics[f"{k}_no_answer"] = no_answer / n
            metrics[f"{k}_n"] = float(n)
        metrics["eval_examples_per_s"] = total_n / total_s if total_s else float("nan")
        self.predictions = records
        write_predictions(self.predictions_file, records)
        return metrics
