"""Math word problems: `gsm8k`, `math` (MATH-500) and `orca_math`, exact match after the
usual final-answer normalisation.

gsm8k / math: MetaMathQA-style training, MetaMath evaluation.
- Training data: MetaMathQA (Yu et al. 2024; hub `meta-math/MetaMathQA`, `query`/`response`;
  `scripts/prepare_data.py metamathqa` writes `<data_dir>/metamathqa/MetaMathQA-395K.json`),
  all 395k rows by default as MetaMath trains one model for both benchmarks
  (`task.train_types=[GSM_AnsAug, ...]` picks types). Formatting as PiSSA's `train.py`
  (GraphPKU/PiSSA, the LoRA-family MetaMathQA recipe): prompt = Alpaca header +
  "### Instruction:\\n{query}\\n\\n### Response:", target = response + "\\n" + EOS, prompt
  tokens masked (-100). Offline fallback for gsm8k only: GSM8K's own train split
  (`gsm8k/train.jsonl`) rewritten in MetaMathQA's GSM style (calculator annotations <<..>>
  dropped, "\\nThe answer is: N" appended), announced in the log.
- Evaluation (MetaMath `eval_gsm8k.py`, `eval_math.py`): prompt = the same header +
  "### Response: Let's think step by step.", greedy, max 512 new tokens (GSM8K) / 2048
  (MATH), stop strings Question/USER/ASSISTANT/Instruction/Response (cut before them, as
  vLLM's `stop=` does).
  GSM8K `exact_match`: text after the last "The answer is: ", first number by
  `[\\-+]?\\d*[\\.,/]?\\d+` (commas dropped, fractions evaluated), rounded, == the number after
  "####". `exact_match_flexible`: the last number anywhere in the output (lm-eval's
  "flexible-extract"), for models that never learned the answer line.
  MATH `exact_match`: text after the last "The answer is: ", up to ".\\n", trailing "." cut,
  compared with the gold `\\boxed{}` content by Hendrycks et al.'s `is_equiv` (string
  normalisation: spaces, \\left/\\right, dfrac/tfrac, units, degrees, percents, 0.5 ->
  \\frac{1}{2}, a/b -> \\frac{a}{b}, ...). `exact_match_boxed`: the last \\boxed{} of the
  output (else the answer line) under the same `is_equiv`.
- Data: `gsm8k/test.jsonl` (1319, question/answer) and `math500/test.jsonl` (500; either
  MetaMath's question/answer rows or the hub's `HuggingFaceH4/MATH-500` problem/solution/answer).

orca_math: LoFT App. F.2 (Answer.AI's FSDP-QDoRA Orca-Math recipe, AnswerDotAI/fsdp_qlora).
- Data: `microsoft/orca-math-word-problems-200k`, shuffled with seed 42 (datasets'
  `shuffle`); the 500 held-out problems are the first 500 of the last 5000 rows (what
  fsdp_qlora's `evaluate.py` scores), training uses every other row (~199.5k; the paper
  says 200k). `scripts/prepare_data.py orca_math` writes `orca_math/{train,test}.jsonl`.
- Prompt "###Question:\\n{question}\\n###Answer:\\n" (+ answer + EOS), prompt masked,
  context 256 (App. F.2's shortened window; longer examples are truncated).
- Metric: Answer.AI's `extract_last_number_or_ratio` (last `[$€£]?\\d+(\\.\\d+)?(:\\d+(\\.\\d+)?)?`)
  of the greedy output == that of the reference answer, as strings. Up to 1024 new tokens.
"""
from __future__ import annotations

import json
import re
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from tasks.base import DataMissingError, ModelBundle, Task
from tasks.data_files import check_rows, read_json, read_jsonl
from tasks.generation import GenerationSettings, SupervisedData, SupervisedLMTask, Timer, generate

# --- prompts ---------------------------------------------------------------------------

METAMATH_PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                   "the request.\n\n### Instruction:\n{instruction}\n\n### Response:")
METAMATH_EVAL_SUFFIX = " Let's think step by step."
METAMATH_STOP = ("Question:", "Question", "USER:", "USER", "ASSISTANT:", "ASSISTANT", "Instruction:", "Instruction",
                 "Response:", "Response")
