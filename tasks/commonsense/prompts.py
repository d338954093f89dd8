"""Commonsense prompts: the two styles, for training and for evaluation.

- `reference` (the paper presets' default): the byte-exact strings of DoRA's
  `commonsense_reasoning/finetune.py` (training) and `commonsense_evaluate.py` (evaluation),
  the scripts behind the LoFT paper's Table 4 setting. They carry 16 spaces of indentation
  and differ between training ("request.  \\n\\n ... {instruction}\\n<16 spaces>\\n ...
  ### Response:\\n<16 sp>{output}") and evaluation ("request. \\n\\n ... ### Response:\\n<16 sp>").
  LLM-Adapters' `finetune.py` has the same lines but keeps a stray "  # noqa: E501" inside
  its first line; DoRA moved it out of the string.
- `alpaca` (the task's default, kept for the CPU miniatures): the clean Alpaca template
  (`tasks.generation.alpaca_prompt`) for both, the form the LLM-Adapters paper prints.
"""
from __future__ import annotations

from tasks.generation import alpaca_prompt

PROMPT_STYLES = ("alpaca", "reference")
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
    """(prompt, target) of one training row; prompt + target is the text the scripts train on."""
    if style == "reference":
        return reference_prompt(row["instruction"], row.get("input", ""), "", train=True), row["output"]
    return alpaca_prompt(row["instruction"], row.get("input", "")), row["output"]


def eval_prompt(row: dict, style: str) -> str:
    if style == "reference":
        return reference_prompt(row["instruction"], row.get("input", ""), train=False)
    return alpaca_prompt(row["instruction"], row.get("input", ""))
