#!/usr/bin/env python
"""Render the result tables and figures from the run records, beside the papers' numbers.

    python scripts/make_tables.py                        # results/runs -> results/tables/*.md|.tex, results/figures/*.png
    python scripts/make_tables.py --runs-dir /tmp/runs --only table02

A table is rendered when some record feeds it; its rows and columns follow the paper's
table (results/paper/*.csv), each cell "ours (paper)". The mapping from paper tables to
records is loft/tables/specs.yaml.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from loft.core.paths import REPO  # noqa: E402

from loft.tables import make_tables  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs-dir", type=Path, default=REPO / "results" / "runs")
    p.add_argument("--tables-dir", type=Path, default=REPO / "results" / "tables")
    p.add_argument("--figures-dir", type=Path, default=REPO / "results" / "figures")
    p.add_argument("--only", help="render only tables/figures whose name contains this")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--no-latex", action="store_true")
    p.add_argument("--variant", default="", help="read the records of this variant (a record name's suffix, e.g. "
                   "'model.m=48,trainer.max_steps=30') as the default ones")
    args = p.parse_args(argv)
    out = make_tables(args.runs_dir, args.tables_dir, None if args.no_figures else args.figures_dir, args.only,
                      latex=not args.no_latex, variant=args.variant)
    for path in out["tables"] + out["figures"]:
        print(f"wrote {path}")
    if out["skipped"]:
        print("no records yet for: " + ", ".join(out["skipped"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
