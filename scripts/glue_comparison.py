"""A small real GLUE comparison on CPU: MiniLM (offline) on RTE, MRPC, CoLA, STS-B and SST-2 at
rank 4 for LoRA, LoFT, PSOFT and LOFT (principal, SkewGrad), three seeds; mean ± std table.

    python scripts/glue_comparison.py                       # run the sweep (skips finished runs), print the table
    python scripts/glue_comparison.py --table-only          # the table from existing records
    python scripts/glue_comparison.py --max-train-samples 512 --epochs 2 -- trainer.lr=5e-4

The runs go through `run.py -m` (one Hydra multirun, sequential in one process), so every run
writes its record under results/runs/glue_<task>/<model>/<method>/r<rank>_seed<seed>.json like
any other; the table is built from those records alone. A run already finished with the same
config is skipped, so an interrupted comparison continues where it stopped. Each cell is the
task's main metric x 100 on the reported half of the dev split (CoLA: Matthews correlation;
STS-B: Pearson; others: accuracy), mean ± sample standard deviation (ddof = 1) over seeds.
The defaults (512 rows, 1 epoch, batch 16, 64 tokens, 200 dev rows) fit about 40 minutes on 2 busy CPU cores (OMP_NUM_THREADS=1 is set for the runs:
on an oversubscribed machine two OpenMP threads per process were ~5x slower than one).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from loft.core.paths import REPO  # noqa: E402

TASKS = ["rte", "mrpc", "cola", "stsb", "sst2"]
METHODS = ["lora", "loft", "psoft", "loft_orth_principal", "loft_orth_skewgrad"]
METRIC = {"cola": "matthews_correlation", "stsb": "pearson"}  # else accuracy
LABEL = {"cola": "CoLA (MCC)", "stsb": "STS-B (Pearson)", "rte": "RTE", "mrpc": "MRPC", "sst2": "SST-2"}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--model", default="minilm_l6")
    parser.add_argument("--max-train-samples", type=int, default=512, help="first N training rows per task")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=64, help="tokens per example (PSOFT's CoLA setting)")
    parser.add_argument("--eval-limit", type=int, default=200, help="first N dev rows (halved for selection)")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "results" / "runs")
    parser.add_argument("--tag", default="cmp", help="record tag: keeps these small runs apart from full ones")
    parser.add_argument("--jobs", type=int, default=1, help="parallel runs (Hydra's joblib launcher), one thread each")
    parser.add_argument("--retries", type=int, default=3, help="relaunch a sweep that died (finished runs are skipped)")
    parser.add_argument("--table-only", action="store_true", help="do not run; print the table from records")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run (after --)")
    return parser.parse_args(argv)


def sweep_command(args) -> list[str]:
    tasks = ",".join(f"glue_{t}" for t in args.tasks.split(","))
    return [sys.executable, str(REPO / "run.py"), "-m", f"task={tasks}", f"method={args.methods}",
            f"model={args.model}", f"rank={args.rank}", f"seed={args.seeds}",
            f"task.max_train_samples={args.max_train_samples}", f"task.eval_limit={args.eval_limit}",
            f"++task.max_seq_length={args.max_seq_length}",  # ++: the base config (task=matfac) lacks the key
            f"trainer.epochs={args.epochs}", f"trainer.batch_size={args.batch_size}", "trainer.max_steps=null",
            "trainer.checkpoint_every=0",  # short runs: the sweep resumes by skipping finished records
            f"paths.runs_dir={args.runs_dir}", *([f"tag={args.tag}"] if args.tag else []),
            *([f"hydra/launcher=local", f"hydra.launcher.n_jobs={args.jobs}"] if args.jobs > 1 else []),
            *args.overrides]


def table(args) -> tuple[str, list[str]]:
    """Read through the record schema (loft/tables/records.py): invalid or duplicate records are
    listed and left out; a cell resting on a run not ok or with skipped steps is marked ‡."""
    from loft.core.key import RunKey
    from loft.tables.records import load_records

    index = load_records(args.runs_dir)
    tasks, methods = args.tasks.split(","), args.methods.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    missing, rows = [], []
    header = ["method", *(LABEL.get(t, t) for t in tasks), "avg", "wall s/run"]
    for method in methods:
        cells, means, walls = [], [], []
        for task in tasks:
            values, marked = [], False
            group = index.get(f"glue_{task}", args.model, method, args.rank, args.tag)
            for seed in seeds:
                record, metric = group.get(seed), METRIC.get(task, "accuracy")
                value = record.data["metrics"].get(metric) if record else None
                if value is None:
                    path = args.runs_dir / RunKey(f"glue_{task}", args.model, method, args.rank, seed, args.tag).relative_path()
                    missing.append(str(path.relative_to(REPO) if path.is_relative_to(REPO) else path) + (
                        f" (no metric '{metric}'; it has: {', '.join(record.data['metrics']) or 'none'})" if record else ""))
                    continue
                values.append(100 * value)
                walls.append(record.data["wall_time_s"])
                marked = marked or bool(record.flag)
            if values:
                mean, std = float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
                means.append(mean)
                cells.append(f"{mean:.1f} ± {std:.1f}" + ("" if len(values) == len(seeds) else f" (n={len(values)})")
                             + ("‡" if marked else ""))
            else:
                cells.append("—")
        avg = f"{np.mean(means):.1f}" if len(means) == len(tasks) else "—"
        rows.append([method, *cells, avg, f"{np.mean(walls):.0f}" if walls else "—"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines), missing


def main(argv=None) -> int:
    args = parse(argv)
    if not args.tag:
        print("error: --tag must not be empty: the table finds the comparison's records by their tag", file=sys.stderr)
        return 2
    if not args.table_only:
        cmd = sweep_command(args)
        print("running:", " ".join(cmd), flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1"}
        for attempt in range(1 + args.retries):
            done = subprocess.run(cmd, cwd=REPO, env=env)
            if done.returncode == 0:
                break
            # A negative code is a signal (e.g. a shared machine's cleanup): relaunch, finished runs are skipped.
            print(f"error: the sweep exited with {done.returncode}" + ("; relaunching" if done.returncode < 0
                  and attempt < args.retries else "; the table shows the runs that finished"), file=sys.stderr)
            if done.returncode > 0:
                break
    text, missing = table(args)
    settings = (f"{args.model}, rank {args.rank}, seeds {args.seeds}, first {args.max_train_samples} training rows, "
                f"{args.epochs} epoch(s), batch {args.batch_size}, {args.max_seq_length} tokens, dev: first "
                f"{args.eval_limit} rows, halved (checkpoint picked on one half, reported on the other); other "
                f"settings from conf/task/glue_*.yaml" + (f"; overrides {' '.join(args.overrides)}" if args.overrides else ""))
    print(f"\nGLUE dev, main metric x 100, mean ± std over seeds ({settings})\n\n{text}")
    if missing:
        print(f"\n{len(missing)} records missing or without the metric:\n" + "\n".join(missing), file=sys.stderr)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(f"{settings}\n\n{text}\n")
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
