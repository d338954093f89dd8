#!/usr/bin/env python
"""Run every experiment preset, then render the tables (`make reproduce-tables [SCALE=cpu]`).

    python scripts/reproduce_tables.py --scale paper            # conf/experiment/*.yaml (GPU)
    python scripts/reproduce_tables.py --scale cpu              # conf/experiment/cpu/*.yaml (offline miniatures)
    python scripts/reproduce_tables.py --scale cpu --only table2 -- logger=disabled
    python scripts/reproduce_tables.py --dry-run                # list what would run

Each preset is one `python run.py -m +experiment=<name> [overrides]` subprocess, so a failing
preset does not stop the others (a failing job does stop the rest of its own sweep: Hydra's
multirun ends at the first job that exits non-zero). Resumable: launched again, the runner
skips finished runs and continues interrupted ones from their checkpoint (resume=auto).
Presets are read through Hydra's compose API (loft/tables/presets.py); one whose swept task,
model or method config does not exist yet, or that does not compose, is reported and skipped.
Overrides after `--` go to every run (e.g. paths.runs_dir=..., logger=disabled); a
paths.runs_dir override is also where the tables are built from.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from loft.core.paths import REPO  # noqa: E402

from loft.tables.presets import pending_configs, preset_names  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=("paper", "cpu"), default="paper")
    p.add_argument("--only", help="regular expression: run only presets whose name matches")
    p.add_argument("--dry-run", action="store_true", help="list the commands, run nothing")
    p.add_argument("--no-tables", action="store_true", help="skip make_tables at the end")
    p.add_argument("--tables-dir", type=Path, default=REPO / "results" / "tables")
    p.add_argument("--figures-dir", type=Path, default=REPO / "results" / "figures")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every run (after --)")
    args = p.parse_args(argv)

    env = dict(os.environ)
    shared = REPO.parent / "shared" / "data"
    if "LOFT_DATA_DIR" not in env and not (REPO / "data").exists() and shared.exists():
        env["LOFT_DATA_DIR"] = str(shared)  # the Makefile's default, for direct invocations
        print(f"[reproduce] LOFT_DATA_DIR={shared}", flush=True)
    names = [n for n in preset_names(args.scale) if not args.only or re.search(args.only, n)]
    ran, failed, pending = [], [], []
    for name in names:
        missing = pending_configs(name)  # composed by Hydra, as run.py will
        if missing:
            pending.append(name)
            print(f"[reproduce] pending {name}: needs {', '.join(missing)}", flush=True)
            continue
        cmd = [sys.executable, "run.py", "-m", f"+experiment={name}", *args.overrides]
        print(f"[reproduce] {' '.join(cmd[1:])}", flush=True)
        if args.dry_run:
            continue
        start = time.perf_counter()
        rc = subprocess.run(cmd, cwd=REPO, env=env).returncode
        (ran if rc == 0 else failed).append(name)
        print(f"[reproduce] {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.perf_counter() - start:.0f} s",
              flush=True)

    print(f"[reproduce] {len(ran)} presets done, {len(failed)} failed, {len(pending)} pending (configs missing)")
    for name in failed:
        print(f"[reproduce]   failed: {name} (rerun: python run.py -m +experiment={name})")
    if not args.no_tables and not args.dry_run:
        from loft.tables import make_tables

        runs_dir = REPO / "results" / "runs"
        for o in args.overrides:
            if o.startswith("paths.runs_dir="):
                runs_dir = Path(o.split("=", 1)[1])
                runs_dir = runs_dir if runs_dir.is_absolute() else REPO / runs_dir
        from loft.variant import variant_of

        variant = variant_of(args.overrides)  # overrides beyond the presets' name their records' variant
        if variant:
            print(f"[reproduce] tables from the records of variant {variant}", flush=True)
        out = make_tables(runs_dir, args.tables_dir, args.figures_dir, variant=variant)
        print(f"[reproduce] wrote {len(out['tables'])} table files and {len(out['figures'])} figures "
              f"({args.tables_dir / 'README.md'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
