"""The papers' claims, each a preregistered comparison with a verdict (conf/claims/*.yaml).

    python scripts/claims.py                    # run what is missing, then write results/claims/README.md
    python scripts/claims.py --render-only      # the report from the committed records alone (make claims)
    python scripts/claims.py --dry-run          # list the missing runs and their run.py commands
    python scripts/claims.py --only loft_rank_robust --jobs 2

Training runs go through run.py (records under results/claims/runs/, named by tag); a run is done
when its record exists and reads valid (loft.core.schema.read). `tests` claims run their pytest node
ids and `bench` claims scripts/bench_step.py, once each (results under results/claims/tests|bench/;
--rerun-external runs them again). The claim format, the lr selection and the verdict rule are
documented in loft/claims/spec.py, analysis.py and verdict.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loft.claims import execute, report  # noqa: E402
from loft.claims.spec import load_claims  # noqa: E402
from loft.core.errors import ConfigError  # noqa: E402


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=Path, default=REPO / "conf" / "claims", help="folder of claim files")
    ap.add_argument("--runs-dir", type=Path, default=REPO / "results" / "claims" / "runs")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "claims", help="report folder")
    ap.add_argument("--only", nargs="+", help="claim ids to run (default: all; the report shows all)")
    ap.add_argument("--jobs", type=int, default=2, help="run.py processes at a time (one thread each)")
    ap.add_argument("--render-only", action="store_true", help="train nothing; render the report")
    ap.add_argument("--dry-run", action="store_true", help="list the missing runs and exit")
    ap.add_argument("--skip-external", action="store_true", help="do not run tests/bench claims")
    ap.add_argument("--rerun-external", action="store_true", help="run tests/bench claims even if results exist")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    try:
        every_claim = claims = load_claims(args.claims)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.only:
        unknown = set(args.only) - {c.id for c in claims}
        if unknown:
            print(f"error: no claim {', '.join(sorted(unknown))} in {args.claims}", file=sys.stderr)
            return 2
        claims = [c for c in claims if c.id in args.only]
    runs_dir = args.runs_dir.resolve()
    if args.dry_run:
        todo = execute.groups(execute.missing_runs(claims, runs_dir))
        for group in todo:
            print(" ".join(execute.run_command(group, runs_dir, Path("/tmp/claims-ckpt"))[1:]))
        print(f"{sum(len(g) for g in todo)} runs missing in {len(todo)} groups", file=sys.stderr)
        return 0
    if not args.render_only:
        left = execute.execute_runs(claims, runs_dir, args.jobs, log=lambda m: print(m, flush=True))
        if left:
            print(f"{len(left)} runs still missing (see the log above):\n" + "\n".join(left), file=sys.stderr)
        # after the training runs: the benchmark times steps, so it runs alone
        for claim in claims:
            done = (args.out / claim.kind / f"{claim.id}.json").is_file()
            if claim.kind in ("tests", "bench") and not args.skip_external and (args.rerun_external or not done):
                print(f"{claim.kind}: {claim.id}", flush=True)
                (execute.run_tests if claim.kind == "tests" else execute.run_bench)(claim, args.out)
    # the report always covers every claim: --only limits what runs, never what the report shows
    path = report.write_report(every_claim, runs_dir, args.out, claims_dir=args.claims)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
