"""Running what the claims need: missing training runs through run.py (one `run.py -m` process
per group of seeds, `jobs` processes at a time), the pytest node ids of `tests` claims, and
scripts/bench_step.py for `bench` claims. A run is done when its record exists and reads valid
(loft.core.schema.read), decided by path, never by asking run.py; results of tests and benches are
JSON files under the report folder, so rendering needs none of this.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loft.claims.analysis import load_record
from loft.claims.spec import Claim, RunSpec, all_runs
from loft.core.paths import REPO
from loft.records import git_sha

# Settings every claim run shares that do not change what it computes (no checkpoints, no
# adapter files, no W&B): the records are the only output.
RUN_FIXED = ("logger=disabled", "trainer.checkpoint_every=0", "trainer.save_adapter=false")


def missing_runs(claims: list[Claim], runs_dir: Path) -> list[RunSpec]:
    return [r for r in all_runs(claims) if load_record(runs_dir, r) is None]


def groups(runs: list[RunSpec]) -> list[list[RunSpec]]:
    """Runs that differ only by seed, in the order the claims list them."""
    out: dict[tuple, list[RunSpec]] = {}
    for run in runs:
        out.setdefault(run.group(), []).append(run)
    return list(out.values())


def run_command(group: list[RunSpec], runs_dir: Path, checkpoint_dir: Path) -> list[str]:
    seeds = ",".join(str(r.seed) for r in group)
    return [sys.executable, str(REPO / "run.py"), "-m", *group[0].overrides(), f"seed={seeds}",
            f"paths.runs_dir={runs_dir}", f"paths.checkpoint_dir={checkpoint_dir}", *RUN_FIXED]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def execute_runs(claims: list[Claim], runs_dir: Path, jobs: int = 1, log=print) -> list[str]:
    """Train every missing run; returns the record paths still missing afterwards."""
    todo = groups(missing_runs(claims, runs_dir))
    log(f"{sum(len(g) for g in todo)} runs missing in {len(todo)} groups; {jobs} at a time")
    checkpoint_dir = Path(tempfile.mkdtemp(prefix="claims-ckpt-"))

    def one(group):
        cmd = run_command(group, runs_dir, checkpoint_dir)
        start = time.time()
        done = subprocess.run(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        tail = "" if done.returncode == 0 else " | " + " ".join(done.stderr.strip().splitlines()[-3:])
        log(f"[{time.strftime('%H:%M:%S')}] rc={done.returncode} {time.time() - start:.0f}s {' '.join(cmd[3:])}{tail}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, todo))
    return [str(r.key().relative_path()) for r in missing_runs(claims, runs_dir)]


def run_tests(claim: Claim, out: Path) -> dict:
    """Run the claim's pytest node ids; store each outcome (junit XML) as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *claim.raw["tests"]]
        done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True)
        outcomes = {}
        if xml.is_file():
            for case in ET.parse(xml).getroot().iter("testcase"):
                node = f"{case.get('file') or case.get('classname', '').replace('.', '/') + '.py'}::{case.get('name')}"
                bad = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
                outcomes[node] = bad[0] if bad else "passed"
    result = {"id": claim.id, "command": " ".join(["python", "-m", "pytest", "-q", *claim.raw["tests"]]),
              "returncode": done.returncode, "outcomes": outcomes, "summary": done.stdout.strip().splitlines()[-1:],
              "git_sha": git_sha(REPO), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write(out / "tests" / f"{claim.id}.json", result)
    return result


def run_bench(claim: Claim, out: Path) -> dict:
    """scripts/bench_step.py with the claim's arguments; one JSON object per rank."""
    cmd = [sys.executable, str(REPO / "scripts" / "bench_step.py"), *map(str, claim.raw["bench_args"]), "--json"]
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    result = {"id": claim.id, "command": " ".join(["python", "scripts/bench_step.py", *map(str, claim.raw["bench_args"]), "--json"]),
              "returncode": done.returncode, "results": results, "stderr_tail": done.stderr.strip().splitlines()[-3:],
              "git_sha": git_sha(REPO), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write(out / "bench" / f"{claim.id}.json", result)
    return result


def _write(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
