"""GLUE as a task: tokenized rows, batches, loss, predictions and the reported metrics.

    python run.py task=glue_sst2 model=minilm_l6 method=lora rank=8          (offline)
    python run.py task=glue_rte model=deberta_v3_base method=psoft rank=8    (hub model)

- Data: `<data_dir>/glue/<Task>/{train,dev}.tsv` (tasks/glue/io.py); `source=auto` falls back
  to the hub when a file is missing and the hub is reachable; otherwise DataMissingError names
  the prepare command.
- Regression for STS-B (num_labels = 1, MSE loss); MNLI reports `accuracy` (matched) and
  `mismatched_accuracy` (all of the mismatched dev split, as PSOFT).
- Model selection as PSOFT does it (fei407/PSOFT 1-NLU/fine-tuning_glue.py): the dev split is
  shuffled and halved; the checkpoint that scores best on the first half (evaluated every
  `eval_every` steps, or at each epoch's end with `eval_every: epoch`, and always at the end)
  is restored and reported on the other half. `selection: last` reports the last checkpoint on
  the whole dev split. The picking is the training loop's callback (loft/train/selection.py).
- Padding: `padding: longest` (default) pads a batch to its longest row; `max_length` pads
  every row to `max_seq_length`, as PSOFT's script does (`pad_to_max_length`, default True).
  Evaluation sorts rows by length either way. The task configs leave `padding` out (their
  records' config hash stays as it was): `+task.padding=max_length` adds it there; the PSOFT
  protocol (conf/glue_protocol/psoft.yaml) sets it. `max_seq_length` is one number or a
  mapping from GLUE task to number (a preset that sweeps tasks gives each its own length).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from loft.core.errors import ConfigError
from loft.train.selection import HalfSplit, SelectsCheckpoint
from tasks.base import ModelBundle, Task, model_loss, on_model_device
from tasks.data_files import check_rows, damaged
from tasks.glue.io import hub_rows, read_glue_tsv
from tasks.glue.metrics import glue_metrics
from tasks.glue.spec import GLUE, OFFLINE_NOTE
from tasks.sources import check_source, local_or_hub

PADDINGS = ("longest", "max_length")


class GlueTask(SelectsCheckpoint, Task):
    model_kinds = ("seq_cls",)
    name = "glue"

    def __init__(self, name: str = "glue_sst2", glue_task: str = "sst2", source: str = "auto",
                 max_seq_length: int | Mapping[str, int] = 128, max_train_samples: int | None = None,
                 eval_limit: int | None = None, eval_batch_size: int = 64, selection: str = "half",
                 eval_every="epoch", selection_seed: int = 0, padding: str = "longest"):
        if glue_task not in GLUE:
            raise ConfigError(f"task.glue_task={glue_task!r}: one of {sorted(GLUE)}")
        check_source(source)
        if padding not in PADDINGS:
            raise ConfigError(f"task.padding={padding!r}: use longest (pad a batch to its longest row) or max_length")
        self.name, self.glue_task, self.spec, self.source = name, glue_task, GLUE[glue_task], source
        self.max_seq_length, self.eval_batch_size = seq_length_for(glue_task, max_seq_length), int(eval_batch_size)
        self.max_train_samples, self.eval_limit, self.padding = max_train_samples, eval_limit, padding
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

        def read(path: Path):
            try:
                texts, labels = read_glue_tsv(path, self.spec)
            except (ValueError, UnicodeDecodeError) as err:  # a bad label or header: the file is damaged
                raise damaged(path, str(err).removeprefix(f"{path}:").strip(), fix) from None
            first, key = (self.max_train_samples, "task.max_train_samples") if split == "train" else (
                self.eval_limit, "task.eval_limit")
            check_rows(path, data_dir, len(texts), fix, first=first, first_key=key)
            return texts, labels

        return local_or_hub(path, self.source, read, lambda: hub_rows(self.glue_task, split),
                            f"`{fix}` (online), or point paths.data_dir at a folder with "
                            f"glue/<Task>/{{train,dev}}.tsv ({OFFLINE_NOTE}).")

    def _encode(self, texts, labels, limit) -> dict:
        if limit is not None:
            texts, labels = texts[: int(limit)], labels[: int(limit)]
        if not texts:
            raise ConfigError(f"{self.name}: no examples (check task.max_train_samples / task.eval_limit)")
        columns = [list(c) for c in zip(*texts)]  # one list per text field (a tuple could read as a pair)
        enc = self.tokenizer(*columns, truncation=True, max_length=self.max_seq_length)
        dtype = torch.float32 if self.spec.labels is None else torch.long
        return {"features": {k: list(v) for k, v in enc.items()}, "labels": torch.tensor(labels, dtype=dtype)}

    def _collate(self, data: dict, idx) -> dict:
        """Pad to the longest row of this batch, or to max_seq_length with padding=max_length."""
        idx = [int(i) for i in idx]
        ids = [data["features"]["input_ids"][i] for i in idx]
        width = self.max_seq_length if self.padding == "max_length" else max(map(len, ids))
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
        return model_loss(model, batch)

    @torch.no_grad()
    def predict(self, model, data: dict, idx=None) -> np.ndarray:
        """Class indices (or regression outputs) in the order of `idx` (default: all)."""
        idx = np.arange(len(data["labels"])) if idx is None else np.asarray(idx)
        lengths = np.array([len(data["features"]["input_ids"][i]) for i in idx])
        order = np.argsort(-lengths, kind="stable")  # similar lengths together: less padding
        was_training = model.training
        model.eval()
        out = np.empty(len(idx), dtype=np.float64 if self.spec.labels is None else np.int64)
        try:
            for start in range(0, len(order), self.eval_batch_size):
                pos = order[start:start + self.eval_batch_size]
                batch = self._collate(data, idx[pos])
                batch.pop("labels")
                logits = model(**on_model_device(model, batch)).logits.float()
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


def seq_length_for(glue_task: str, max_seq_length: int | Mapping[str, int]) -> int:
    """`task.max_seq_length` for this GLUE task: the number, or the mapping's entry for it."""
    if isinstance(max_seq_length, Mapping):
        if glue_task not in max_seq_length:
            raise ConfigError(f"task.max_seq_length lists {sorted(max_seq_length)} but not {glue_task}: add it")
        max_seq_length = max_seq_length[glue_task]
    return int(max_seq_length)
