"""The commonsense paper presets build DoRA's prompts byte for byte, training and evaluation.

The oracles below are NVlabs/DoRA `commonsense_reasoning/finetune.py` `generate_prompt` and
`commonsense_evaluate.py` `generate_prompt`, written out from their source (the strings'
indentation is part of them: 16 spaces, and a line of 16 spaces in the training form).
LLM-Adapters' `finetune.py` has the same lines except a stray "  # noqa: E501" that its
f-string carries inside the first line; DoRA, whose settings the LoFT paper uses, is the
reference. Rows: the local LLM-Adapters files of every set (hellaswag, not mirrored: a real
HellaSwag validation row converted with to_llm_adapters).
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import hydra
import pytest

from tests.conftest import DATA_DIR, compose_config
from tasks.commonsense import ORDER, SETS, eval_prompt, to_llm_adapters, train_pair
import tasks.commonsense.task as task_module

PAPER_PRESETS = ["loft_table2_llama7b", "loft_table2_llama2_7b", "loft_table2_llama2_7b_baselines",
                 "loft_table2_llama3_8b", "loft_table2_llama3_8b_baselines", "loft_table7_llama7b_ablation",
                 "loft_table10_llama7b_simple", "loft_table16_llama7b_lowrank", "loft_table17_llama3_70b"]
PAD = " " * 16


def dora_finetune_prompt(data_point: dict) -> str:
    """DoRA commonsense_reasoning/finetune.py generate_prompt."""
    if data_point["input"]:
        return ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request. \n"
                "\n"
                "                ### Instruction:\n"
                f"                {data_point['instruction']}\n"
                "                \n"
                "                ### Input:\n"
                f"                {data_point['input']}\n"
                "                \n"
                "                ### Response:\n"
                f"                {data_point['output']}")
    return ("Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request.  \n"
            "\n"
            "                ### Instruction:\n"
            f"                {data_point['instruction']}\n"
            "                \n"
            "                ### Response:\n"
            f"                {data_point['output']}")


def dora_evaluate_prompt(instruction: str, input=None) -> str:
    """DoRA commonsense_reasoning/commonsense_evaluate.py generate_prompt."""
    if input:
        return ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request.\n"
                "\n"
                "                ### Instruction:\n"
                f"                {instruction}\n"
                "\n"
                "                ### Input:\n"
                f"                {input}\n"
                "\n"
                "                ### Response:\n"
                "                ")
    return ("Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request. \n"
            "\n"
            "                ### Instruction:\n"
            f"                {instruction}\n"
            "\n"
            "                ### Response:\n"
            "                ")


HELLASWAG_VALIDATION_0 = {"activity_label": "Roof shingle removal", "ctx": "A man is sitting on a roof. he",
                          "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                                      "is holding a rubik's cube.", "starts pulling up roofing on a roof."],
                          "label": "3"}


def real_rows(key: str, n: int = 3) -> list[dict]:
    if key == "hellaswag":
        return [to_llm_adapters("hellaswag", HELLASWAG_VALIDATION_0)]
    return json.loads((DATA_DIR / "commonsense" / SETS[key].folder / "test.json").read_text())[:n]


def test_oracles_are_the_scripts_strings():
    """Independent spellings of the two strings' key bytes (spaces after 'request.', the padded blank line)."""
    row = {"instruction": "Q?", "input": "", "output": "A"}
    assert dora_finetune_prompt(row) == ("Below is an instruction that describes a task. Write a response that "
                                         f"appropriately completes the request.  \n\n{PAD}### Instruction:\n{PAD}Q?\n"
                                         f"{PAD}\n{PAD}### Response:\n{PAD}A")
    assert dora_evaluate_prompt("Q?").endswith(f"the request. \n\n{PAD}### Instruction:\n{PAD}Q?\n\n"
                                               f"{PAD}### Response:\n{PAD}")


def preset_task(preset: str):
    cfg = compose_config(f"+experiment={preset}", "task.source=local", "task.eval_limit=3", "trainer.max_steps=0")
    return cfg, hydra.utils.instantiate(cfg.task, _recursive_=False)


@pytest.mark.parametrize("preset", PAPER_PRESETS)
def test_paper_preset_prompts_equal_doras_byte_for_byte(preset, monkeypatch):
    cfg, task = preset_task(preset)
    assert task.prompt_style == "reference" and task.val_set_size == 120 and task.eval_every == 80
    tokenizer = SimpleNamespace(pad_token_id=0, eos_token_id=2)  # pairs are built before any tokenisation
    task.setup(SimpleNamespace(tokenizer=tokenizer), str(DATA_DIR))
    # training (and the held-out rows): what the task built, row by row, against finetune.py
    built = task.train_data.pairs + task.val_data.pairs
    assert len(built) > 1000
    texts = {p + t for p, t in built}
    read = [r for k in task.train_sets if (DATA_DIR / "commonsense" / SETS[k].folder / "train.json").is_file()
            for r in json.loads((DATA_DIR / "commonsense" / SETS[k].folder / "train.json").read_text())]
    assert texts <= {dora_finetune_prompt(r) for r in read}
    for key in ORDER:  # every set, local training files or not
        for row in real_rows(key):
            prompt, target = train_pair(row, task.prompt_style)
            assert prompt + target == dora_finetune_prompt(row), key
            assert prompt == dora_finetune_prompt({**row, "output": ""})  # the masked part (train_on_inputs=False)
            assert eval_prompt(row, task.prompt_style) == dora_evaluate_prompt(row["instruction"], row["input"]), key
    # evaluation: the prompts the task hands to generate, against commonsense_evaluate.py
    seen = []
    monkeypatch.setattr(task_module, "generate", lambda model, tok, prompts, settings, **kw:
                        seen.extend(prompts) or [["the correct answer is x"]] * len(prompts))
    task._evaluate_generate(model=None)
    expected = [dora_evaluate_prompt(r["instruction"], r["input"]) for rows in task.eval_rows.values() for r in rows]
    assert seen == expected and len(seen) == 3 * len(task.eval_rows)


def test_with_an_input_the_reference_strings_hold_too():
    row = {**real_rows("boolq", 1)[0], "input": "some passage"}
    prompt, target = train_pair(row, "reference")
    assert prompt + target == dora_finetune_prompt(row)
    assert eval_prompt(row, "reference") == dora_evaluate_prompt(row["instruction"], row["input"])


def test_the_alpaca_option_and_the_cpu_miniatures_keep_the_clean_template():
    cfg, task = preset_task("cpu/loft_table2_llama7b")
    assert task.prompt_style == "alpaca" and task.val_set_size == 0 and not task.callbacks()
    cfg = compose_config(  # the named options turn the reference protocol off
        "+experiment=loft_table2_llama7b", "task.prompt_style=alpaca", "task.val_set_size=0")
    assert cfg.task.prompt_style == "alpaca" and cfg.task.val_set_size == 0
    row = real_rows("arc_c", 1)[0]
    assert eval_prompt(row, "alpaca") == ("Below is an instruction that describes a task. Write a response that "
                                          "appropriately completes the request.\n\n### Instruction:\n"
                                          f"{row['instruction']}\n\n### Response:\n")
