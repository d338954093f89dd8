"""GLUE: sentence(-pair) classification, and regression for STS-B, with the standard metrics.

One job per module: `spec` (the eight tasks as data), `metrics` (evaluate's GLUE metric,
offline, and the parity check against it), `io` (tsv files and hub rows), `task` (GlueTask:
batches, loss, predictions, PSOFT's checkpoint selection). The names below are re-exported so
`_target_: tasks.glue.GlueTask` in conf/task/glue_*.yaml (and the records' configs) keep working.
"""
from tasks.glue.io import hub_rows, read_glue_tsv, write_glue_tsv
from tasks.glue.metrics import evaluate_glue_metrics, glue_metrics, metric_parity, parity_cases
from tasks.glue.spec import GLUE, HUB_DATASET, HUB_SPLITS, GlueSpec
from tasks.glue.task import GlueTask

__all__ = ["GLUE", "HUB_DATASET", "HUB_SPLITS", "GlueSpec", "GlueTask", "evaluate_glue_metrics", "glue_metrics",
           "hub_rows", "metric_parity", "parity_cases", "read_glue_tsv", "write_glue_tsv"]
