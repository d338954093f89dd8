"""`MathReasoningTask`: math word problems (`gsm8k`, `math` = MATH-500, `orca_math`), trained
on (prompt, target) pairs and scored by exact match after each benchmark's final-answer
normalisation. What differs between benchmarks (files, prompts, stop strings, scorer) is a
`MathBenchmark` in tasks/math/benchmarks.py; this class only reads and evaluates.

- Training rows: the local `task.train_file`, else the hub copy (`source=auto|hub`), else the
  benchmark's offline stand-in (gsm8k: GSM8K's train split, noted in the record), else none when
  the run only evaluates (`train_max_steps=0`); `max_train_samples` draws a seeded subset.
- Evaluation rows: the local `task.eval_file`, else the hub copy; `eval_limit` keeps the first N.
- `evaluate`: greedy generation, the benchmark's per-row scores averaged, plus `n` and
  `eval_examples_per_s`; rows and outputs go to `task.predictions_file` when set.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.base import ConfigError, DataMissingError, ModelBundle
from tasks.data_files import check_rows
from tasks.generation import GenerationSettings, SupervisedData, SupervisedLMTask, Timer, generate
from tasks.math.benchmarks import BENCHMARKS, Pair
from tasks.math.data import prepare_command, read_json_or_jsonl
from tasks.sources import HubProbe, hub_or_missing, local_or_hub, random_subset, write_predictions


class MathReasoningTask(SupervisedLMTask):
    name = "math"

    def __init__(self, name: str = "gsm8k", benchmark: str | None = None, source: str = "auto",
                 train_file: str | None = None, eval_file: str | None = None, train_types: list[str] | None = None,
                 max_train_samples: int | None = None, eval_limit: int | None = None, cutoff_len: int = 512,
                 train_on_inputs: bool = False, max_new_tokens: int = 512, eval_batch_size: int = 16,
                 stop: list[str] | None = None, predictions_file: str | None = None,
                 train_max_steps: int | None = None, subset_seed: int = 0):
        benchmark = benchmark or name
        if benchmark not in BENCHMARKS:
            raise ConfigError(f"task.benchmark={benchmark!r}: use one of {', '.join(BENCHMARKS)}")
        self.spec = BENCHMARKS[benchmark]
        if train_types and not self.spec.typed:
            raise ConfigError(f"task.train_types: {benchmark}'s training rows have no type; set task.train_types=null")
        self.name, self.benchmark, self.hub = name, benchmark, HubProbe(source)
        self.source = source
        self.train_file, self.eval_file = train_file or self.spec.train_file, eval_file or self.spec.eval_file
        self.train_types = list(train_types) if train_types else None
        self.max_train_samples, self.eval_limit = max_train_samples, eval_limit
        self.cutoff_len, self.train_on_inputs = int(cutoff_len), bool(train_on_inputs)
        self.generation = GenerationSettings(max_new_tokens=int(max_new_tokens), batch_size=int(eval_batch_size),
                                             stop=tuple(self.spec.stop if stop is None else stop))
        self.predictions_file, self.train_max_steps, self.subset_seed = predictions_file, train_max_steps, subset_seed
        self.notes: list[str] = []

    # --- data ------------------------------------------------------------------------

    @staticmethod
    def _read(path: Path, data_dir: Path, fix: str, **first) -> list[dict]:
        """Rows of a local file, refused when cut short (`first`, `first_key`: see check_rows)."""
        rows = read_json_or_jsonl(path, fix)
        check_rows(path, data_dir, len(rows), fix, **first)
        return rows

    def _train_pairs(self, data_dir: Path) -> list[Pair]:
        spec, path = self.spec, data_dir / self.train_file
        fix = prepare_command(spec.train_prepare, data_dir)
        if self.source != "hub" and path.is_file():  # e.g. train_file=gsm8k/train.jsonl is checked too
            rows = self._read(path, data_dir, fix)  # max_train_samples draws a random subset: every row counts
        else:
            try:
                rows = hub_or_missing(spec.hub_train, path, self.hub,
                                      f"`{fix}` (online), or evaluate only with trainer.max_steps=0.")
            except DataMissingError:
                if spec.offline_train and (data_dir / spec.offline_train).is_file():
                    return self._offline_pairs(data_dir, path, fix)
                if self.train_max_steps == 0:
                    return []
                raise
        if self.train_types:
            rows = [r for r in rows if r.get("type") in self.train_types]
        return [spec.train_pair(r) for r in rows]

    def _offline_pairs(self, data_dir: Path, missing: Path, fix: str) -> list[Pair]:
        spec = self.spec
        self._note(f"{missing} not found: training on {spec.offline_train} rewritten in MetaMathQA style "
                   f"(not MetaMathQA). Fix: `{fix}` (online).")
        rows = self._read(data_dir / spec.offline_train, data_dir, prepare_command(spec.offline_prepare, data_dir))
        return [spec.offline_pair(r) for r in rows]

    def _eval_rows(self, data_dir: Path) -> list[dict]:
        path, fix = data_dir / self.eval_file, prepare_command(self.spec.eval_prepare, data_dir)
        return local_or_hub(path, self.hub, lambda p: self._read(p, data_dir, fix, first=self.eval_limit,
                                                                    first_key="task.eval_limit"),
                            self.spec.hub_eval, f"`{fix}` (online).")

    def setup(self, bundle: ModelBundle, data_dir: str) -> None:
        self.tokenizer = bundle.tokenizer
        data_dir = Path(data_dir)
        pairs = random_subset(self._train_pairs(data_dir), self.max_train_samples, self.subset_seed)
        self.train_data = SupervisedData(self.tokenizer, pairs, self.cutoff_len, self.train_on_inputs,
                                         desc=f"tokenize {self.name}")
        self.eval_data = self._eval_rows(data_dir)[: self.eval_limit]

    # --- evaluation ------------------------------------------------------------------

    def eval_prompt(self, row: dict) -> str:
        return self.spec.eval_prompt(row)

    def score(self, row: dict, output: str) -> dict[str, bool]:
        """Per-metric correctness of one output (tasks/math/benchmarks.py)."""
        return self.spec.score(row, output)

    def evaluate(self, model) -> dict[str, float]:
        prompts = [self.eval_prompt(r) for r in self.eval_data]
        with Timer() as t:
            outputs = generate(model, self.tokenizer, prompts, self.generation, desc=f"eval {self.name}")
        scores = [self.score(r, o[0]) for r, o in zip(self.eval_data, outputs)]
        metrics = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
        metrics["n"] = float(len(scores))
        metrics["eval_examples_per_s"] = len(scores) / t.seconds if t.seconds else float("nan")
        self.predictions = [{"prompt": p, "output": o[0], **s} for p, o, s in zip(prompts, outputs, scores)]
        write_predictions(self.predictions_file, self.predictions)
        return metrics
