"""From a claim's records to its numbers: the learning rate each arm uses, per-seed values, and
the paired comparisons with their verdicts (loft/claims/verdict.py).

Learning rate: for each (task, arm), the lr of its grid whose mean selection-half metric over
the claim's seeds is best (ties: the first in the grid). The report-half metric never enters
this choice; it alone enters the comparisons.

Comparisons (one per task of the claim), each reduced to one oriented difference per seed
(positive = the claimed direction):

- quantity `score`, test greater: method's score - baseline's (sign flipped when lower is better);
  tests equivalent / differs: method's score - baseline's, against `margin`.
- `closeness`: |baseline - reference| - |method - reference| on the score (closer to full
  fine-tuning's score is the claimed side).
- `trajectory`: T(baseline) - T(method), T(x) = mean over steps of |log(L_x / L_reference)|, the
  training-loss curves of the same seed (same batches).
- `drop`: (baseline_high - baseline_low) - (method_high - method_low): the method loses less
  going from its `high` arm to its `low` arm (e.g. rank 16 -> 1). `method`/`baseline` are
  [high, low] pairs of arm labels.
- `trainable_params`, `train_time_s`: baseline's - method's (fewer / faster is the claimed side).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loft.core import schema
from loft.claims import verdict as vr
from loft.claims.spec import Arm, Claim, RunSpec

QUANTITIES = ("score", "closeness", "trajectory", "drop", "trainable_params", "train_time_s")


@dataclass
class ArmResult:
    """One (task, arm) at its selected lr: per-seed values (None where a record is missing)."""
    task: str
    arm: Arm
    lr: float | None
    selection: dict[float, float]          # lr -> mean selection metric over seeds
    records: dict[int, dict | None]        # seed -> record at the selected lr
    scores: dict[int, float | None]        # seed -> report-half metric x scale
    notes: list[str] = field(default_factory=list)

    def values(self, seeds) -> list[float | None]:
        return [self.scores.get(s) for s in seeds]


@dataclass
class Row:
    claim: str
    task: str
    comparison: dict
    diffs: list[float]
    interval: vr.Interval | None
    verdict: str
    why: str = ""


def load_record(runs_dir: Path, run: RunSpec) -> dict | None:
    path = Path(runs_dir) / run.key().relative_path()
    if not path.is_file():
        return None
    try:
        return schema.read(path)
    except schema.RecordError:
        return None


def _metric(record: dict | None, name: str) -> float | None:
    if record is None:
        return None
    value = record["metrics"].get(name)
    return None if value is None or not math.isfinite(value) else float(value)


def select_lr(claim: Claim, task: str, arm: Arm, runs_dir: Path) -> ArmResult:
    """The arm's lr from the selection-half metric alone; per-seed report-half scores at it."""
    sel_name, rep_name = claim.raw["selection_metric"], claim.raw["metric"][task]
    higher = bool(claim.raw.get("higher_is_better", True))
    scale = float(claim.raw.get("scale", 1.0))
    by_lr: dict[float, dict[int, dict | None]] = {}
    for lr in arm.lrs:
        by_lr[lr] = {s: load_record(runs_dir, RunSpec(task, claim.raw["setting"]["model"], arm, lr, s,
                                                       claim.raw["setting"]["name"],
                                                       tuple(claim.raw["setting"].get("overrides", []))))
                     for s in claim.seeds}
    result = ArmResult(task, arm, None, {}, {}, {})
    if any(rec is None for recs in by_lr.values() for rec in recs.values()):
        result.notes.append("records missing")
        return result
    for lr, recs in by_lr.items():
        values = [_metric(r, sel_name) for r in recs.values()]
        # a diverged run has no metric: that lr scores worst
        result.selection[lr] = float(np.mean(values)) if all(v is not None for v in values) else math.nan
    finite = {lr: v for lr, v in result.selection.items() if not math.isnan(v)}
    if not finite:
        result.notes.append("every lr diverged")
        return result
    best = (max if higher else min)(finite.values())
    result.lr = next(lr for lr in arm.lrs if finite.get(lr) == best)
    result.records = by_lr[result.lr]
    for seed, rec in result.records.items():
        value = _metric(rec, rep_name)
        result.scores[seed] = None if value is None else value * scale
        if rec["status"] != "ok" or rec["bad_steps"]:
            result.notes.append(f"seed {seed}: {schema.flag(rec)}")
    return result