ORCA_PROMPT = "###Question:\n{question}\n###Answer:\n"


# --- GSM8K -----------------------------------------------------------------------------

def gsm8k_gold(answer: str) -> float:
    """The number after '####' of a GSM8K answer (commas dropped)."""
    return float(answer.split("####")[-1].strip().replace(",", ""))


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        pass
    try:
        import unicodedata

        unicodedata.numeric(s)
        return True
    except (TypeError, ValueError):
        return False


def extract_metamath_number(completion: str) -> int | None:
    """MetaMath eval_gsm8k.py `extract_answer_number`: None when there is no answer line."""
    parts = completion.split("The answer is: ")
    if len(parts) < 2:
        return None
    match = re.search(r"[\-+]?\d*[\.,/]?\d+", parts[-1].strip())
    if not match:
        return None
    text = match.group()
    if "/" in text:
        numerator, denominator = text.split("/")[0], text.split("/")[1]
        if not (_is_number(denominator) and _is_number(numerator)):
            return None
        if denominator == "0":
            return round(float(numerator.replace(",", "")))
        frac = Fraction(text.replace(",", ""))
        return round(float(frac.numerator / frac.denominator))
    value = float(text.replace(",", ""))
    return None if value == float("inf") else round(value)


_NUMBER = re.compile(r"-?[$0-9.,]{2,}|-?[0-9]+")  # lm-eval gsm8k "flexible-extract"


def extract_last_number(completion: str) -> float | None:
    """The last number of the text ($ and thousands separators dropped), or None."""
    for token in reversed(_NUMBER.findall(completion)):
        cleaned = token.replace("$", "").replace(",", "").rstrip(".")
        try:
            return float(cleaned)
        except ValueError:
            continue
    return None


def gsm8k_to_metamath(answer: str) -> str:
    """A GSM8K train answer in MetaMathQA's GSM_* style (no calculator annotations, answer line)."""
    body = re.sub(r"<<[^>]*>>", "", answer)
    final = answer.split("####")[-1].strip().replace(",", "")
    return f"{body}\nThe answer is: {final}"


# --- MATH (Hendrycks et al. 2021 normalisation, as MetaMath's util.is_equiv) -----------

def last_boxed_only_string(string: str) -> str | None:
    idx = string.rfind("\\boxed")
    if "\\boxed " in string:
        return "\\boxed " + string.split("\\boxed ")[-1].split("$")[0]
    if idx < 0:
        idx = string.rfind("\\fbox")
        if idx < 0:
            return None
    depth, i = 0, idx
    while i < len(string):
        if string[i] == "{":
            depth += 1
        elif string[i] == "}":
            depth -= 1
            if depth == 0:
                return string[idx:i + 1]
        i += 1
    return None


def remove_boxed(s: str | None) -> str | None:
    if s is None:
        return None
    if s.startswith("\\boxed "):
        return s[len("\\boxed "):]
    for left in ("\\boxed{", "\\fbox{"):
        if s.startswith(left) and s.endswith("}"):
            return s[len(left):-1]
    return None


def _fix_fracs(string: str) -> str:
    # Like the reference, a bare "\\frac" at the very end raises (IndexError) and is_equiv
    # then falls back to plain string equality.
    substrs = string.split("\\frac")
    new_str = substrs[0]
    for substr in substrs[1:]:
        new_str += "\\frac"
        if substr[0] == "{":
            new_str += substr
            continue
        if len(substr) < 2:
            return string
        a, b = substr[0], substr[1]
        if b != "{":
            new_str += "{" + a + "}{" + b + "}" + substr[2:]
        else:
            new_str += "{" + a + "}" + b + substr[2:]
    return new_str


def _fix_a_slash_b(string: str) -> str:
    # int() errors propagate on purpose (the reference only catches its assertion), so
    # e.g. "\\pi/2" makes is_equiv compare the raw strings.
    if len(string.split("/")) != 2:
        return string
    a, b = string.split("/")
    a_int, b_int = int(a), int(b)
    if string != f"{a_int}/{b_int}":
        return string
    return "\\frac{" + str(a_int) + "}{" + str(b_int) + "}"


