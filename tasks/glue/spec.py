"""The eight GLUE tasks as data: file layout, text and label columns, class order and main metric.

Labels are numbered as the hub's `nyu-mll/glue` numbers them, so local tsv files and hub rows
give the same classes; STS-B is regression (`labels=None`, one output).
"""
from __future__ import annotations

from dataclasses import dataclass

HUB_DATASET = "nyu-mll/glue"


@dataclass(frozen=True)
class GlueSpec:
    folder: str                      # <data_dir>/glue/<folder>/
    columns: tuple[str, ...]         # tsv header (CoLA: the implied one; it has no header row)
    text: tuple[str, ...]            # one or two text columns, by header name
    label: str                       # label column
    labels: tuple[str, ...] | None   # class names in the hub's order; None = regression
    hub_text: tuple[str, ...]        # the same text fields in nyu-mll/glue
    metric: str                      # the main metric (model selection; first in reports)
    header: bool = True
    dev: tuple[str, ...] = ("dev",)  # dev files: MNLI has matched and mismatched

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)


GLUE = {
    "cola": GlueSpec("CoLA", ("source", "label", "original_label", "sentence"), ("sentence",), "label",
                     ("0", "1"), ("sentence",), "matthews_correlation", header=False),
    "sst2": GlueSpec("SST-2", ("sentence", "label"), ("sentence",), "label", ("0", "1"), ("sentence",), "accuracy"),
    "mrpc": GlueSpec("MRPC", ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"), ("#1 String", "#2 String"),
                     "Quality", ("0", "1"), ("sentence1", "sentence2"), "accuracy"),
    "qqp": GlueSpec("QQP", ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
                    ("question1", "question2"), "is_duplicate", ("0", "1"), ("question1", "question2"), "accuracy"),
    "stsb": GlueSpec("STS-B", ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
                               "sentence2", "score"), ("sentence1", "sentence2"), "score", None,
                     ("sentence1", "sentence2"), "pearson"),
    "mnli": GlueSpec("MNLI", ("index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                              "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1", "sentence2",
                              "label1", "gold_label"), ("sentence1", "sentence2"), "gold_label",
                     ("entailment", "neutral", "contradiction"), ("premise", "hypothesis"), "accuracy",
                     dev=("dev_matched", "dev_mismatched")),
    "qnli": GlueSpec("QNLI", ("index", "question", "sentence", "label"), ("question", "sentence"), "label",
                     ("entailment", "not_entailment"), ("question", "sentence"), "accuracy"),
    "rte": GlueSpec("RTE", ("index", "sentence1", "sentence2", "label"), ("sentence1", "sentence2"), "label",
                    ("entailment", "not_entailment"), ("sentence1", "sentence2"), "accuracy"),
}
HUB_SPLITS = {"train": "train", "dev": "validation", "dev_matched": "validation_matched",
              "dev_mismatched": "validation_mismatched"}
OFFLINE_NOTE = ("offline copies of CoLA, SST-2, MRPC, STS-B, RTE and QNLI dev exist in ../shared/data/glue; "
                "MNLI, QQP and QNLI train need the hub once")
