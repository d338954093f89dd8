"""GLUE metrics (tasks/glue/metrics.py) against hand-written closed forms, on hand-made cases.

`evaluate.load("glue", ...)` needs the hub, so CI checks our scikit-learn/scipy metrics against
independent definitions written out here (confusion counts, moment formulas, average ranks);
the comparison with evaluate itself is `metric_parity`, run online by
`python scripts/glue_metric_parity.py`. Its plumbing (keys, tolerance, failure) is tested here with a
stand-in for evaluate's metric.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from scripts.glue_metric_parity import main
from tasks.glue import GLUE, glue_metrics, metric_parity, parity_cases


def mcc(preds, refs) -> float:
    """Matthews correlation from the 2x2 confusion counts (0 when a margin is empty)."""
    tp = sum(p == 1 and r == 1 for p, r in zip(preds, refs))
    tn = sum(p == 0 and r == 0 for p, r in zip(preds, refs))
    fp = sum(p == 1 and r == 0 for p, r in zip(preds, refs))
    fn = sum(p == 0 and r == 1 for p, r in zip(preds, refs))
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denom == 0 else (tp * tn - fp * fn) / denom


def f1(preds, refs) -> float:
    tp = sum(p == 1 and r == 1 for p, r in zip(preds, refs))
    fp = sum(p == 1 and r == 0 for p, r in zip(preds, refs))
    fn = sum(p == 0 and r == 1 for p, r in zip(preds, refs))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def pearson(x, y) -> float:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def average_ranks(x) -> list[float]:
    """1-based ranks, ties sharing the mean of their positions."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def test_cola_matthews_against_confusion_counts():
    preds, refs = [1, 0, 1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0, 1, 0]
    # tp=3 tn=3 fp=1 fn=1: (9 - 1) / sqrt(4 * 4 * 4 * 4) = 0.5
    assert glue_metrics("cola", preds, refs) == {"matthews_correlation": pytest.approx(0.5)}
    assert mcc(preds, refs) == pytest.approx(0.5)
    assert glue_metrics("cola", [1, 1, 1, 1], [1, 0, 1, 0])["matthews_correlation"] == 0.0  # constant predictions
    assert glue_metrics("cola", [0, 1, 0, 1], [1, 0, 1, 0])["matthews_correlation"] == pytest.approx(-1.0)


def test_mrpc_qqp_accuracy_and_f1():
    preds, refs = [1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0]
    # tp=2 fp=1 fn=1: F1 = 4 / 6; accuracy 4 / 6
    for task in ("mrpc", "qqp"):
        assert glue_metrics(task, preds, refs) == {"accuracy": pytest.approx(4 / 6), "f1": pytest.approx(2 / 3)}
    assert glue_metrics("mrpc", [0, 0, 0], [0, 0, 1])["f1"] == 0.0  # no positive prediction


def test_accuracy_tasks_are_plain_accuracy():
    preds, refs = [0, 2, 1, 1, 0], [0, 2, 2, 1, 1]  # MNLI: three classes
    for task in ("sst2", "mnli", "qnli", "rte"):
        assert glue_metrics(task, preds[:], refs[:]) == {"accuracy": pytest.approx(0.6)}


def test_stsb_pearson_and_spearman_with_ties():
    preds, refs = [0.5, 1.0, 1.0, 4.5, 2.0], [1.0, 1.0, 2.0, 5.0, 3.0]
    out = glue_metrics("stsb", preds, refs)
    assert set(out) == {"pearson", "spearmanr"}
    assert out["pearson"] == pytest.approx(pearson(preds, refs), rel=1e-12)
    assert out["spearmanr"] == pytest.approx(pearson(average_ranks(preds), average_ranks(refs)), rel=1e-12)
    assert glue_metrics("stsb", [1.0, 2.0, 3.0], [2.0, 4.0, 6.0])["pearson"] == pytest.approx(1.0)


@pytest.mark.parametrize("task, preds, refs", parity_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_random_and_edge_cases_match_closed_forms(task, preds, refs):
    out = glue_metrics(task, preds, refs)
    if task == "cola":
        assert out["matthews_correlation"] == pytest.approx(mcc(preds, refs), abs=1e-12)
    elif task == "stsb":
        assert out["pearson"] == pytest.approx(pearson(preds, refs), rel=1e-9)
        assert out["spearmanr"] == pytest.approx(pearson(average_ranks(preds), average_ranks(refs)), rel=1e-9)
    else:
        assert out["accuracy"] == pytest.approx(np.mean(np.asarray(preds) == np.asarray(refs)))
        if task in ("mrpc", "qqp"):
            assert out["f1"] == pytest.approx(f1(preds, refs))


def closed_forms(task, preds, refs) -> dict:
    """A stand-in for evaluate's GLUE metric, built from the closed forms above."""
    if task == "cola":
        return {"matthews_correlation": mcc(preds, refs)}
    if task == "stsb":
        return {"pearson": pearson(preds, refs), "spearmanr": pearson(average_ranks(preds), average_ranks(refs))}
    acc = float(np.mean(np.asarray(preds) == np.asarray(refs)))
    return {"accuracy": acc, "f1": f1(preds, refs)} if task in ("mrpc", "qqp") else {"accuracy": acc}


def test_metric_parity_compares_keys_and_values():
    for task, preds, refs in parity_cases():
        pairs = metric_parity(task, preds, refs, tol=1e-9, reference=closed_forms)
        assert set(pairs) == set(glue_metrics(task, preds, refs))
    with pytest.raises(AssertionError, match="keys differ"):
        metric_parity("mrpc", [1, 0], [1, 0], reference=lambda *a: {"accuracy": 1.0})
    with pytest.raises(AssertionError, match="sst2/accuracy"):
        metric_parity("sst2", [1, 0], [1, 0], reference=lambda *a: {"accuracy": 0.5})


def test_parity_command_offline_says_why(monkeypatch, capsys):
    """Offline, `python scripts/glue_metric_parity.py` exits 2 with the reason (it never passes silently)."""
    import evaluate

    def offline(*args, **kwargs):
        raise FileNotFoundError("Couldn't find a module script at glue/glue.py")

    monkeypatch.setattr(evaluate, "load", offline)
    assert main([]) == 2
    assert "needs the hub" in capsys.readouterr().err


def test_every_task_has_a_main_metric():
    for task, spec in GLUE.items():
        preds = [0.0, 1.0, 2.0] if spec.labels is None else [0, 1, 0]
        refs = [0.5, 1.5, 2.0] if spec.labels is None else [0, 1, 1]
        assert spec.metric in glue_metrics(task, preds, refs), task
