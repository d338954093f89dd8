"""tasks/math: the per-benchmark specs (prompts, scorers, files), the data paths of
MathReasoningTask (local, hub, offline stand-in, evaluate-only) and its config errors. No
model: SupervisedData tokenises lazily, so the pairs are checked before tokenisation."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import tasks.math.task as math_task  # noqa: E402
import tasks.sources as sources  # noqa: E402
from loft.core.errors import ConfigError, DataMissingError  # noqa: E402
from tasks.data_files import write_row_count  # noqa: E402
from tasks.math import BENCHMARKS, MathReasoningTask, MGSMTask  # noqa: E402

HEADER = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n")


class _Tokenizer:
    pad_token_id = eos_token_id = 0  # SupervisedData reads the pad id; it tokenises on the first batch only


class _Bundle:
    tokenizer = _Tokenizer()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """A small stand-in for a published file, with its row count stored as prepare_data.py does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    write_row_count(path, len(rows))
    return path


def test_every_math_config_names_a_benchmark_with_its_files():
    for name in ("gsm8k", "math", "orca_math"):
        task = yaml.safe_load((REPO / "conf" / "task" / f"{name}.yaml").read_text())["task"]
        assert task["benchmark"] in BENCHMARKS and task["_target_"] == "tasks.math_reasoning.MathReasoningTask"
    assert {k: (b.train_file, b.eval_file) for k, b in BENCHMARKS.items()} == {
        "gsm8k": ("metamathqa/MetaMathQA-395K.json", "gsm8k/test.jsonl"),
        "math": ("metamathqa/MetaMathQA-395K.json", "math500/test.jsonl"),
        "orca_math": ("orca_math/train.jsonl", "orca_math/test.jsonl")}


def test_prompts_and_training_pairs_are_the_references_strings():
    gsm, math, orca = BENCHMARKS["gsm8k"], BENCHMARKS["math"], BENCHMARKS["orca_math"]
    assert gsm.train_pair({"query": "Q?", "response": "R"}) == (HEADER + "Q?\n\n### Response:", "R\n")
    assert gsm.eval_prompt({"question": "Q?"}) == HEADER + "Q?\n\n### Response: Let's think step by step."
    assert math.eval_prompt({"problem": "P"}) == HEADER + "P\n\n### Response: Let's think step by step."
    assert gsm.offline_pair({"question": "Q?", "answer": "2+2=<<2+2=4>>4\n#### 4"}) == (
        HEADER + "Q?\n\n### Response:", "2+2=4\n#### 4\nThe answer is: 4\n")
    assert orca.train_pair({"question": "Q?", "answer": "A"}) == ("###Question:\nQ?\n###Answer:\n", "A")
    assert orca.eval_prompt({"question": "Q?"}) == "###Question:\nQ?\n###Answer:\n"
    assert gsm.stop == math.stop and "Question:" in gsm.stop and orca.stop == ()


def test_scores_per_benchmark():
    gsm, math, orca = (BENCHMARKS[k].score for k in ("gsm8k", "math", "orca_math"))
    assert gsm({"answer": "... #### 1,200"}, "so 1200.\nThe answer is: 1,200") == {
        "exact_match": True, "exact_match_flexible": True, "no_answer": False}
    assert gsm({"answer": "#### 5"}, "it is 5") == {"exact_match": False, "exact_match_flexible": True,
                                                    "no_answer": True}
    row = {"problem": "p", "solution": "so \\boxed{\\frac{1}{2}}", "answer": "\\frac{1}{2}"}
    assert math(row, "The answer is: 0.5") == {"exact_match": True, "exact_match_boxed": True, "no_answer": False}
    assert math(row, "\\boxed{\\dfrac12}") == {"exact_match": False, "exact_match_boxed": True, "no_answer": True}
    assert math(row, "no idea") == {"exact_match": False, "exact_match_boxed": False, "no_answer": True}
    assert orca({"answer": "The ratio is 3:4."}, "so 3:4") == {"exact_match": True, "no_answer": False}
    assert orca({"answer": "$5"}, "") == {"exact_match": False, "no_answer": True}


@pytest.mark.parametrize("kwargs, match", [
    (dict(benchmark="algebra"), r"task.benchmark='algebra': use one of gsm8k, math, orca_math"),
    (dict(source="web"), r"task.source='web': use auto, local or hub"),
    (dict(name="orca_math", train_types=["GSM_AnsAug"]), r"task.train_types: orca_math's training rows have no type"),
])
def test_config_errors_name_the_key(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MathReasoningTask(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(benchmark="math"), "leave task.benchmark"), (dict(languages=["xx"]), "not MGSM languages"),
    (dict(eval_protocol="chat"), "use generate or lm_eval"), (dict(lm_eval_data="web"), "task.lm_eval_data='web'"),
])
def test_mgsm_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MGSMTask(**kwargs)


