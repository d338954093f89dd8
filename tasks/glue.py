"""GLUE: sentence(-pair) classification, and regression for STS-B, with the standard metrics.

    python run.py task=glue_sst2 model=minilm_l6 method=lora rank=8          (offline)
    python run.py task=glue_rte model=deberta_v3_base method=psoft rank=8    (hub model)

Features, each with its source:
- Tasks cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte (`task.glue_task`); labels as the hub's
  `nyu-mll/glue` numbers them, so local tsv files and hub rows give the same classes.
- Metrics as `evaluate`'s GLUE metric defines them (evaluate-metric/glue: accuracy = mean of
  equal predictions; F1 and Matthews from scikit-learn; Pearson and Spearman from scipy), with
  the same keys: CoLA `matthews_correlation`; MRPC/QQP `accuracy`, `f1`; STS-B `pearson`,
  `spearmanr` (regression: num_labels = 1, MSE loss); MNLI `accuracy` (matched) and
  `mismatched_accuracy`; others `accuracy`. Computed offline with scikit-learn/scipy
  (`glue_metrics`); `metric_parity` compares them with `evaluate.load("glue", ...)` where the
  hub is reachable (`python -m tasks.glue --parity`).
- Model selection as PSOFT does it (fei407/PSOFT 1-NLU/fine-tuning_glue.py): the dev split is
  shuffled and halved; the checkpoint that scores best on the first half (evaluated every
  `eval_every` steps, or at each epoch's end with `eval_every: epoch`, and always at the end)
  is restored and reported on the other half. `selection: last` reports the last checkpoint on
  the whole dev split. The halves come from `selection_seed` (not the run's seed: every method
  and seed is reported on the same examples). The picking is the training loop's callback
  (loft/train/selection.py): candidates come from the loop's step and epoch counters and the
  best snapshot travels in the run's checkpoint, so a resumed run selects as if uninterrupted;
  the record's `selection` field lists the candidates and their scores.
- Data: `<data_dir>/glue/<Task>/{train,dev}.tsv` in the original GLUE layout (CoLA has no header;
  MRPC starts with a byte-order mark; MNLI has dev_matched/dev_mismatched), read as plain tab-
  separated text (quotes are text, as in GLUE). `source=auto` falls back to the hub when a file
  is missing and the hub is reachable; otherwise DataMissingError names the prepare command.
- Batches are padded to their longest row (dynamic padding); evaluation sorts by length.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from loft.train.selection import HalfSplit
from tasks.base import DataMissingError, ModelBundle, Task
from tasks.data_files import check_rows, damaged, write_row_count

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


# --- metrics ---------------------------------------------------------------------------

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
    """Hand-made edge cases plus random ones for every task (used by `--parity`)."""
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


# --- data ------------------------------------------------------------------------------

def read_glue_tsv(path: Path, spec: GlueSpec) -> tuple[list[tuple[str, ...]], list]:
    """(texts, labels) of one GLUE file. Plain tab splitting (no quoting: GLUE's text holds bare
    quotes), lines split on '\\n' only (str.splitlines would also split on characters such as
    U+2028 inside a sentence), a leading byte-order mark dropped. Rows too short for the
    needed columns, or without a label, are skipped (as the reference loaders do)."""
    lines = path.read_text(encoding="utf-8-sig").split("\n")
    rows = [line.rstrip("\r").split("\t") for line in lines if line.strip()]
    if spec.header:
        header, rows = rows[0], rows[1:]
        missing = [c for c in (*spec.text, spec.label) if c not in header]
        if missing:
            raise ValueError(f"{path}: header lacks {missing} (header: {header})")
    else:
        header = list(spec.columns)
    where = [header.index(c) for c in spec.text]
    at = header.index(spec.label)
    need = max(*where, at) + 1
    texts, labels = [], []
    for n, row in enumerate(rows, start=2 if spec.header else 1):
        if len(row) < need or not row[at].strip():
            continue
        raw = row[at].strip()
        if spec.labels is None:
            labels.append(float(raw))
        elif raw in spec.labels:
            labels.append(spec.labels.index(raw))
        else:
            raise ValueError(f"{path}:{n}: label {raw!r} is not one of {spec.labels}")
        texts.append(tuple(row[i] for i in where))
    return texts, labels


def write_glue_tsv(path: Path, spec: GlueSpec, texts: list[tuple[str, ...]], labels: list) -> None:
    """The inverse of read_glue_tsv in the original column layout (unknown columns left empty);
    used by `scripts/prepare_data.py glue` to store hub rows."""
    clean = lambda s: " ".join(str(s).split())  # noqa: E731  tabs/newlines would break the row
    out = [] if not spec.header else ["\t".join(spec.columns)]
    for i, (text, label) in enumerate(zip(texts, labels)):
        row = {c: "" for c in spec.columns}
        row.update({c: clean(t) for c, t in zip(spec.text, text)})
        row[spec.label] = f"{float(label):.3f}" if spec.labels is None else spec.labels[int(label)]
        if "index" in row:
            row["index"] = str(i)
        out.append("\t".join(row[c] for c in spec.columns))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(out) + "\n", encoding="utf-8")
    tmp.replace(path)
    write_row_count(path, len(labels))


def hub_rows(task: str, split: str) -> tuple[list[tuple[str, ...]], list]:
    import datasets

    spec = GLUE[task]
    rows = datasets.load_dataset(HUB_DATASET, task, split=HUB_SPLITS[split])
    texts = list(zip(*(rows[c] for c in spec.hub_text)))
    return texts, [float(v) if spec.labels is None else int(v) for v in rows["label"]]


# --- checkpoint selection (shared with tasks/vision.py) --------------------------------

class SelectionTask(Task):
    """A task reported the PSOFT way: `self.halves` (a HalfSplit of its validation rows) gives
    the loop a ModelSelection callback that scores `_selection_score` on the selection half and
    leaves the best checkpoint in the model; `evaluate` then reports on `halves.report_idx`."""

    halves: HalfSplit

    def callbacks(self) -> list:
        return self.halves.callbacks(self._selection_score)

    def _selection_score(self, model, idx) -> float:
        """The main metric on validation rows `idx` (higher is better)."""
        raise NotImplementedError


class GlueTask(SelectionTask):
    model_kinds = ("seq_cls",)
    name = "glue"

    def __init__(self, name: str = "glue_sst2", glue_task: str = "sst2", source: str = "auto",
                 max_seq_length: int = 128, max_train_samples: int | None = None, eval_limit: int | None = None,
                 eval_batch_size: int = 64, selection: str = "half", eval_every="epoch", selection_seed: int = 0):
        if glue_task not in GLUE:
            raise ValueError(f"task.glue_task={glue_task!r}: one of {sorted(GLUE)}")
        if source not in ("auto", "local", "hub"):
            raise ValueError(f"task.source={source!r}: use auto, local or hub")
        self.name, self.glue_task, self.spec, self.source = name, glue_task, GLUE[glue_task], source
        self.max_seq_length, self.eval_batch_size = int(max_seq_length), int(eval_batch_size)
        self.max_train_samples, self.eval_limit = max_train_samples, eval_limit
        self.halves = HalfSplit(selection, eval_every, selection_seed)

    def model_args(self) -> dict:
        return {"num_labels": self.spec.num_labels}

    # --- data --------------------------------------------------------------------------

    def setup(self, bundle: ModelBundle, data_dir: str) -> None:
        self.tokenizer = bundle.tokenizer
        texts, labels = self._read("train", data_dir)
        self.train = self._encode(texts, labels, self.max_train_samples)
        dev = [self._encode(*self._read(split, data_dir), self.eval_limit) for split in self.spec.dev]
        self.dev, self.extra_dev = dev[0], dev[1:]  # MNLI: matched is selected/reported, mismatched reported
        self.halves.split(len(self.dev["labels"]))

    def _read(self, split: str, data_dir: str):
        path = Path(data_dir) / "glue" / self.spec.folder / f"{split}.tsv"
        fix = f"python scripts/prepare_data.py glue --data-dir {data_dir}"
        if self.source != "hub" and path.is_file():
            try:
                texts, labels = read_glue_tsv(path, self.spec)
            except (ValueError, UnicodeDecodeError) as err:  # a bad label or header: the file is damaged
                raise damaged(path, str(err).removeprefix(f"{path}:").strip(), fix) from None
            first, key = (self.max_train_samples, "task.max_train_samples") if split == "train" else (
                self.eval_limit, "task.eval_limit")
            check_rows(path, data_dir, len(texts), fix, first=first, first_key=key)
            return texts, labels
        why = "hub not tried (source=local)"
        if self.source != "local":
            from loft.core.hub import hub_reachable

            why = "hub unreachable"
            if hub_reachable():
                try:
                    return hub_rows(self.glue_task, split)
                except Exception as err:  # e.g. a hub outage: still name the local fix
                    why = f"hub failed: {type(err).__name__}"
        raise DataMissingError(
            f"{path} not found ({why}). Fix: `{fix}` "
            f"(online), or point paths.data_dir at a folder with glue/<Task>/{{train,dev}}.tsv ({OFFLINE_NOTE}).")

    def _encode(self, texts, labels, limit) -> dict:
        if limit is not None:
            texts, labels = texts[: int(limit)], labels[: int(limit)]
        if not texts:
            raise ValueError(f"{self.name}: no examples (check task.max_train_samples / task.eval_limit)")
        columns = [list(c) for c in zip(*texts)]  # one list per text field (a tuple could read as a pair)
        enc = self.tokenizer(*columns, truncation=True, max_length=self.max_seq_length)
        dtype = torch.float32 if self.spec.labels is None else torch.long
        return {"features": {k: list(v) for k, v in enc.items()}, "labels": torch.tensor(labels, dtype=dtype)}

    def _collate(self, data: dict, idx) -> dict:
        """Pad to the longest row of this batch."""
        idx = [int(i) for i in idx]
        ids = [data["features"]["input_ids"][i] for i in idx]
        width = max(map(len, ids))
        batch = {}
        for key, rows in data["features"].items():
            pad = self.tokenizer.pad_token_id if key == "input_ids" else 0
            out = torch.full((len(idx), width), pad, dtype=torch.long)
            for j, i in enumerate(idx):
                out[j, : len(rows[i])] = torch.tensor(rows[i])
            batch[key] = out
        batch["labels"] = data["labels"][idx]
        return batch

    def num_train_examples(self) -> int:
        return len(self.train["labels"])

    def train_batches(self, micro_batch_size: int, epoch: int, seed: int):
        order = np.random.default_rng([seed, epoch]).permutation(self.num_train_examples())
        for start in range(0, len(order), micro_batch_size):
            yield self._collate(self.train, order[start:start + micro_batch_size])

    # --- loss, predictions and metrics -------------------------------------------------

    def loss(self, model, batch):
        device = next(model.parameters()).device
        return model(**{k: v.to(device) for k, v in batch.items()}).loss

    @torch.no_grad()
    def predict(self, model, data: dict, idx=None) -> np.ndarray:
        """Class indices (or regression outputs) in the order of `idx` (default: all)."""
        idx = np.arange(len(data["labels"])) if idx is None else np.asarray(idx)
        lengths = np.array([len(data["features"]["input_ids"][i]) for i in idx])
        order = np.argsort(-lengths, kind="stable")  # similar lengths together: less padding
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        out = np.empty(len(idx), dtype=np.float64 if self.spec.labels is None else np.int64)
        try:
            for start in range(0, len(order), self.eval_batch_size):
                pos = order[start:start + self.eval_batch_size]
                batch = self._collate(data, idx[pos])
                batch.pop("labels")
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
                pred = logits[:, 0] if self.spec.labels is None else logits.argmax(-1)
                out[pos] = pred.cpu().numpy()
        finally:
            model.train(was_training)
        return out

    def metrics(self, model, data: dict, idx=None) -> dict[str, float]:
        refs = data["labels"].numpy() if idx is None else data["labels"].numpy()[np.asarray(idx)]
        return glue_metrics(self.glue_task, self.predict(model, data, idx), refs)

    def _selection_score(self, model, idx) -> float:
        return self.metrics(model, self.dev, idx)[self.spec.metric]

    def evaluate(self, model) -> dict[str, float]:
        metrics = self.metrics(model, self.dev, self.halves.report_idx)  # half: the loop left the best checkpoint
        metrics = {self.spec.metric: metrics.pop(self.spec.metric), **metrics}
        for extra in self.extra_dev:  # MNLI mismatched, all of it (as PSOFT)
            metrics["mismatched_accuracy"] = self.metrics(model, extra)["accuracy"]
        metrics["eval_examples"] = float(len(self.halves.report_idx))
        return metrics


def main(argv=None) -> int:
    """`python -m tasks.glue --parity`: our offline metrics against evaluate's GLUE metric."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--parity", action="store_true", help="compare with evaluate.load('glue', ...) (online)")
    args = parser.parse_args(argv)
    if not args.parity:
        parser.print_help()
        return 0
    for task, preds, refs in parity_cases():
        try:
            pairs = metric_parity(task, preds, refs)
        except (FileNotFoundError, ConnectionError, OSError) as err:
            print(f"error: evaluate's GLUE metric did not load (needs the hub once): {err}", file=sys.stderr)
            return 2
        print(f"{task:5s} " + "  ".join(f"{k}={a:.6f} (evaluate {b:.6f})" for k, (a, b) in pairs.items()))
    print("parity: all GLUE metrics agree with evaluate's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
