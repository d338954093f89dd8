"""GLUE metrics as `evaluate`'s GLUE metric defines them (evaluate-metric/glue), offline, and
the comparison with `evaluate.load("glue", ...)` itself (scripts/glue_metric_parity.py runs it).

accuracy = mean of equal predictions; F1 and Matthews from scikit-learn; Pearson and Spearman
from scipy; the keys are evaluate's: CoLA `matthews_correlation`; MRPC/QQP `accuracy`, `f1`;
STS-B `pearson`, `spearmanr`; the others `accuracy`.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from tasks.glue.spec import GLUE


def glue_metrics(task: str, predictions: Sequence, references: Sequence) -> dict[str, float]:
    """The GLUE metric of `task` with evaluate's definitions and keys, offline (scikit-learn,
    scipy). Classes are label indices; STS-B takes the regression outputs."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score, matthews_corrcoef

    preds, refs = np.asarray(predictions), np.asarray(references)
    if task == "cola":
        return {"matthews_correlation": float(matthews_corrcoef(refs, preds))}
    if task == "stsb":
        return {"pearson": float(pearsonr(preds, refs)[0]), "spearmanr": float(spearmanr(preds, refs)[0])}
    accuracy = float((preds == refs).mean())
    if task in ("mrpc", "qqp"):
        return {"accuracy": accuracy, "f1": float(f1_score(y_true=refs, y_pred=preds))}
    if task in GLUE:
        return {"accuracy": accuracy}
    raise KeyError(f"unknown GLUE task {task!r}; one of {sorted(GLUE)}")


def evaluate_glue_metrics(task: str, predictions: Sequence, references: Sequence) -> dict[str, float]:
    """The same numbers from `evaluate.load("glue", task)` (needs the hub the first time)."""
    import evaluate

    metric = evaluate.load("glue", task)
    return {k: float(v) for k, v in metric.compute(predictions=list(predictions), references=list(references)).items()}


def metric_parity(task: str, predictions: Sequence, references: Sequence, tol: float = 1e-9,
                  reference: Callable = evaluate_glue_metrics) -> dict[str, tuple[float, float]]:
    """{key: (ours, evaluate's)}; raises AssertionError when a key or a value differs."""
    ours, theirs = glue_metrics(task, predictions, references), reference(task, predictions, references)
    if set(ours) != set(theirs):
        raise AssertionError(f"{task}: metric keys differ: ours {sorted(ours)}, evaluate {sorted(theirs)}")
    for key in ours:
        if not math.isclose(ours[key], theirs[key], rel_tol=tol, abs_tol=tol):
            raise AssertionError(f"{task}/{key}: ours {ours[key]!r} != evaluate {theirs[key]!r}")
    return {k: (ours[k], theirs[k]) for k in ours}


def parity_cases(seed: int = 0) -> list[tuple[str, list, list]]:
    """Hand-made edge cases plus random ones for every task (scripts/glue_metric_parity.py)."""
    rng = np.random.default_rng(seed)
    cases = [("cola", [1, 1, 1, 1], [1, 0, 1, 0]),            # constant predictions: MCC 0
             ("mrpc", [0, 0, 0], [0, 0, 1]),                  # no positive prediction: F1 0
             ("stsb", [0.5, 1.0, 1.0, 4.5], [1.0, 1.0, 2.0, 5.0])]  # ties for Spearman
    for task, spec in GLUE.items():
        if spec.labels is None:
            refs = rng.uniform(0, 5, 200)
            cases.append((task, list(refs + rng.normal(0, 1, 200)), list(refs)))
        else:
            refs = rng.integers(0, spec.num_labels, 200)
            preds = np.where(rng.random(200) < 0.7, refs, rng.integers(0, spec.num_labels, 200))
            cases.append((task, preds.tolist(), refs.tolist()))
    return cases
