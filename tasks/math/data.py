"""Reading the math benchmarks' files and hub copies.

- Local files are JSON or JSON lines (`read_json_or_jsonl`); `scripts/prepare_data.py <target>`
  writes them (`prepare_command` names it in every error).
- Hub copies: MetaMathQA (`meta-math/MetaMathQA`), GSM8K (`openai/gsm8k`, main), MATH-500
  (`HuggingFaceH4/MATH-500`) and Orca-Math (`microsoft/orca-math-word-problems-200k`) with
  fsdp_qlora's held-out split (`orca_split`: datasets' `shuffle(seed=42)`, the first 500 of the
  last 5000 rows are evaluated, every other row trains).
- `gsm8k_to_metamath`: a GSM8K train answer in MetaMathQA's GSM_* style, the offline stand-in
  for MetaMathQA when training for GSM8K.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tasks.data_files import read_json, read_jsonl


def prepare_command(target: str, data_dir: Path | str) -> str:
    return f"python scripts/prepare_data.py {target} --data-dir {data_dir}"


def read_json_or_jsonl(path: Path, fix: str) -> list[dict]:
    return read_jsonl(path, fix) if path.suffix == ".jsonl" else read_json(path, fix)


def gsm8k_to_metamath(answer: str) -> str:
    """A GSM8K train answer in MetaMathQA's GSM_* style (no calculator annotations, answer line)."""
    body = re.sub(r"<<[^>]*>>", "", answer)
    final = answer.split("####")[-1].strip().replace(",", "")
    return f"{body}\nThe answer is: {final}"


def orca_split(rows: list, seed: int = 42, tail: int = 5000, n_eval: int = 500) -> tuple[list[int], list[int]]:
    """fsdp_qlora: shuffle(seed=42), evaluate the first 500 of the last 5000 rows. The
    permutation is datasets' `Dataset.shuffle(seed)`: numpy `default_rng(seed).permutation`."""
    perm = np.random.default_rng(seed).permutation(len(rows))
    start = max(len(rows) - tail, 0)
    eval_idx = perm[start:start + n_eval].tolist()
    held = set(eval_idx)
    return [i for i in perm.tolist() if i not in held], eval_idx


def load_orca_hub() -> tuple[list[dict], list[dict]]:
    """(train rows, 500 eval rows) of Orca-Math with fsdp_qlora's split (needs the hub)."""
    import datasets

    ds = datasets.load_dataset("microsoft/orca-math-word-problems-200k", split="train")
    rows = [{"question": r["question"], "answer": r["answer"]} for r in ds]
    train_idx, eval_idx = orca_split(rows)
    return [rows[i] for i in train_idx], [rows[i] for i in eval_idx]


def hub_rows(dataset: str, *config: str, split: str) -> list[dict]:
    """Every row of one split of a hub dataset (needs the hub)."""
    import datasets

    return list(datasets.load_dataset(dataset, *config, split=split))
