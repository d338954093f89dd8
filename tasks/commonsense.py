"""Commonsense reasoning: the LLM-Adapters / DoRA protocol the LoFT paper reports (Tables 2, 16, 17).

Tasks: `commonsense170k` (train on the union of the eight training sets, evaluate on every
set) and one task per set: `boolq piqa siqa hellaswag winogrande arc_c arc_e obqa`
(train on that set's training split, evaluate on its test file).

Data (`<data_dir>/commonsense/<Folder>/{train,test}.json`, the LLM-Adapters layout and
format: instruction / input / output / answer). Folders: boolq, piqa, social_i_qa,
hellaswag, winogrande, ARC-Challenge, ARC-Easy, openbookqa; the union is
`commonsense/commonsense_170k.json`. `scripts/prepare_data.py commonsense` builds all of it
from the canonical hub datasets with the templates below (`to_llm_adapters`); with
`source=auto` a missing file is converted from the hub on the fly when the hub answers.
Offline (`../shared/data`) seven test sets and four training sets exist: commonsense170k
then trains on the partial union (boolq, ARC-C, ARC-E, OBQA) and says so in the log and
in `metrics` (`train_sets_missing`); hellaswag is evaluated when present, otherwise
reported as missing (`hellaswag_missing = 1`, left out of `avg`).

Protocol, with sources (AGI-Edgerunners/LLM-Adapters @ 8166572 `finetune.py`,
`commonsense_evaluate.py`; NVlabs/DoRA `commonsense_reasoning/*.py, *.sh`, the scripts
behind the LoFT paper's Table 4 settings):

- Prompt: the Alpaca template (no-input form; the data has empty inputs). The scripts'
  strings carry 16 spaces of indentation and differ between training (`finetune.py`:
  "request.  \\n\\n ... {instruction}\\n<16 spaces>\\n ... ### Response:\\n<16 sp>{output}")
  and evaluation (`commonsense_evaluate.py`: "request. \\n\\n ... ### Response:\\n<16 sp>").
  `prompt_style=alpaca` (default) uses the clean template for both, the form the
  LLM-Adapters paper prints; `prompt_style=reference` reproduces the scripts byte for
  byte, train/eval mismatch included (`reference_prompt`).
- Training target: `output` ("the correct answer is <answer>") + EOS; cutoff_len 256;
  `train_on_inputs=True`: LLM-Adapters' and DoRA's `finetune.py` default, not overridden
  by DoRA's `llama*_DoRA.sh`, so the loss covers the prompt tokens too (set
  `task.train_on_inputs=false` to mask them with -100). Not reproduced: the scripts hold
  out 120 training examples (`val_set_size 120`) and reload the best of the checkpoints
  saved every 80 steps by validation loss; we train on everything and keep the last step.
- Decoding: `commonsense_evaluate.py` calls `generate(num_beams=4, max_new_tokens=32,
  temperature=0.1, top_p=0.75, top_k=40)` without `do_sample`, i.e. deterministic 4-beam
  search (the sampling knobs are inert); our default is the same, `task.num_beams=1` is
  greedy. The scripts run batch 1; we batch with left padding (tasks/generation.py).
- Answer extraction: DoRA decodes prompt + output and keeps `split("### Response:")[-1]`
  (LLM-Adapters keeps `[1]`); we decode only the new tokens and apply the same `[-1]`
  split, then the first match of the set's regex, case-sensitive, as the scripts do:
  true|false, solution1|solution2, answer1..answer5, ending1..ending4, option1|option2.
  No match gives "" (wrong). Accuracy = exact equality with `answer`. We also report
  `<set>_caseless` (same regex on the lower-cased text) to separate format from knowledge.
- Second protocol, `task.eval_protocol=lm_eval`: log-likelihood multiple choice through
  lm-evaluation-harness (tasks/lm_eval_protocol.py).

Speed-up option: `task.stop_at_answer=true` ends a greedy row as soon as its answer is
decided. Not exact in one corner: a row that later writes "### Response:" again would be
re-read by the `[-1]` split; hence off by default.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.base import DataMissingError, ModelBundle, Task
from tasks.data_files import check_rows, read_json
from tasks.generation import GenerationSettings, SupervisedData, SupervisedLMTask, Timer, alpaca_prompt, generate

PREPARE_FIX = "python scripts/prepare_data.py commonsense --data-dir {data_dir}"


@dataclass(frozen=True)
class CommonsenseSet:
    key: str            # our task name
    folder: str         # LLM-Adapters dataset folder
    pattern: str        # first-match answer regex of commonsense_evaluate.py
    harness: str        # lm-evaluation-harness task name
    hub: tuple          # (path, config) of the canonical hub dataset (lm-eval's sources)
    hub_train: str      # its training split
    hub_eval: str       # the split LLM-Adapters' test.json holds (labelled split the harness scores)


SETS = {s.key: s for s in (
    CommonsenseSet("boolq", "boolq", r"true|false", "boolq", ("google/boolq", None), "train", "validation"),
    CommonsenseSet("piqa", "piqa", r"solution1|solution2", "piqa", ("baber/piqa", None), "train", "validation"),
    CommonsenseSet("siqa", "social_i_qa", r"answer1|answer2|answer3|answer4|answer5", "social_iqa",
                   ("lighteval/siqa", None), "train", "validation"),
    CommonsenseSet("hellaswag", "hellaswag", r"ending1|ending2|ending3|ending4", "hellaswag",
                   ("Rowan/hellaswag", None), "train", "validation"),
    CommonsenseSet("winogrande", "winogrande", r"option1|option2", "winogrande",
                   ("allenai/winogrande", "winogrande_xl"), "train", "validation"),
    CommonsenseSet("arc_c", "ARC-Challenge", r"answer1|answer2|answer3|answer4|answer5", "arc_challenge",
                   ("allenai/ai2_arc", "ARC-Challenge"), "train", "test"),
    CommonsenseSet("arc_e", "ARC-Easy", r"answer1|answer2|answer3|answer4|answer5", "arc_easy",
                   ("allenai/ai2_arc", "ARC-Easy"), "train", "test"),
    CommonsenseSet("obqa", "openbookqa", r"answer1|answer2|answer3|answer4|answer5", "openbookqa",
                   ("allenai/openbookqa", "main"), "train", "test"),
)}
ORDER = list(SETS)  # the paper's column order
UNION_FILE = "commonsense/commonsense_170k.json"
_COMPILED = {k: re.compile(s.pattern) for k, s in SETS.items()}


def extract_answer(set_key: str, text: str, ignore_case: bool = False) -> str:
    """commonsense_evaluate.py `extract_answer`: the first match of the set's regex in the
    stripped text, "" when there is none. Case-sensitive like the reference."""
    text = text.strip()
    if ignore_case:
        text = text.lower()
    m = _COMPILED[set_key].search(text)  # == re.findall(...)[0]: leftmost match
    return m.group(0) if m else ""


def response_part(decoded: str) -> str:
    """DoRA keeps `output.split("### Response:")[-1].strip()`."""
    return decoded.split("### Response:")[-1].strip()


# --- prompts ---------------------------------------------------------------------------

_PAD = " " * 16


def reference_prompt(instruction: str, input: str = "", output: str = "", train: bool = True) -> str:
    """The byte-exact strings of DoRA's commonsense_reasoning/finetune.py (train=True) and
    commonsense_evaluate.py (train=False, output ignored)."""
    if train:
        if input:
            return ("Below is an instruction that describes a task, paired with an input that provides further "
                    "context. Write a response that appropriately completes the request. \n\n"
                    f"{_PAD}### Instruction:\n{_PAD}{instruction}\n{_PAD}\n{_PAD}### Input:\n{_PAD}{input}\n"
                    f"{_PAD}\n{_PAD}### Response:\n{_PAD}{output}")
        return ("Below is an instruction that describes a task. Write a response that appropriately completes "
                f"the request.  \n\n{_PAD}### Instruction:\n{_PAD}{instruction}\n{_PAD}\n{_PAD}### Response:\n"
                f"{_PAD}{output}")
    if input:
        return ("Below is an instruction that describes a task, paired with an input that provides further "
                "context. Write a response that appropriately completes the request.\n\n"
                f"{_PAD}### Instruction:\n{_PAD}{instruction}\n\n{_PAD}### Input:\n{_PAD}{input}\n\n"
                f"{_PAD}### Response:\n{_PAD}")
    return ("Below is an instruction that describes a task. Write a response that appropriately completes "
            f"the request. \n\n{_PAD}### Instruction:\n{_PAD}{instruction}\n\n{_PAD}### Response:\n{_PAD}")


def train_pair(row: dict, style: str) -> tuple[str, str]:
    if style == "reference":
        return reference_prompt(row["instruction"], row.get("input", ""), "", train=True), row["output"]
    return alpaca_prompt(row["instruction"], row.get("input", "")), row["output"]


def eval_prompt(row: dict, style: str) -> str:
    if style == "reference":
        return reference_prompt(row["instruction"], row.get("input", ""), train=False)
    return alpaca_prompt(row["instruction"], row.get("input", ""))


# --- hub rows <-> LLM-Adapters rows ----------------------------------------------------

def _choices(options: list[str], word: str = "Answer") -> str:
    return " ".join(f"{word}{i + 1}: {t}" for i, t in enumerate(options))


def _fmt(options: list[str], word: str = "answer") -> str:
    return "/".join(f"{word}{i + 1}" for i in range(len(options)))


def to_llm_adapters(set_key: str, row: dict) -> dict:
    """A canonical hub row (the fields lm-eval's task configs use) in the LLM-Adapters
    format. The templates are those of LLM-Adapters' dataset files (checked in the tests by
    a round trip through `from_llm_adapters` on every local file)."""
    if set_key == "boolq":
        answer = "true" if row["answer"] in (True, 1, "true", "True") else "false"
        instruction = (f"Please answer the following question with true or false, question: {row['question']}?"
                       "\n\nAnswer format: true/false")
    elif set_key == "piqa":
        answer = f"solution{int(row['label']) + 1}"
        instruction = (f"Please choose the correct solution to the question: {row['goal']}\n\n"
                       f"Solution1: {row['sol1']}\n\nSolution2: {row['sol2']}\n\nAnswer format: solution1/solution2")
    elif set_key == "siqa":
        options = [row["answerA"], row["answerB"], row["answerC"]]
        answer = f"answer{int(row['label'])}"
        instruction = (f"Please choose the correct answer to the question: {row['context']} {row['question']}\n\n"
                       f"{_choices(options)}\n\nAnswer format: {_fmt(options)}")
    elif set_key == "hellaswag":
        answer = f"ending{int(row['label']) + 1}"
        instruction = (f"Please choose the correct ending to complete the given sentence: {row['activity_label']}: "
                       f"{row['ctx']}\n\n{_choices(row['endings'], 'Ending')}\n\nAnswer format: "
                       f"{_fmt(row['endings'], 'ending')}")
    elif set_key == "winogrande":
        answer = f"option{row['answer']}"
        instruction = ("Please choose the correct answer to fill in the blank to complete the given sentence: "
                       f"{row['sentence']}\n\nOption1: {row['option1']} Option2: {row['option2']} "
                       "Answer format: option1/option2")
    elif set_key in ("arc_c", "arc_e", "obqa"):
        question = row["question_stem"] if set_key == "obqa" else row["question"]
        options, labels = list(row["choices"]["text"]), list(row["choices"]["label"])
        answer = f"answer{labels.index(row['answerKey'].strip()) + 1}"
        instruction = (f"Please choose the correct answer to the question: {question}\n\n{_choices(options)}"
                       f"\n\nAnswer format: {_fmt(options)}")
    else:
        raise KeyError(set_key)
    return {"instruction": instruction, "input": "", "output": f"the correct answer is {answer}", "answer": answer}


_PARSERS = {
    "boolq": re.compile(r"Please answer the following question with true or false, question: (?P<q>.*)\?\n\n"
                        r"Answer format: true/false", re.S),
    "piqa": re.compile(r"Please choose the correct solution to the question: (?P<goal>.*?)\n\nSolution1: (?P<s1>.*?)"
                       r"\n\nSolution2: (?P<s2>.*)\n\nAnswer format: solution1/solution2", re.S),
    "siqa": re.compile(r"Please choose the correct answer to the question: (?P<q>.*)\n\n(?P<opts>Answer1: .*)\n\n"
                       r"Answer format: answer1/answer2/answer3", re.S),
    "hellaswag": re.compile(r"Please choose the correct ending to complete the given sentence: (?P<label>.*?): "
                            r"(?P<ctx>.*)\n\n(?P<opts>Ending1: .*)\n\nAnswer format: ending1/ending2/ending3/ending4",
                            re.S),
    "winogrande": re.compile(r"Please choose the correct answer to fill in the blank to complete the given sentence: "
                             r"(?P<s>.*)\n\nOption1: (?P<o1>.*) Option2: (?P<o2>.*) Answer format: option1/option2",
                             re.S),
    "mc": re.compile(r"Please choose the correct answer to the question: (?P<q>.*)\n\n(?P<opts>Answer1: .*)\n\n"
                     r"Answer format: (?P<fmt>answer1(?:/answer\d)*)", re.S),
}


def _split_options(text: str, word: str, n: int) -> list[str]:
    """'Answer1: a Answer2: b' -> ['a', 'b'] for exactly n options (split on the known markers)."""
    out, rest = [], text
    for i in range(1, n + 1):
        head = f"{word}{i}: "
        if not rest.startswith(head):
            raise ValueError(f"expected {head!r} in {text[:80]!r}")
        rest = rest[len(head):]
        if i < n:
            cut = rest.find(f" {word}{i + 1}: ")
            if cut < 0:
                raise ValueError(f"missing {word}{i + 1} in {text[:80]!r}")
            out.append(rest[:cut])
            rest = rest[cut + 1:]
        else:
            out.append(rest)
    return out


def from_llm_adapters(set_key: str, row: dict) -> dict:
    """Invert `to_llm_adapters`: the canonical doc fields lm-eval's templates read. Lossy
    only where the LLM-Adapters file is: boolq has no passage; siqa joins context and
    question with a space (split back at the last sentence end, which leaves the harness
    prompt "Q: {context} {question}" unchanged); hellaswag keeps the raw `ctx`."""
    text, answer = row["instruction"], row["answer"]
    key = "mc" if set_key in ("arc_c", "arc_e", "obqa") else set_key
    m = _PARSERS[key].fullmatch(text)
    if m is None:
        raise ValueError(f"{set_key}: instruction not in the LLM-Adapters template: {text[:120]!r}")
    if set_key == "boolq":
        return {"question": m["q"], "passage": "", "label": int(answer == "true")}
    if set_key == "piqa":
        return {"goal": m["goal"], "sol1": m["s1"], "sol2": m["s2"], "label": int(answer[-1]) - 1}
    if set_key == "siqa":
        a, b, c = _split_options(m["opts"], "Answer", 3)
        q = m["q"]
        cut = max(q.rfind(". "), q.rfind("! "), q.rfind("? "))
        context, question = (q[:cut + 1], q[cut + 2:]) if cut >= 0 else (q.split(" ", 1) + [""])[:2]
        return {"context": context, "question": question, "answerA": a, "answerB": b, "answerC": c,
                "label": str(int(answer[-1]))}
    if set_key == "hellaswag":
        endings = _split_options(m["opts"], "Ending", 4)
        return {"activity_label": m["label"], "ctx": m["ctx"], "ctx_a": m["ctx"], "ctx_b": "",
                "endings": endings, "label": str(int(answer[-1]) - 1)}
    if set_key == "winogrande":
        return {"sentence": m["s"], "option1": m["o1"], "option2": m["o2"], "answer": answer[-1]}
    n = m["fmt"].count("/") + 1
    options = _split_options(m["opts"], "Answer", n)
    labels = [chr(ord("A") + i) for i in range(n)]
    doc = {"choices": {"text": options, "label": labels}, "answerKey": labels[int(answer[len("answer"):]) - 1]}
    doc["question_stem" if set_key == "obqa" else "question"] = m["q"]
    return doc


def load_hub_split(set_key: str, split: str) -> list[dict]:
    """One canonical hub split in the LLM-Adapters format (needs the hub)."""
    import datasets

    s = SETS[set_key]
    rows = datasets.load_dataset(s.hub[0], s.hub[1], split=split)
    out = []
    for row in rows:
        if set_key == "hellaswag" and str(row.get("label", "")).strip() == "":
            continue  # unlabelled rows
        out.append(to_llm_adapters(set_key, row))
    return out


# --- the task --------------------------------------------------------------------------

class CommonsenseTask(SupervisedLMTask):
    name = "commonsense"

    def __init__(self, name: str = "boolq", train_sets: list[str] | None = None, eval_sets: list[str] | None = None,
                 train_file: str | None = None, source: str = "auto", max_train_samples: int | None = None,
                 eval_limit: int | None = None, cutoff_len: int = 256, train_on_inputs: bool = True,
                 prompt_style: str = "alpaca", eval_protocol: str = "generate", num_beams: int = 4,
                 max_new_tokens: int = 32, eval_batch_size: int = 16, stop_at_answer: bool = False,
                 lm_eval_batch_size: int = 16, lm_eval_data: str = "auto", predictions_file: str | None = None,
                 train_max_steps: int | None = None, subset_seed: int = 0):
        for label, value, allowed in (("source", source, ("auto", "local", "hub")),
                                      ("prompt_style", prompt_style, ("alpaca", "reference")),
                                      ("eval_protocol", eval_protocol, ("generate", "lm_eval")),
                                      ("lm_eval_data", lm_eval_data, ("auto", "local", "hub"))):
            if value not in allowed:
                raise ValueError(f"task.{label}={value!r}: use one of {', '.join(allowed)}")
        default = [name] if name in SETS else list(ORDER)
        self.train_sets, self.eval_sets = list(train_sets or default), list(eval_sets or default)
        for k in self.train_sets + self.eval_sets:
            if k not in SETS:
                raise ValueError(f"unknown commonsense set {k!r}; choose from {', '.join(ORDER)}")
        self.name, self.train_file, self.source = name, train_file, source
        self.max_train_samples, self.eval_limit = max_train_samples, eval_limit
        self.cutoff_len, self.train_on_inputs, self.prompt_style = int(cutoff_len), bool(train_on_inputs), prompt_style
        self.eval_protocol, self.lm_eval_data, self.lm_eval_batch_size = eval_protocol, lm_eval_data, lm_eval_batch_size
        self.generation = GenerationSettings(max_new_tokens=int(max_new_tokens), num_beams=int(num_beams),
                                             batch_size=int(eval_batch_size))
        self.stop_at_answer, self.predictions_file = bool(stop_at_answer), predictions_file
        self.train_max_steps, self.subset_seed = train_max_steps, int(subset_seed)
        self.notes: list[str] = []

    # --- data ------------------------------------------------------------------------

    def _hub_ok(self) -> bool:
        if self.source == "local":
            return False
        if getattr(self, "_hub", None) is None:  # one probe per task, not one per missing file
            from loft.core.hub import hub_reachable

            self._hub = hub_reachable()
        return self._hub

    def _read_set(self, data_dir: Path, set_key: str, split: str) -> list[dict] | None:
        """Local LLM-Adapters file, else the hub conversion, else None."""
        s = SETS[set_key]
        path = data_dir / "commonsense" / s.folder / f"{split}.json"
        if self.source != "hub" and path.is_file():
            fix = PREPARE_FIX.format(data_dir=data_dir)
            rows = read_json(path, fix)
            if split == "train":  # task.max_train_samples draws a random subset: every row counts
                check_rows(path, data_dir, len(rows), fix)
            else:
                check_rows(path, data_dir, len(rows), fix, first=self.eval_limit, first_key="task.eval_limit")
            return rows
        if self._hub_ok():
            return load_hub_split(set_key, s.hub_train if split == "train" else s.hub_eval)
        return None

    def setup(self, bundle: ModelBundle, data_dir: str) -> None:
        self.tokenizer = bundle.tokenizer
        data_dir = Path(data_dir)
        training = self.train_max_steps != 0
        self.train_missing = []
        rows: list[dict] = []
        union = data_dir / self.train_file if self.train_file else None
        if union is not None and union.is_file() and self.source != "hub":
            rows = read_json(union, PREPARE_FIX.format(data_dir=data_dir))
            check_rows(union, data_dir, len(rows), PREPARE_FIX.format(data_dir=data_dir))  # count stored at prepare
            print(f"[{self.name}] training on {union} ({len(rows)} examples)", file=sys.stderr)
        else:
            for k in self.train_sets:
                got = self._read_set(data_dir, k, "train")
                if got is None:
                    self.train_missing.append(k)
                else:
                    rows.extend(got)
            if union is not None:
                present = [k for k in self.train_sets if k not in self.train_missing]
                if self.train_missing:
                    self._note(f"{union} not found: training on a PARTIAL union of {', '.join(present) or 'nothing'} "
                               f"({len(rows)} examples); missing training sets: {', '.join(self.train_missing)}. "
                               f"Fix: `{PREPARE_FIX.format(data_dir=data_dir)}` (online).")
        if training and (not rows or (union is None and self.train_missing)):
            raise DataMissingError(
                f"no training data for task={self.name} (missing: {', '.join(self.train_missing) or self.train_file}) "
                f"under {data_dir / 'commonsense'}. Fix: `{PREPARE_FIX.format(data_dir=data_dir)}` (online), "
                f"or evaluate only with trainer.max_steps=0.")
        if self.max_train_samples is not None and len(rows) > self.max_train_samples:
            keep = np.sort(np.random.default_rng(self.subset_seed).permutation(len(rows))[: self.max_train_samples])
            rows = [rows[i] for i in keep]  # a fixed subset (same for every method and seed)
        self.train_rows = rows
        self.train_data = SupervisedData(self.tokenizer, (train_pair(r, self.prompt_style) for r in rows),
                                               self.cutoff_len, self.train_on_inputs, desc=f"tokenize {self.name}")

        self.eval_rows: dict[str, list[dict]] = {}
        self.eval_missing: list[str] = []
        for k in self.eval_sets:
            got = self._read_set(data_dir, k, "test")
            if got is None:
                self.eval_missing.append(k)
                self._note(f"eval set {k} ({SETS[k].folder}/test.json) not found under {data_dir / 'commonsense'} "
                           f"and the hub is not reachable: skipped, reported as {k}_missing=1 and left out of avg. "
                           f"Fix: `{PREPARE_FIX.format(data_dir=data_dir)}` (online).")
                continue
            self.eval_rows[k] = got[: self.eval_limit] if self.eval_limit is not None else got
        if not self.eval_rows:
            raise DataMissingError(f"no evaluation set of task={self.name} found under {data_dir / 'commonsense'}. "
                                   f"Fix: `{PREPARE_FIX.format(data_dir=data_dir)}` (online).")

    # --- evaluation ------------------------------------------------------------------

    def evaluate(self, model) -> dict[str, float]:
        if self.eval_protocol == "lm_eval":
            from tasks.lm_eval_protocol import evaluate_commonsense

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
        if self.predictions_file:
            path = Path(self.predictions_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        return metrics
