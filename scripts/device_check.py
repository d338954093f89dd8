"""GPU check: the CUDA paths nothing else exercises, in one command of about 6 minutes.

    bash scripts/device_check.sh OUTDIR          # CUDA GPU: LLaMA-7B shapes, bf16 (installs .whl/ first)
    bash scripts/device_check.sh --cpu OUTDIR    # the same steps on small CPU shapes (CI runs this)

Steps, each a subprocess with its own time limit inside one overall budget (a hung kernel
costs its step, not the report):
  1. oracle  LoFT-AdamW oracle tests (`pytest -m device`) with the implementation on the device in
             float32, against the float64 definition and torch AdamW on the CPU (LOFT_TEST_DEVICE).
  2. e2e     `run.py -m method=lora,loft`, tiny_llama on wikitext2, bf16 on the device: two records.
  3. bench   `scripts/bench_step.py` at r = 16 and r = 4: LoRA, DoRA, LoFT, LoFT (simple) on the
             whole preset (the paper's Tables 8, 9, 12 analogues), then LoRA, PSOFT, LOFT
             (principal) on `orth_layers` layers of the same shapes (their full SVDs of every W0
             would take minutes on 32 layers; per-layer step ratios do not need them all).
Writes OUTDIR/device_check.json (every number, the device, driver and versions, per-step
pass/fail) and OUTDIR/device_check.log (every step's output). Exit 1 if a step failed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from loft.core.paths import REPO  # noqa: E402

PAPER_METHODS = ["lora", "dora", "loft", "loft_simple"]         # LoFT paper, Tables 8, 9, 12
ORTH_METHODS = ["lora", "psoft", "loft_orth_principal"]
RANKS = (16, 4)
STEP_FIELDS = ("cmd", "rc", "wall_s", "cpu_s", "time_limit_s", "error")
PACKAGES = ("torch", "transformers", "peft", "accelerate", "hydra-core", "omegaconf", "antlr4-python3-runtime",
            "safetensors", "tokenizers", "huggingface-hub", "numpy", "pytest")

# Sized so the CUDA check ends within ~6 minutes on one H200 (estimated, not yet measured: ~30 s of
# oracle tests, ~40 s end to end, ~150 s of 32-layer steps, ~120 s of 4-layer SVDs and steps);
# budget_s caps the sum, leaving a 10-minute device slot time for the wheels and one rerun of a step.
# The CPU mode runs the same steps in about a minute of CPU time.
MODES = {
    "cuda": dict(device="cuda", bench=["--preset", "llama7b"], orth_layers=4, oracle_select=["-m", "device"],
                 e2e=dict(block_size=256, batch_size=8, max_steps=30, train_blocks=256, eval_blocks=16),
                 timeouts=dict(oracle=90, e2e=90, bench=240, bench_orth=150), budget_s=420),
    # tiny shapes in bf16 (the GPU's dtype); figure2's float32-on-CPU run is in the normal suite already
    "cpu": dict(device="cpu", bench=["--preset", "tiny", "--dtype", "bfloat16", "--warmup", "1", "--samples", "1"],
                orth_layers=None,
                oracle_select=["-m", "device", "-k", "not figure2"],
                e2e=dict(block_size=64, batch_size=4, max_steps=4, train_blocks=16, eval_blocks=4),
                timeouts=dict(oracle=300, e2e=300, bench=300, bench_orth=300), budget_s=900),  # safety nets only
}


class Budget:
    """One deadline for all steps: a step gets min(its own limit, what is left)."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def limit(self, step_limit: float) -> float:
        return max(0.0, min(step_limit, self.end - time.monotonic()))


