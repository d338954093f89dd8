"""scripts/claims.py end to end on two tiny runs: trains what is missing through run.py, names
the records by their tag, skips them by path the second time, and renders the report."""
from __future__ import annotations

import os
import runpy
import shutil

from loft.core import schema
from loft.claims.spec import load_claim
from loft.core.paths import REPO

from tests.conftest import DATA_DIR


def claims_main(argv):
    module = runpy.run_path(str(REPO / "scripts" / "claims.py"), run_name="claims_smoke")
    return module["main"](argv)


def test_two_run_smoke(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOFT_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    folder = tmp_path / "claims"
    folder.mkdir()
    shutil.copy(REPO / "tests" / "data" / "claims_smoke.yaml", folder / "smoke.yaml")
    runs, out = tmp_path / "runs", tmp_path / "out"
    args = ["--claims", str(folder), "--runs-dir", str(runs), "--out", str(out), "--jobs", "2"]

    assert claims_main(args) == 0
    claim = load_claim(folder / "smoke.yaml")
    records = [schema.read(runs / r.key().relative_path()) for r in claim.runs()]
    assert [r["method"] for r in records] == ["lora", "loft"]
    assert all(r["variant"] == "cl-smoke-lr0.01" for r in records)
    for r in records:  # the LM eval blocks were halved: both halves reported, disjoint
        assert {"eval_loss", "selection_eval_loss"} <= set(r["metrics"])
        assert r["metrics"]["eval_blocks"] == r["metrics"]["selection_blocks"] == 2
    text = (out / "README.md").read_text()
    assert "smoke_tiny_llama" in text and "inconclusive at this scale" in text  # one seed: no interval

    mtimes = [os.path.getmtime(runs / r.key().relative_path()) for r in claim.runs()]
    capsys.readouterr()
    assert claims_main(args) == 0
    assert "0 runs missing" in capsys.readouterr().out  # done = record exists and reads valid
    assert mtimes == [os.path.getmtime(runs / r.key().relative_path()) for r in claim.runs()]
