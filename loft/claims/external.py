"""Verdicts of `tests` and `bench` claims from their stored results (results/claims/tests|bench/).

tests: holds when pytest exited 0 and every collected case passed (a skip is not a pass).
bench: the ratios of scripts/bench_step.py beside the paper's rows (results/paper/*.csv), and the
orderings written in the claim file's `checks`, evaluated on the medians over timed rounds;
holds when every check does. A benchmark has no seeds, so no interval: the report says so.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from loft.claims import verdict as vr
from loft.claims.spec import Claim
from loft.core.paths import REPO

PAPER = REPO / "results" / "paper"


def stored(claim: Claim, out: Path) -> dict | None:
    path = Path(out) / claim.kind / f"{claim.id}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def tests_verdict(result: dict | None) -> str:
    if not result or not result.get("outcomes"):
        return vr.NOT_RUN
    ok = result["returncode"] == 0 and all(v == "passed" for v in result["outcomes"].values())
    return vr.HOLDS if ok else vr.FAILS


def paper_rows(name: str) -> list[dict]:
    lines = [ln for ln in (PAPER / name).read_text().splitlines() if ln and not ln.startswith("#")]
    return list(csv.DictReader(lines))


def _number(text: str) -> float:
    return float(str(text).replace("×", "").replace("%", "").replace("+", ""))


def paper_values(claim: Claim) -> dict[tuple[str, str, int], float]:
    """(quantity, method, rank) -> the paper's number (time: x LoRA; memory: relative increase)."""
    spec, out = claim.raw.get("paper_rows", {}), {}
    t = spec.get("time_ratio")
    if t:
        rows = {r["method"]: r for r in paper_rows(t["file"])}
        for ours, theirs in t["methods"].items():
            for rank, col in t["columns"].items():
                if theirs in rows and rows[theirs].get(col):
                    out[("time_ratio", ours, int(rank))] = _number(rows[theirs][col])
    m = spec.get("memory_increase")
    if m:
        for rank, name in m["files"].items():
            rows = {r["method"]: r for r in paper_rows(name)}
            for ours, theirs in m["methods"].items():
                if theirs in rows:
                    out[("memory_increase", ours, int(rank))] = _number(rows[theirs][m["column"]]) / 100
    return out


def bench_values(result: dict | None) -> dict[tuple[str, str, int], float]:
    """(quantity, method, rank) -> ours, from the stored bench_step.py JSON (one object per rank)."""
    out = {}
    for res in (result or {}).get("results", []):
        rank, methods = int(res["rank"]), res["methods"]
        lora = methods.get("lora", {})
        for name, ratio in res.get("ratios_vs_lora", {}).items():
            out[("time_ratio", name, rank)] = float(ratio)
        for name, row in methods.items():
            if row.get("peak_bytes") and lora.get("peak_bytes"):
                out[("memory_increase", name, rank)] = row["peak_bytes"] / lora["peak_bytes"] - 1
            if row.get("trainable_params") and lora.get("trainable_params"):
                out[("trainable_params_ratio", name, rank)] = row["trainable_params"] / lora["trainable_params"]
    return out


def check(c: dict, ours: dict) -> bool | None:
    """One ordering of the claim file on our medians; None when a number is missing."""
    key = (c["quantity"], c["method"], int(c["rank"]))
    value = ours.get(key)
    if value is None:
        return None
    if "above" in c:
        other = ours.get((c["quantity"], c["above"], int(c["rank"])))
        return None if other is None else value > other
    if "above_rank" in c:
        other = ours.get((c["quantity"], c["method"], int(c["above_rank"])))
        return None if other is None else value > other
    if "above_value" in c:
        return value > float(c["above_value"])
    if "equals_value" in c:
        return abs(value - float(c["equals_value"])) < 1e-9
    raise ValueError(f"check {c}: use above, above_rank, above_value or equals_value")


def bench_verdict(claim: Claim, result: dict | None) -> tuple[str, list[tuple[dict, bool | None]]]:
    ours = bench_values(result)
    checks = [(c, check(c, ours)) for c in claim.raw.get("checks", [])]
    if not ours or any(ok is None for _, ok in checks):
        return vr.NOT_RUN, checks
    return (vr.HOLDS if all(ok for _, ok in checks) else vr.FAILS), checks