class Runner:
    def __init__(self, out: Path, budget: Budget, env: dict):
        self.log = (out / "device_check.log").open("w")
        self.budget, self.env = budget, env

    def __call__(self, name: str, argv: list[str], step_limit: float, extra_env: dict | None = None) -> dict:
        limit = self.budget.limit(step_limit)
        res = {"cmd": " ".join(argv), "time_limit_s": round(limit, 1)}
        if limit < 5:
            return {**res, "rc": None, "wall_s": 0.0, "stdout": "", "error": "skipped: the overall time budget is spent"}
        self.log.write(f"\n===== {name}: {res['cmd']}\n")
        self.log.flush()
        t0, c0 = time.monotonic(), children_cpu_s()
        try:
            p = subprocess.run(argv, cwd=REPO, env={**self.env, **(extra_env or {})}, capture_output=True, text=True,
                               timeout=limit)
            res.update(rc=p.returncode, stdout=p.stdout)
            self.log.write(p.stdout + p.stderr)
            if p.returncode:
                res["error"] = f"exit {p.returncode}: " + (p.stderr.strip().splitlines() or ["(no stderr)"])[-1][:400]
        except subprocess.TimeoutExpired as err:
            res.update(rc=None, stdout=as_text(err.stdout), error=f"timed out after {limit:.0f} s")
            self.log.write(f"{res['stdout']}{as_text(err.stderr)}\n(timed out after {limit:.0f} s)\n")
        res["wall_s"], res["cpu_s"] = round(time.monotonic() - t0, 2), round(children_cpu_s() - c0, 2)
        print(f"{name:14s} {'ok' if res.get('rc') == 0 else 'FAILED':6s} {res['wall_s']:7.1f} s wall {res['cpu_s']:7.1f} s cpu"
              + (f"  {res['error']}" if "error" in res else ""), flush=True)
        return res


def children_cpu_s() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def as_text(x) -> str:
    return x.decode(errors="replace") if isinstance(x, bytes) else (x or "")


# ----- step 1: oracle tests -----------------------------------------------------------------