def trajectory_gap(curve: list[float], reference: list[float]) -> float:
    """Mean over shared steps of |log(L / L_ref)|."""
    n = min(len(curve), len(reference))
    a, b = np.asarray(curve[:n], dtype=float), np.asarray(reference[:n], dtype=float)
    return float(np.mean(np.abs(np.log(a / b)))) if n else math.nan


def _loss_curve(record: dict | None) -> list[float] | None:
    history = (record or {}).get("history") or {}
    return history.get("loss") if isinstance(history, dict) else None


def _oriented(q: str, comp: dict, res: dict[str, ArmResult], seed: int, higher: bool) -> float | None:
    sign = 1.0 if higher else -1.0

    def score(label):
        return res[label].scores.get(seed)

    m, b = comp.get("method"), comp.get("baseline")
    if q == "score":
        s_m, s_b = score(m), score(b)
        if s_m is None or s_b is None:
            return None
        return sign * (s_m - s_b) if comp.get("test", "greater") == "greater" else s_m - s_b
    if q == "closeness":
        s_m, s_b, s_r = score(m), score(b), score(comp["reference"])
        return None if None in (s_m, s_b, s_r) else abs(s_b - s_r) - abs(s_m - s_r)
    if q == "trajectory":
        ref = _loss_curve(res[comp["reference"]].records.get(seed))
        c_m, c_b = _loss_curve(res[m].records.get(seed)), _loss_curve(res[b].records.get(seed))
        return None if None in (ref, c_m, c_b) else trajectory_gap(c_b, ref) - trajectory_gap(c_m, ref)
    if q == "drop":
        vals = [score(label) for label in (*m, *b)]
        if None in vals:
            return None
        m_hi, m_lo, b_hi, b_lo = vals
        return sign * ((b_hi - b_lo) - (m_hi - m_lo))
    rec_m, rec_b = res[m].records.get(seed), res[b].records.get(seed)
    if rec_m is None or rec_b is None:
        return None
    return float(rec_b[q]) - float(rec_m[q])  # trainable_params, train_time_s: fewer is the claim


def _labels(comp: dict) -> list[str]:
    out = []
    for key in ("method", "baseline", "reference"):
        value = comp.get(key)
        out += value if isinstance(value, list) else [value] if value else []
    return out


def analyse(claim: Claim, runs_dir: Path) -> tuple[dict[str, dict[str, ArmResult]], list[Row]]:
    """Per task: every arm's result; and one Row per (task, comparison)."""
    higher = bool(claim.raw.get("higher_is_better", True))
    results = {t: {a.label: select_lr(claim, t, a, runs_dir) for a in claim.arms} for t in claim.tasks}
    rows = []
    for task in claim.tasks:
        for comp in claim.raw["comparisons"]:
            q, test = comp.get("quantity", "score"), comp.get("test", "greater")
            if q not in QUANTITIES:
                raise ValueError(f"{claim.path}: quantity {q!r}; use one of {', '.join(QUANTITIES)}")
            for label in _labels(comp):
                claim.arm(label)  # names a real arm
            res = results[task]
            if any(res[label].lr is None for label in _labels(comp)):
                rows.append(Row(claim.id, task, comp, [], None, vr.NOT_RUN, "records missing"))
                continue
            diffs = [_oriented(q, comp, res, s, higher) for s in claim.seeds]
            if any(d is None for d in diffs):
                rows.append(Row(claim.id, task, comp, [], None, vr.NOT_RUN, "a metric is missing (diverged run?)"))
                continue
            interval = vr.paired_interval(diffs)
            rows.append(Row(claim.id, task, comp, diffs, interval, vr.verdict(interval, test, comp.get("margin"))))
    return results, rows
