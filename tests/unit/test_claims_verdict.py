"""The claims suite's verdict rule and lr selection, on hand-made records (loft/claims/)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from loft.claims import verdict as vr
from loft.claims.analysis import analyse, select_lr, trajectory_gap
from loft.claims.spec import load_claim
from loft.core.errors import ConfigError

SEEDS = [0, 1, 2, 3]


def claim_file(tmp_path: Path, comparisons: list[dict], arms=None, higher=True) -> Path:
    raw = {"id": "toy", "paper": "LoFT", "source": "test", "statement": "A beats B", "kind": "runs",
           "setting": {"name": "toy", "model": "m", "overrides": []}, "tasks": ["t"], "metric": {"t": "acc"},
           "selection_metric": "sel", "scale": 100, "higher_is_better": higher, "seeds": SEEDS,
           "arms": arms or [{"method": "a", "rank": 4, "lr": [0.1, 0.2]}, {"method": "b", "rank": 4, "lr": [0.1, 0.2]}],
           "comparisons": comparisons}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def write_records(runs: Path, claim, values: dict) -> None:
    """values[(arm label, lr)] = (selection metric per seed, report metric per seed[, loss curves])."""
    for run in claim.runs():
        sel, rep, *curves = values[(run.arm.label, run.lr)]
        i = claim.seeds.index(run.seed)
        key = run.key()
        data = {"schema": 2, "task": key.task, "model": key.model, "method": key.method, "rank": key.rank,
                "seed": key.seed, "variant": key.variant, "status": "ok", "bad_steps": 0, "config_hash": "x",
                "metrics": {"sel": sel[i], "acc": rep[i]}, "trainable_params": 10, "train_time_s": 1.0,
                "history": {"loss": curves[0][i]} if curves else {}}
        path = runs / key.relative_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))


def analysed(tmp_path, a_report, b_report, test="greater", margin=None):
    entry = {"quantity": "score", "method": "a", "baseline": "b", "test": test}
    if margin is not None:
        entry["margin"] = margin
    claim = load_claim(claim_file(tmp_path, [entry]))
    same = [0.5] * 4
    write_records(tmp_path / "runs", claim, {("a", 0.1): (same, a_report), ("a", 0.2): ([0.4] * 4, [0.0] * 4),
                                             ("b", 0.1): (same, b_report), ("b", 0.2): ([0.4] * 4, [0.0] * 4)})
    return analyse(claim, tmp_path / "runs")[1][0]


def test_interval_is_the_t_interval_of_the_paired_differences():
    d = [1.0, 2.5, 0.5, 2.0]
    i = vr.paired_interval(d)
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=np.mean(d), scale=stats.sem(d))
    assert i.mean == pytest.approx(1.5) and i.low == pytest.approx(lo) and i.high == pytest.approx(hi)
    assert math.isnan(vr.paired_interval([1.0]).low)  # one seed: no interval, so no verdict either way
    assert vr.verdict(vr.paired_interval([1.0])) == vr.OPEN


def test_clear_win_holds(tmp_path):
    row = analysed(tmp_path, [0.80, 0.82, 0.81, 0.83], [0.70, 0.71, 0.69, 0.72])
    assert row.verdict == vr.HOLDS
    assert row.diffs == pytest.approx([10, 11, 12, 11])  # points, paired by seed


def test_clear_loss_does_not_hold(tmp_path):
    row = analysed(tmp_path, [0.60, 0.61, 0.62, 0.60], [0.70, 0.71, 0.69, 0.72])
    assert row.verdict == vr.FAILS and row.interval.high < 0


def test_overlapping_noise_is_inconclusive(tmp_path):
    row = analysed(tmp_path, [0.70, 0.75, 0.68, 0.74], [0.72, 0.70, 0.73, 0.71])
    assert row.verdict == vr.OPEN and row.interval.low < 0 < row.interval.high


def test_equivalence_and_difference_use_the_written_margin(tmp_path):
    close = ([0.700, 0.705, 0.702, 0.699], [0.701, 0.703, 0.700, 0.702])
    assert analysed(tmp_path, *close, test="equivalent", margin=2.0).verdict == vr.HOLDS
    assert analysed(tmp_path, *close, test="differs", margin=2.0).verdict == vr.FAILS
    far = ([0.80, 0.81, 0.80, 0.82], [0.70, 0.71, 0.69, 0.72])
    assert analysed(tmp_path, *far, test="equivalent", margin=2.0).verdict == vr.FAILS
    assert analysed(tmp_path, *far, test="differs", margin=2.0).verdict == vr.HOLDS
    noisy = ([0.70, 0.75, 0.66, 0.74], [0.72, 0.70, 0.73, 0.71])
    assert analysed(tmp_path, *noisy, test="equivalent", margin=2.0).verdict == vr.OPEN
    with pytest.raises(ValueError, match="margin"):
        vr.verdict(vr.paired_interval([1, 2, 3]), "equivalent")


def test_combined_verdict():
    assert vr.combine([vr.HOLDS, vr.HOLDS]) == vr.HOLDS
    assert vr.combine([vr.HOLDS, vr.OPEN]) == vr.OPEN
    assert vr.combine([vr.OPEN, vr.FAILS, vr.HOLDS]) == vr.FAILS
    assert vr.combine([vr.HOLDS, vr.NOT_RUN]) == vr.NOT_RUN


@pytest.mark.parametrize("higher", [True, False])
def test_lr_is_chosen_on_the_selection_half_only(tmp_path, higher):
    """lr 0.2 is better on the selection half, lr 0.1 on the report half: 0.2 must be used."""
    claim = load_claim(claim_file(tmp_path, [{"quantity": "score", "method": "a", "baseline": "b"}], higher=higher))
    good, bad = ([0.9] * 4, [0.1] * 4) if higher else ([0.1] * 4, [0.9] * 4)
    write_records(tmp_path / "runs", claim, {("a", 0.1): (bad, good), ("a", 0.2): (good, bad),
                                             ("b", 0.1): (bad, good), ("b", 0.2): (good, bad)})
    res = select_lr(claim, "t", claim.arm("a"), tmp_path / "runs")
    assert res.lr == 0.2
    assert res.scores == {s: pytest.approx(100 * bad[0]) for s in SEEDS}  # reported at the chosen lr


def test_missing_record_means_not_run(tmp_path):
    claim = load_claim(claim_file(tmp_path, [{"quantity": "score", "method": "a", "baseline": "b"}]))
    rows = analyse(claim, tmp_path / "nothing")[1]
    assert [r.verdict for r in rows] == [vr.NOT_RUN]


def test_closeness_and_trajectory_against_the_reference(tmp_path):
    arms = [{"method": "full", "lr": 0.1}, {"method": "a", "rank": 4, "lr": 0.1}, {"method": "b", "rank": 4, "lr": 0.1}]
    comps = [{"quantity": "closeness", "method": "a", "baseline": "b", "reference": "full"},
             {"quantity": "trajectory", "method": "a", "baseline": "b", "reference": "full"}]
    claim = load_claim(claim_file(tmp_path, comps, arms=arms))
    full_curve, a_curve, b_curve = [2.0, 1.0, 0.5], [2.0, 1.1, 0.55], [2.0, 1.5, 1.0]
    sel = [0.5] * 4
    write_records(tmp_path / "runs", claim, {
        ("full", 0.1): (sel, [0.80] * 4, [full_curve] * 4), ("a", 0.1): (sel, [0.79, 0.78, 0.79, 0.80], [a_curve] * 4),
        ("b", 0.1): (sel, [0.70, 0.72, 0.71, 0.69], [b_curve] * 4)})
    closeness, trajectory = analyse(claim, tmp_path / "runs")[1]
    assert closeness.verdict == vr.HOLDS
    assert closeness.diffs[0] == pytest.approx(abs(70 - 80) - abs(79 - 80))
    expected = np.mean(np.abs(np.log(np.array(b_curve) / full_curve))) - np.mean(np.abs(np.log(np.array(a_curve) / full_curve)))
    assert trajectory.diffs[0] == pytest.approx(expected)
    assert trajectory_gap(full_curve, full_curve) == 0


def test_claim_file_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"id": "x", "paper": "p", "source": "s", "statement": "s", "kind": "nope"}))
    with pytest.raises(ConfigError, match="kind"):
        load_claim(path)
    arms = [{"method": "a", "rank": 4, "lr": 0.1}, {"method": "a", "rank": 8, "lr": 0.1}]
    with pytest.raises(ConfigError, match="unique"):
        load_claim(claim_file(tmp_path, [], arms=arms))


def test_committed_claim_files_load():
    from loft.claims.spec import all_runs, load_claims
    from loft.core.paths import REPO

    claims = load_claims(REPO / "conf" / "claims")
    assert {"loft_tracks_full_glue", "loft_tracks_full_lm", "lofto_proposition1"} <= {c.id for c in claims}
    runs = all_runs(claims)
    paths = [r.key().relative_path() for r in runs]
    assert len(paths) == len(set(paths))  # one record per (claim setting, method, rank, lr, alpha, seed)
