"""scripts/device_check.sh --cpu: the GPU check's every step on small CPU shapes, so the script is
known to work before GPU time is spent on it. Run as on a bare GPU machine: no LOFT_DATA_DIR."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import device_check  # noqa: E402

STEPS = {"oracle", "e2e", "bench", "bench_orth"}


def check(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if k != "LOFT_DATA_DIR"}
    p = subprocess.run(["bash", str(REPO / "scripts" / "device_check.sh"), *args, str(tmp_path)], cwd=REPO,
                       env={**env, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=900)
    path = tmp_path / "device_check.json"
    assert path.is_file(), p.stdout[-2000:] + p.stderr[-2000:]
    return p, json.loads(path.read_text())


@pytest.fixture(scope="module")
def cpu_report(tmp_path_factory):
    return check(tmp_path_factory.mktemp("device-check"), "--cpu")


@pytest.mark.slow
def test_cpu_mode_passes_every_step(cpu_report):
    p, rep = cpu_report
    assert p.returncode == 0 and rep["passed"], p.stdout[-3000:]
    assert rep["mode"] == "cpu" and set(rep["steps"]) == STEPS and rep["failed_steps"] == []
    oracle = rep["steps"]["oracle"]
    assert oracle["device"] == "cpu" and oracle["dtype"] == "float32"
    assert oracle["tests"] >= 20 and oracle["failures"] == oracle["errors"] == oracle["skipped"] == 0
    assert rep["environment"]["packages"]["torch"]["version"] == torch.__version__


@pytest.mark.slow
def test_cpu_mode_end_to_end_records(cpu_report):
    e2e = cpu_report[1]["steps"]["e2e"]
    assert "Python sources" in e2e["data"]  # the corpus a machine without the data trains on
    assert set(e2e["runs"]) == {"lora", "loft"}
    steps = device_check.MODES["cpu"]["e2e"]["max_steps"]
    for run in e2e["runs"].values():
        assert (run["device"], run["dtype"], run["steps"]) == ("cpu", "bfloat16", steps)
        assert math.isfinite(run["metrics"]["perplexity"]) and run["metrics"]["perplexity"] > 1
    assert e2e["runs"]["lora"]["trainable_params"] == e2e["runs"]["loft"]["trainable_params"]  # same factors


@pytest.mark.slow
def test_cpu_mode_bench_numbers_beside_the_paper(cpu_report):
    rep = cpu_report[1]
    for r in device_check.RANKS:
        rows = rep["bench_summary"][f"r{r}"]
        assert set(rows) == set(device_check.PAPER_METHODS) | set(device_check.ORTH_METHODS)
        for m, row in rows.items():
            assert row["step_x_lora"] > 0 and row["peak_bytes"] > 0 and row["state_bytes"] > 0, m
        # measured optimizer state = the closed forms of bench_step (Appendix E.2 accounting, ours)
        forms = rep["steps"]["bench"]["results"][f"r{r}"]["state_formulas"]["state_bytes"]
        assert rows["lora"]["state_bytes"] == forms["ours_lora"]
        assert rows["loft"]["state_bytes"] == forms["ours_loft"]
    paper = {r: rep["bench_summary"][f"r{r}"]["loft"]["paper"] for r in device_check.RANKS}
    assert paper[16] == {"step_x_lora": 3.23, "memory_rel_incr_pct": 25.65}  # Tables 12 and 8
    assert paper[4] == {"step_x_lora": 2.26, "memory_rel_incr_pct": 6.71}    # Tables 12 and 9


def test_steps_out_of_time_fail_the_check(tmp_path):
    p, rep = check(tmp_path, "--cpu", "--budget-s", "0")
    assert p.returncode == 1 and not rep["passed"] and set(rep["failed_steps"]) == STEPS
    assert all(s["error"].startswith("skipped") for s in rep["steps"].values())


def test_gpu_mode_without_cuda_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_check.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: torch sees no CUDA device; run with --cpu")