def _remove_right_units(string: str) -> str:
    if "\\text{ " in string:  # only ever units in MATH answers
        splits = string.split("\\text{ ")
        if len(splits) != 2:
            raise ValueError("ambiguous units")  # the reference asserts: raw comparison follows
        return splits[0]
    return string


def _fix_sqrt(string: str) -> str:
    if "\\sqrt" not in string:
        return string
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        if split[0] != "{":
            new_string += "\\sqrt{" + split[0] + "}" + split[1:]
        else:
            new_string += "\\sqrt" + split
    return new_string


def strip_string(string: str) -> str:
    """Hendrycks et al.'s MATH answer normalisation (MetaMath `util.strip_string`)."""
    string = string.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    string = string.replace("tfrac", "frac").replace("dfrac", "frac")
    string = string.replace("\\left", "").replace("\\right", "")
    string = string.replace("^{\\circ}", "").replace("^\\circ", "")
    string = string.replace("\\$", "")
    string = _remove_right_units(string)
    string = string.replace("\\%", "")  # the reference removes "\\%" only, not a bare "%"
    string = string.replace(" .", " 0.").replace("{.", "{0.")
    if not string:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2 and len(string.split("=")[0]) <= 2:
        string = string.split("=")[1]  # "k = 3" -> "3"
    string = _fix_sqrt(string)
    string = string.replace(" ", "")
    string = _fix_fracs(string)
    if string == "0.5":
        string = "\\frac{1}{2}"
    return _fix_a_slash_b(string)


def is_equiv(str1: str | None, str2: str | None) -> bool:
    if str1 is None and str2 is None:
        return True
    if str1 is None or str2 is None:
        return False
    try:
        return strip_string(str1) == strip_string(str2)
    except Exception:
        return str1 == str2


def extract_metamath_math(completion: str) -> str | None:
    """MetaMath eval_math.py `process_results`: the answer line's text, or None."""
    parts = completion.split("The answer is: ")
    if len(parts) < 2:
        return None
    ans = parts[-1].split(".\n")[0].strip()
    if ans.endswith("."):
        ans = ans[:-1]
    return ans.strip()


def extract_boxed_or_line(completion: str) -> str | None:
    boxed = remove_boxed(last_boxed_only_string(completion))
    return boxed if boxed is not None else extract_metamath_math(completion)


def math_gold(row: dict) -> str:
    """Gold MATH answer: the hub's `answer`, else the last \\boxed{} of the solution, else
    MetaMath's answer line."""
    if "problem" in row and row.get("answer"):
        return row["answer"]
    solution = row.get("solution") or row.get("answer") or ""
    boxed = remove_boxed(last_boxed_only_string(solution))
    return boxed if boxed is not None else (extract_metamath_math(solution) or "")


# --- Orca-Math (Answer.AI fsdp_qlora eval_utils.py) ------------------------------------

_ORCA_NUMBER = re.compile(r"[\$€£]?\d+(?:\.\d+)?(?:\:\d+(?:\.\d+)?)?")


def extract_last_number_or_ratio(s: str) -> str | None:
    found = _ORCA_NUMBER.findall(s)
    return found[-1] if found else None


# --- data ------------------------------------------------------------------------------

def read_json_or_jsonl(path: Path, fix: str) -> list[dict]:
    return read_jsonl(path, fix) if path.suffix == ".jsonl" else read_json(path, fix)


def orca_split(rows: list, seed: int = 42, tail: int = 5000, n_eval: int = 500) -> tuple[list[int], list[int]]:
    """fsdp_qlora: shuffle(seed=42), evaluate the first 500 of the last 5000 rows. The
    permutation is datasets' `Dataset.shuffle(seed)`: numpy `default_rng(seed).permutation`."""
    perm = np.random.default_rng(seed).permutation(len(rows))
    start = max(len(rows) - tail, 0)
    eval_idx = perm[start:start + n_eval].tolist()
    held = set(eval_idx)
    return [i for i in perm.tolist() if i not in held], eval_idx