def test_local_files_train_types_subset_and_eval_limit(tmp_path):
    rows = [{"query": f"q{i}", "response": f"r{i}", "type": "GSM_AnsAug" if i % 2 else "MATH_FOBAR"}
            for i in range(10)]
    write_jsonl(tmp_path / "mm.jsonl", rows)
    write_jsonl(tmp_path / "gsm8k/test.jsonl", [{"question": f"t{i}", "answer": f"#### {i}"} for i in range(5)])
    task = MathReasoningTask(name="gsm8k", source="local", train_file="mm.jsonl", train_types=["GSM_AnsAug"],
                             max_train_samples=3, eval_limit=2, subset_seed=1)
    task.setup(_Bundle(), str(tmp_path))
    odd = [(HEADER + f"q{i}\n\n### Response:", f"r{i}\n") for i in range(1, 10, 2)]
    assert task.train_data.pairs == sources.random_subset(odd, 3, 1) and len(task.train_data.pairs) == 3
    assert [r["question"] for r in task.eval_data] == ["t0", "t1"]


def test_hub_rows_when_no_local_file(tmp_path, monkeypatch):
    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda: True)
    spec = dataclasses.replace(BENCHMARKS["orca_math"], hub_train=lambda: [{"question": "hq", "answer": "ha"}],
                               hub_eval=lambda: [{"question": "e", "answer": "1"}])
    monkeypatch.setitem(math_task.BENCHMARKS, "orca_math", spec)
    task = MathReasoningTask(name="orca_math")
    task.setup(_Bundle(), str(tmp_path))
    assert task.train_data.pairs == [("###Question:\nhq\n###Answer:\n", "ha")] and task.eval_data[0]["question"] == "e"


def test_gsm8k_falls_back_to_its_train_split_when_the_hub_fails(tmp_path, monkeypatch):
    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda: True)

    def outage():
        raise ConnectionError("503")

    monkeypatch.setitem(math_task.BENCHMARKS, "gsm8k", dataclasses.replace(BENCHMARKS["gsm8k"], hub_train=outage))
    write_jsonl(tmp_path / "gsm8k/train.jsonl", [{"question": "Q", "answer": "x<<1+1=2>>2\n#### 2"}])
    write_jsonl(tmp_path / "gsm8k/test.jsonl", [{"question": "t", "answer": "#### 1"}])
    task = MathReasoningTask(name="gsm8k", train_max_steps=1)
    task.setup(_Bundle(), str(tmp_path))
    assert task.train_data.pairs == [(HEADER + "Q\n\n### Response:", "x2\n#### 2\nThe answer is: 2\n")]
    assert len(task.notes) == 1 and "MetaMathQA style" in task.notes[0] and "prepare_data.py metamathqa" in task.notes[0]


def test_missing_training_data_is_an_error_only_when_training(tmp_path, monkeypatch):
    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda: False)
    write_jsonl(tmp_path / "math500/test.jsonl", [{"problem": "p", "answer": "1"}])
    with pytest.raises(DataMissingError, match=r"MetaMathQA-395K.json not found \(hub unreachable\)\. Fix: "
                                               r"`python scripts/prepare_data.py metamathqa .*trainer.max_steps=0"):
        MathReasoningTask(name="math", train_max_steps=1).setup(_Bundle(), str(tmp_path))
    task = MathReasoningTask(name="math", train_max_steps=0)
    task.setup(_Bundle(), str(tmp_path))
    assert task.train_data.pairs == [] and len(task.eval_data) == 1
    with pytest.raises(DataMissingError, match=r"orca_math/test.jsonl not found .*prepare_data.py orca_math"):
        MathReasoningTask(name="orca_math", train_max_steps=0).setup(_Bundle(), str(tmp_path))


def test_the_configs_targets_still_name_the_moved_classes():
    """Resolved configs of earlier records keep their `_target_`; the old module paths re-export."""
    from hydra.utils import get_class

    from tasks.lm import Wikitext2Task

    expected = {"gsm8k": MathReasoningTask, "math": MathReasoningTask, "orca_math": MathReasoningTask,
                "mgsm": MGSMTask, "wikitext2": Wikitext2Task}
    for name, cls in expected.items():
        target = yaml.safe_load((REPO / "conf" / "task" / f"{name}.yaml").read_text())["task"]["_target_"]
        assert get_class(target) is cls, (name, target)
