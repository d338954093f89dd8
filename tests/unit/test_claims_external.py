"""Verdicts of the claims suite's `tests` and `bench` claims from stored results (loft/claims/external.py)."""
from __future__ import annotations

import pytest

from loft.claims import external
from loft.claims import verdict as vr
from loft.claims.spec import load_claims
from loft.core.paths import REPO


def bench_claim():
    return next(c for c in load_claims(REPO / "conf" / "claims") if c.kind == "bench")


def bench_result(loft_time16=2.0, simple_time16=1.3, loft_peak16=130, loft_peak4=110):
    def one(rank, loft_time, simple_time, loft_peak):
        methods = {"lora": {"peak_bytes": 100, "trainable_params": 50},
                   "loft": {"peak_bytes": loft_peak, "trainable_params": 50},
                   "loft_simple": {"peak_bytes": 105, "trainable_params": 50},
                   "dora": {"peak_bytes": 120, "trainable_params": 55}}
        return {"rank": rank, "methods": methods,
                "ratios_vs_lora": {"loft": loft_time, "loft_simple": simple_time, "dora": 1.5}}
    return {"results": [one(16, loft_time16, simple_time16, loft_peak16), one(4, 1.5, 1.2, loft_peak4)]}


def test_paper_rows_come_from_results_paper():
    paper = external.paper_values(bench_claim())
    assert paper[("time_ratio", "loft", 16)] == pytest.approx(3.23)      # Table 12
    assert paper[("time_ratio", "loft_simple", 4)] == pytest.approx(1.27)
    assert paper[("memory_increase", "loft", 16)] == pytest.approx(0.2565)  # Table 8
    assert paper[("memory_increase", "loft", 4)] == pytest.approx(0.0671)   # Table 9


def test_bench_checks_on_our_ratios():
    claim = bench_claim()
    ours = external.bench_values(bench_result())
    assert ours[("memory_increase", "loft", 16)] == pytest.approx(0.30)
    assert ours[("trainable_params_ratio", "loft", 16)] == 1.0
    assert external.bench_verdict(claim, bench_result())[0] == vr.HOLDS
    # LoFT (simple) slower than LoFT at r = 16: an ordering of the paper fails
    assert external.bench_verdict(claim, bench_result(loft_time16=1.2))[0] == vr.FAILS
    assert external.bench_verdict(claim, None)[0] == vr.NOT_RUN


def test_tests_verdict():
    assert external.tests_verdict({"returncode": 0, "outcomes": {"a::b": "passed"}}) == vr.HOLDS
    assert external.tests_verdict({"returncode": 0, "outcomes": {"a::b": "passed", "a::c": "skipped"}}) == vr.FAILS
    assert external.tests_verdict({"returncode": 1, "outcomes": {"a::b": "failure"}}) == vr.FAILS
    assert external.tests_verdict(None) == vr.NOT_RUN