BENCHMARKS = ("gsm8k", "math", "orca_math")
FIXES = {"metamathqa": "python scripts/prepare_data.py metamathqa --data-dir {data_dir}",
         "gsm8k": "python scripts/prepare_data.py gsm8k --data-dir {data_dir}",
         "math": "python scripts/prepare_data.py math500 --data-dir {data_dir}",
         "orca_math": "python scripts/prepare_data.py orca_math --data-dir {data_dir}"}


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
            raise ValueError(f"task.benchmark={benchmark!r}: use one of {', '.join(BENCHMARKS)}")
        if source not in ("auto", "local", "hub"):
            raise ValueError(f"task.source={source!r}: use auto, local or hub")
        self.name, self.benchmark, self.source = name, benchmark, source
        defaults = {"gsm8k": ("metamathqa/MetaMathQA-395K.json", "gsm8k/test.jsonl"),
                    "math": ("metamathqa/MetaMathQA-395K.json", "math500/test.jsonl"),
                    "orca_math": ("orca_math/train.jsonl", "orca_math/test.jsonl")}[benchmark]
        self.train_file, self.eval_file = train_file or defaults[0], eval_file or defaults[1]
        self.train_types = list(train_types) if train_types else None
        self.max_train_samples, self.eval_limit = max_train_samples, eval_limit
        self.cutoff_len, self.train_on_inputs = int(cutoff_len), bool(train_on_inputs)
        default_stop = METAMATH_STOP if benchmark != "orca_math" else ()
        self.generation = GenerationSettings(max_new_tokens=int(max_new_tokens), batch_size=int(eval_batch_size),
                                             stop=tuple(default_stop if stop is None else stop))
        self.predictions_file, self.train_max_steps, self.subset_seed = predictions_file, train_max_steps, subset_seed
        self.notes: list[str] = []

    def _hub_ok(self) -> bool:
        if self.source == "local":
            return False
        from loft.core.hub import hub_reachable

        return hub_reachable()

    # --- data ------------------------------------------------------------------------

    def _train_rows(self, data_dir: Path) -> list[tuple[str, str]] | None:
        path = data_dir / self.train_file
        local = self.source != "hub" and path.is_file()
        fix = FIXES["orca_math" if self.benchmark == "orca_math" else "metamathqa"].format(data_dir=data_dir)
        if self.benchmark == "orca_math":
            if local:
                rows = read_jsonl(path, fix)
                check_rows(path, data_dir, len(rows), fix)  # the count prepare_data.py stored, if any
            elif self._hub_ok():
                rows = load_orca_hub()[0]
            else:
                return None
            return [(ORCA_PROMPT.format(question=r["question"]), r["answer"]) for r in rows]
        if local:
            rows = read_json_or_jsonl(path, fix)
            check_rows(path, data_dir, len(rows), fix)  # e.g. train_file=gsm8k/train.jsonl
        elif self._hub_ok():
            import datasets

            rows = list(datasets.load_dataset("meta-math/MetaMathQA", split="train"))
        elif self.benchmark == "gsm8k" and (data_dir / "gsm8k/train.jsonl").is_file():
            self._note(f"{path} not found: training on GSM8K's train split rewritten in MetaMathQA style "
                       f"(not MetaMathQA). Fix: `{FIXES['metamathqa'].format(data_dir=data_dir)}` (online).")
            gsm8k, fix = data_dir / "gsm8k/train.jsonl", FIXES["gsm8k"].format(data_dir=data_dir)
            rows = read_jsonl(gsm8k, fix)
            check_rows(gsm8k, data_dir, len(rows), fix)  # task.max_train_samples draws a random subset
            return [(METAMATH_PROMPT.format(instruction=r["question"]), gsm8k_to_metamath(r["answer"]) + "\n")
                    for r in rows]
        else:
            return None
        if self.train_types:
            rows = [r for r in rows if r.get("type") in self.train_types]
        return [(METAMATH_PROMPT.format(instruction=r["query"]), r["response"] + "\n") for r in rows]

    def _eval_rows(self, data_dir: Path) -> list[dict] | None:
        path = data_dir / self.eval_file
        if self.source != "hub" and path.is_file():
            fix = FIXES[self.benchmark].format(data_dir=data_dir)
            rows = read_json_or_jsonl(path, fix)
            check_rows(path, data_dir, len(rows), fix, first=self.eval_limit, first_key="task.eval_limit")
            return rows
        if not self._hub_ok():
            return None
        import datasets

        if self.benchmark == "gsm8k":
            return list(datasets.load_dataset("openai/gsm8k", "main", split="test"))
        if self.benchmark == "math":
            return list(datasets.load_dataset("HuggingFaceH4/MATH-500", split="test"))
        return load_orca_hub()[1]

    def setup(self, bundle: ModelBundle, data_dir: str) -> None:
        self.tokenizer = bundle.tokenizer
        data_dir = Path(data_dir)
        pairs = self._train_rows(data_dir)
        fix = FIXES["metamathqa" if self.benchmark != "orca_math" else "orca_math"].format(data_dir=data_dir)
        if pairs is None:
            if self.train_max_steps != 0:
                raise DataMissingError(f"{data_dir / self.train_file} not found (hub unreachable or source=local). "
                                       f"Fix: `{fix}` (online), or evaluate only with trainer.max_steps=0.")
            pairs = []
        if self.max_train_samples is not None and len(pairs) > self.max_train_samples:
            keep = np.sort(np.random.default_rng(self.subset_seed).permutation(len(pairs))[: self.max_train_samples])
            pairs = [pairs[i] for i in keep]
        self.train_data = SupervisedData(self.tokenizer, pairs, self.cutoff_len, self.train_on_inputs,
                                               desc=f"tokenize {self.name}")
        rows = self._eval_rows(data_dir)
        if rows is None:
            raise DataMissingError(f"{data_dir / self.eval_file} not found (hub unreachable or source=local). "
                                   f"Fix: `{FIXES[self.benchmark].format(data_dir=data_dir)}` (online).")
        self.eval_data = rows[: self.eval_limit] if self.eval_limit is not None else rows

    # --- evaluation ------------------------------------------------------------------

    def eval_prompt(self, row: dict) -> str:
        if self.benchmark == "orca_math":
            return ORCA_PROMPT.format(question=row["question"])
        question = row.get("question") or row.get("problem") or row.get("query")
        return METAMATH_PROMPT.format(instruction=question) + METAMATH_EVAL_SUFFIX

    def score(self, row: dict, output: str) -> dict[str, bool]:
        """Per-metric correctness of one output (see the module docstring)."""
        if self.benchmark == "gsm8k":
            gold = gsm8k_gold(row["answer"])
            pred = extract_metamath_number(output)
            flex = extract_last_number(output)
            return {"exact_match": pred is not None and float(pred) == gold,
                    "exact_match_flexible": flex is not None and flex == gold,
                    "no_answer": pred is None}
        if self.benchmark == "math":
            gold = math_gold(row)
            pred = extract_metamath_math(output)
            return {"exact_match": pred is not None and is_equiv(pred, gold),
                    "exact_match_boxed": is_equiv(extract_boxed_or_line(output), gold)
                    if extract_boxed_or_line(output) is not None else False,
                    "no_answer": pred is None}
        gold = extract_last_number_or_ratio(row["answer"])
        pred = extract_last_number_or_ratio(output)
        return {"exact_match": pred == gold, "no_answer": pred is None}

    def evaluate(self, model) -> dict[str, float]:
        prompts = [self.eval_prompt(r) for r in self.eval_data]
        with Timer() as t:
            outputs = generate(model, self.tokenizer, prompts, self.generation, desc=f"eval {self.name}")
        scores = [self.score(r, o[0]) for r, o in zip(self.eval_data, outputs)]
        metrics = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
        metrics["n"] = float(len(scores))
        metrics["eval_examples_per_s"] = len(scores) / t.seconds if t.seconds else float("nan")
        self.predictions = [{"prompt": p, "output": o[0], **s} for p, o, s in zip(prompts, outputs, scores)]
        if self.predictions_file:
            path = Path(self.predictions_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in self.predictions), encoding="utf-8")
        return metrics


def load_orca_hub() -> tuple[list[dict], list[dict]]:
    """(train rows, 500 eval rows) of Orca-Math with fsdp_qlora's split (needs the hub)."""
    import datasets

    ds = datasets.load_dataset("microsoft/orca-math-word-problems-200k", split="train")
    rows = [{"question": r["question"], "answer": r["answer"]} for r in ds]
    train_idx, eval_idx = orca_split(rows)
    return [rows[i] for i in train_idx], [rows[i] for i in eval_idx]
