"""The math benchmarks as data: a `MathBenchmark` says which files, prompts, stop strings and
scorer a benchmark uses, so `MathReasoningTask` reads one instead of branching on its name.

gsm8k / math: MetaMathQA-style training, MetaMath evaluation.
- Training: MetaMathQA (Yu et al. 2024; `query`/`response`), all 395k rows as MetaMath trains one
  model for both benchmarks (`task.train_types` picks MetaMathQA types). Formatting as PiSSA's
  `train.py` (GraphPKU/PiSSA): prompt = Alpaca header + "### Instruction:\\n{query}\\n\\n###
  Response:", target = response + "\\n" (+ EOS), prompt tokens masked. Offline, gsm8k only:
  GSM8K's train split in MetaMathQA's GSM style (`offline_train`), announced in the notes.
- Evaluation (MetaMath `eval_gsm8k.py`, `eval_math.py`): the same header + "### Response: Let's
  think step by step.", greedy, stop strings Question/USER/ASSISTANT/Instruction/Response (cut
  before them, as vLLM's `stop=`). Scores: tasks/math/answers.py.
  gsm8k: `exact_match` (answer line), `exact_match_flexible` (last number), `no_answer`.
  math: `exact_match` (answer line under is_equiv), `exact_match_boxed` (last \\boxed{}), `no_answer`.
- Data: `gsm8k/test.jsonl` (1319, question/answer) and `math500/test.jsonl` (500; MetaMath's
  question/answer rows or the hub's HuggingFaceH4/MATH-500 problem/solution/answer).

orca_math: LoFT App. F.2 (Answer.AI's FSDP-QDoRA Orca-Math recipe, AnswerDotAI/fsdp_qlora).
- Prompt "###Question:\\n{question}\\n###Answer:\\n" (+ answer + EOS), prompt masked, no stop
  string (EOS only). `exact_match`: Answer.AI's last number or ratio of the output == that of
  the reference answer, as strings. Data: tasks/math/data.py (`orca_split`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tasks.math.answers import (extract_boxed_or_line, extract_last_number, extract_last_number_or_ratio,
                                extract_metamath_math, extract_metamath_number, gsm8k_gold, is_equiv, math_gold)
from tasks.math.data import gsm8k_to_metamath, hub_rows, load_orca_hub

METAMATH_PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                   "the request.\n\n### Instruction:\n{instruction}\n\n### Response:")
METAMATH_EVAL_SUFFIX = " Let's think step by step."
METAMATH_STOP = ("Question:", "Question", "USER:", "USER", "ASSISTANT:", "ASSISTANT", "Instruction:", "Instruction",
                 "Response:", "Response")
ORCA_PROMPT = "###Question:\n{question}\n###Answer:\n"

Pair = tuple[str, str]  # (prompt, target) of one training example


@dataclass(frozen=True)
class MathBenchmark:
    name: str
    train_file: str                           # default task.train_file, relative to the data folder
    eval_file: str                            # default task.eval_file
    train_prepare: str                        # the scripts/prepare_data.py target writing train_file
    eval_prepare: str                         # ... and eval_file
    train_pair: Callable[[dict], Pair]        # one training row -> (prompt, target)
    eval_prompt: Callable[[dict], str]
    score: Callable[[dict, str], dict[str, bool]]   # (eval row, output) -> per-metric correctness
    hub_train: Callable[[], list[dict]]
    hub_eval: Callable[[], list[dict]]
    stop: tuple[str, ...] = ()                # default stop strings of generation
    typed: bool = False                       # training rows carry MetaMathQA's `type` (task.train_types)
    offline_train: str | None = None          # local stand-in for train_file when the hub is out of reach
    offline_prepare: str | None = None
    offline_pair: Callable[[dict], Pair] | None = None


# --- MetaMath (gsm8k, math) ------------------------------------------------------------

def metamath_pair(row: dict) -> Pair:
    return METAMATH_PROMPT.format(instruction=row["query"]), row["response"] + "\n"


def gsm8k_as_metamath_pair(row: dict) -> Pair:
    return METAMATH_PROMPT.format(instruction=row["question"]), gsm8k_to_metamath(row["answer"]) + "\n"


def metamath_eval_prompt(row: dict) -> str:
    question = row.get("question") or row.get("problem") or row.get("query")
    return METAMATH_PROMPT.format(instruction=question) + METAMATH_EVAL_SUFFIX


def score_gsm8k(row: dict, output: str) -> dict[str, bool]:
    gold = gsm8k_gold(row["answer"])
    pred = extract_metamath_number(output)
    flex = extract_last_number(output)
    return {"exact_match": pred is not None and float(pred) == gold,
            "exact_match_flexible": flex is not None and flex == gold,
            "no_answer": pred is None}


def score_math(row: dict, output: str) -> dict[str, bool]:
    gold = math_gold(row)
    pred = extract_metamath_math(output)
    boxed = extract_boxed_or_line(output)
    return {"exact_match": pred is not None and is_equiv(pred, gold),
            "exact_match_boxed": is_equiv(boxed, gold) if boxed is not None else False,
            "no_answer": pred is None}


def metamathqa_hub() -> list[dict]:
    return hub_rows("meta-math/MetaMathQA", split="train")


# --- Orca-Math -------------------------------------------------------------------------

def orca_pair(row: dict) -> Pair:
    return ORCA_PROMPT.format(question=row["question"]), row["answer"]


def orca_eval_prompt(row: dict) -> str:
    return ORCA_PROMPT.format(question=row["question"])


def score_orca(row: dict, output: str) -> dict[str, bool]:
    gold = extract_last_number_or_ratio(row["answer"])
    pred = extract_last_number_or_ratio(output)
    return {"exact_match": pred == gold, "no_answer": pred is None}


METAMATHQA = dict(train_file="metamathqa/MetaMathQA-395K.json", train_prepare="metamathqa", train_pair=metamath_pair,
                  eval_prompt=metamath_eval_prompt, hub_train=metamathqa_hub, stop=METAMATH_STOP, typed=True)
BENCHMARKS: dict[str, MathBenchmark] = {b.name: b for b in (
    MathBenchmark("gsm8k", eval_file="gsm8k/test.jsonl", eval_prepare="gsm8k", score=score_gsm8k,
                  hub_eval=lambda: hub_rows("openai/gsm8k", "main", split="test"),
                  offline_train="gsm8k/train.jsonl", offline_prepare="gsm8k", offline_pair=gsm8k_as_metamath_pair,
                  **METAMATHQA),
    MathBenchmark("math", eval_file="math500/test.jsonl", eval_prepare="math500", score=score_math,
                  hub_eval=lambda: hub_rows("HuggingFaceH4/MATH-500", split="test"), **METAMATHQA),
    MathBenchmark("orca_math", train_file="orca_math/train.jsonl", eval_file="orca_math/test.jsonl",
                  train_prepare="orca_math", eval_prepare="orca_math", train_pair=orca_pair,
                  eval_prompt=orca_eval_prompt, score=score_orca, hub_train=lambda: load_orca_hub()[0],
                  hub_eval=lambda: load_orca_hub()[1]),
)}