def oracle_step(run: Runner, mode: dict, work: Path) -> dict:
    junit = work / "oracle.xml"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *mode["oracle_select"],
            f"--junitxml={junit}", "tests/unit/test_loft_adamw_oracle.py"]
    res = run("oracle", argv, mode["timeouts"]["oracle"], {"LOFT_TEST_DEVICE": mode["device"]})
    out = {k: res[k] for k in STEP_FIELDS if k in res and k != "error"}
    out.update(device=mode["device"], dtype="float32", reference="float64 on the CPU")
    if junit.is_file():
        suite = ET.parse(junit).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        out.update({k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")})
        out["tests_time_s"] = float(suite.get("time", 0))
        out["failed"] = [c.get("name") for c in suite.iter("testcase")
                         if c.find("failure") is not None or c.find("error") is not None]
    out["passed"] = res.get("rc") == 0 and out.get("tests", 0) > 0 and not out.get("failed")
    if "error" in res:
        out["error"] = res["error"]
    return out


# ----- step 2: end to end -------------------------------------------------------------------

def e2e_data_dir(work: Path) -> tuple[str, str]:
    """(data dir, what it is): $LOFT_DATA_DIR's WikiText-2 where it exists, else (on a machine
    without the data, such as a GPU machine lent bare) a corpus written from this repo's text."""
    env = os.environ.get("LOFT_DATA_DIR")
    if env and (Path(env) / "lm" / "wiki.test.raw").is_file():
        return env, f"WikiText-2 from {env}"
    text = "\n".join(p.read_text(encoding="utf-8") for d in ("loft", "tasks", "scripts", "tests")
                     for p in sorted((REPO / d).rglob("*.py")))
    lm = work / "data" / "lm"
    lm.mkdir(parents=True)
    half = len(text) // 2
    (lm / "wiki.train.raw").write_text(text[:half], encoding="utf-8")
    (lm / "wiki.test.raw").write_text(text[half:], encoding="utf-8")
    return str(work / "data"), "no LOFT_DATA_DIR with WikiText-2: this repository's Python sources (halves)"


def e2e_step(run: Runner, mode: dict, work: Path) -> dict:
    data_dir, data_note = e2e_data_dir(work)
    e = mode["e2e"]
    argv = [sys.executable, "run.py", "-m", "task=wikitext2", "model=tiny_llama", "method=lora,loft", "rank=4",
            f"trainer.device={mode['device']}", "trainer.dtype=bfloat16", f"trainer.max_steps={e['max_steps']}",
            f"trainer.batch_size={e['batch_size']}", f"task.block_size={e['block_size']}",
            f"task.max_train_samples={e['train_blocks']}", f"task.eval_limit={e['eval_blocks']}",
            "trainer.checkpoint_every=0", "logger=disabled", f"paths.data_dir={data_dir}",
            f"paths.runs_dir={work / 'runs'}", f"paths.checkpoint_dir={work / 'checkpoints'}",
            f"hydra.sweep.dir={work / 'multirun'}"]
    res = run("e2e", argv, mode["timeouts"]["e2e"], {"HF_HUB_OFFLINE": "1"})
    out = {k: res[k] for k in STEP_FIELDS if k in res}
    out["data"] = data_note
    runs = {}
    for path in re.findall(r"^record: (.+?)(?: \(status \w+\))?$", as_text(res.get("stdout")), flags=re.M):  # the runner prints "record: PATH (status S)"
        rec = json.loads(Path(path).read_text())
        loss = [x for x in rec.get("history", {}).get("loss", []) if x is not None]
        runs[rec["method"]] = {
            "record": Path(path).name, "device": rec.get("device"), "dtype": rec.get("dtype"),
            "status": rec.get("status"), "metrics": rec.get("metrics"), "wall_time_s": rec.get("wall_time_s"),
            "peak_memory_bytes": rec.get("peak_memory_bytes"), "trainable_params": rec.get("trainable_params"),
            "steps": len(loss), "first_loss": loss[0] if loss else None, "last_loss": loss[-1] if loss else None,
            "notes": rec.get("notes"), "versions": rec.get("versions")}
    out["runs"] = runs
    out["passed"] = res.get("rc") == 0 and sorted(runs) == ["loft", "lora"] and all(
        r["device"].startswith(mode["device"]) and r["dtype"] == "bfloat16" and r["steps"] > 0
        and all(math.isfinite(v) for v in (r["metrics"] or {"none": math.nan}).values())
        and r["status"] in (None, "ok") for r in runs.values())  # None: records before schema v2
    return out


# ----- step 3: step benchmark ---------------------------------------------------------------

def bench_step(run: Runner, mode: dict, name: str, methods: list[str], layers: int | None) -> dict:
    """Both ranks in one process; its JSON Lines keep the ranks that finished if time runs out."""
    argv = [sys.executable, "scripts/bench_step.py", *mode["bench"], "--rank", *map(str, RANKS), "--json",
            "--methods", *methods] + (["--layers", str(layers)] if layers else [])
    res = run(name, argv, mode["timeouts"][name])
    out = {k: res[k] for k in STEP_FIELDS if k in res}
    results = [json.loads(line) for line in as_text(res.get("stdout")).splitlines() if line.startswith("{")]
    out["results"] = {f"r{r['rank']}": r for r in results}

    def ok(r: dict) -> bool:
        ratios = r["ratios_vs_lora"]
        return not r["unavailable"] and all(m == "lora" or (math.isfinite(ratios.get(m, math.nan)) and ratios[m] > 0)
                                            for m in methods)
    out["passed"] = res.get("rc") == 0 and sorted(out["results"]) == sorted(f"r{r}" for r in RANKS) and all(
        ok(r) for r in results)
    return out


def paper_numbers(rank: int) -> dict:
    """LoFT paper, LLaMA-7B on one A100: step time x LoRA (Table 12) and memory increase over
    LoRA in % (Tables 8, 9; LoFT (simple): Table 11)."""
    from loft.tables import load_paper_table

    t12 = load_paper_table("loft_table12_latency")
    mem = load_paper_table("loft_table08_memory_r16" if rank == 16 else "loft_table09_memory_r4")
    t11 = load_paper_table("loft_table11_simple_memory")
    out = {}
    for m in PAPER_METHODS:
        mem_pct = (t11 if m == "loft_simple" else mem).value("llama_7b", m, rank, "memory_rel_incr")
        out[m] = {"step_x_lora": t12.value("llama_7b", m, None, f"r{rank}"), "memory_rel_incr_pct": mem_pct}
    return out


def summarise(steps: dict, rank: int) -> dict:
    """One row per method: its step time over LoRA's (measured side by side in its own run),
    peak memory over that run's LoRA, optimizer state, beside the paper."""
    rows, paper = {}, paper_numbers(rank)
    for step in ("bench", "bench_orth"):
        res = steps[step]["results"].get(f"r{rank}")
        if not res:
            continue
        lora_peak = res["methods"]["lora"]["peak_bytes"]
        for m, row in res["methods"].items():
            if m in rows:  # LoRA appears in both runs: keep the one on the whole preset
                continue
            rows[m] = {"step_x_lora": 1.0 if m == "lora" else res["ratios_vs_lora"].get(m),
                       "step_s": row["step_s"], "opt_step_s": row["opt_step_s"], "build_s": row.get("build_s"),
                       "peak_bytes": row["peak_bytes"], "state_bytes": row["state_bytes"],
                       "peak_rel_incr_pct": None if not (lora_peak and row["peak_bytes"]) else
                       round(100 * (row["peak_bytes"] / lora_peak - 1), 2),
                       "trainable_params": row["trainable_params"], "layers": res["setup"]["model"]["layers"],
                       "paper": paper.get(m)}
    return rows


# ----- environment --------------------------------------------------------------------------

def environment(site: str | None) -> dict:
    import torch

    from loft.records import git_sha

    pkgs = {}
    for name in PACKAGES:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        where = str(dist.locate_file(""))
        pkgs[name] = {"version": dist.version, "from_wheels": bool(site) and where.startswith(site)}
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
           "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
           "packages": pkgs, "wheel_site": site, "git_sha": git_sha()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = {"name": props.name, "memory_bytes": props.total_memory, "capability": f"{props.major}.{props.minor}",
                      "multiprocessors": props.multi_processor_count, "count": torch.cuda.device_count()}
    if shutil.which("nvidia-smi"):
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True)
        env["nvidia_smi"] = q.stdout.strip() or q.stderr.strip()
    return env


# ----- main ---------------------------------------------------------------------------------

def table(summary: dict) -> str:
    lines = [f"{'method':22s} " + " ".join(f"{'x lora r=' + str(r):>11s} {'paper':>6s} {'peak +%':>8s} {'paper':>6s}"
                                           for r in RANKS)]
    methods = dict.fromkeys(m for r in RANKS for m in summary.get(f"r{r}", {}))
    fmt = lambda x, f: "-" if x is None else format(x, f)  # noqa: E731
    for m in methods:
        cells = []
        for r in RANKS:
            row = summary.get(f"r{r}", {}).get(m, {})
            p = row.get("paper") or {}
            cells.append(f"{fmt(row.get('step_x_lora'), '.3f'):>11s} {fmt(p.get('step_x_lora'), '.2f'):>6s} "
                         f"{fmt(row.get('peak_rel_incr_pct'), '+.1f'):>8s} {fmt(p.get('memory_rel_incr_pct'), '+.1f'):>6s}")
        lines.append(f"{m:22s} " + " ".join(cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", type=Path, help="where device_check.json and device_check.log go")
    ap.add_argument("--cpu", action="store_true", help="the same steps on small CPU shapes (no GPU needed)")
    ap.add_argument("--budget-s", type=float, help="overall time limit of the steps (default: the mode's)")
    args = ap.parse_args(argv)
    mode_name = "cpu" if args.cpu else "cuda"
    mode = MODES[mode_name]
    import torch

    if mode_name == "cuda" and not torch.cuda.is_available():
        print("error: torch sees no CUDA device; run with --cpu for the CPU version of this check", file=sys.stderr)
        return 2
    try:
        args.outdir.mkdir(parents=True, exist_ok=True)
        (args.outdir / ".write-test").touch()
        (args.outdir / ".write-test").unlink()
    except OSError as err:
        print(f"error: cannot write to {args.outdir} ({err.strerror}); give a writable folder", file=sys.stderr)
        return 2

    t0, started = time.monotonic(), dt.datetime.now(dt.timezone.utc)
    budget = Budget(mode["budget_s"] if args.budget_s is None else args.budget_s)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1" if args.cpu else "8")}
    run = Runner(args.outdir, budget, env)
    report = {"check": "device_check", "schema": 1, "mode": mode_name, "started_utc": started.isoformat(timespec="seconds"),
              "environment": environment(os.environ.get("LOFT_WHEEL_SITE")), "settings": mode, "steps": {}}
    with tempfile.TemporaryDirectory(prefix="loft-device-check-") as tmp:
        work = Path(tmp)
        steps = report["steps"]
        steps["oracle"] = oracle_step(run, mode, work)
        steps["e2e"] = e2e_step(run, mode, work)
        steps["bench"] = bench_step(run, mode, "bench", PAPER_METHODS, None)
        steps["bench_orth"] = bench_step(run, mode, "bench_orth", ORTH_METHODS, mode["orth_layers"])
    summary = report["bench_summary"] = {f"r{r}": summarise(steps, r) for r in RANKS}
    report["passed"] = all(s["passed"] for s in steps.values())
    report["failed_steps"] = [k for k, s in steps.items() if not s["passed"]]
    report["wall_s"] = round(time.monotonic() - t0, 1)
    (args.outdir / "device_check.json").write_text(json.dumps(report, indent=1, default=str))
    print(table(summary))
    print(f"{'passed' if report['passed'] else 'FAILED: ' + ', '.join(report['failed_steps'])} in {report['wall_s']} s; "
          f"{args.outdir / 'device_check.json'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
