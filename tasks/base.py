"""The contract every task honours.

A task owns its data, its loss and its metrics; it never builds the model and never knows
which method trains it. `loft/runner.py` (called by `run.py`) drives it:

    task = hydra.utils.instantiate(cfg.task, _recursive_=False, _convert_="all")
    bundle = loft.models.load_model(cfg.model, **task.model_args())   # e.g. {"num_labels": 3}
    task.setup(bundle, data_dir)                  # data only: bundle.tokenizer, shapes of bundle.model
    # the method wraps bundle.model; the loop (loft/train/loop.py) then calls, per epoch,
    for micro_batch in task.train_batches(micro_batch_size, epoch, seed):
        loss = task.loss(model, micro_batch)      # backward and optimizer step are the loop's
    # and the hooks of Callbacks(task.callbacks()) (loft/train/callbacks.py) after each step
    metrics = {**task.evaluate(model), **callbacks.metrics()}   # a dict of floats for the record

`model_loss` and `on_model_device` are the loss of an HF model that computes its own loss
(causal LM, sequence classifier, image classifier) on a batch moved to its device.
"""
from __future__ import annotations

import sys
from typing import Any, Iterator

from loft.core.bundle import ModelBundle  # noqa: F401  (tasks import these from here)
from loft.core.errors import ConfigError, DataCorruptError, DataMissingError  # noqa: F401


class Task:
    """Base class. Subclasses set `name` and implement `setup`, `num_train_examples`,
    `train_batches`, `loss` and `evaluate`; `model_args` and `callbacks` have defaults."""

    name: str = "task"
    model_kinds: tuple[str, ...] = ()  # the conf/model `kind`s it trains (loft/validation.py refuses others)
    notes: list[str]  # a subclass that notes sets it in __init__; the runner copies it into the record

    def _note(self, text: str) -> None:
        """Something a reader of the result must know (partial offline data, a fallback split):
        kept for the run record and shown on stderr."""
        self.notes.append(text)
        print(f"note [{self.name}]: {text}", file=sys.stderr)

    def model_args(self) -> dict:
        """What the model loader needs from the task (e.g. {"num_labels": 3} for a classifier);
        the runner builds the model, a task never does."""
        return {}

    def setup(self, bundle: ModelBundle, data_dir: str) -> None:
        """Load/tokenise data. Raise DataMissingError naming the fix when files are absent."""
        raise NotImplementedError

    def num_train_examples(self) -> int:
        raise NotImplementedError

    def train_batches(self, micro_batch_size: int, epoch: int, seed: int) -> Iterator[Any]:
        """Yield micro batches for one epoch, shuffled deterministically by (seed, epoch): exactly
        ceil(num_train_examples() / micro_batch_size) of them (the loop places epoch ends by count)."""
        raise NotImplementedError

    def loss(self, model, batch) -> Any:
        """Scalar training loss of `model` on one micro batch (mean over its examples)."""
        raise NotImplementedError

    def evaluate(self, model) -> dict[str, float]:
        """Metrics of the (trained) model; keys are the metric names stored in the record."""
        raise NotImplementedError

    def callbacks(self) -> list:
        """Training-loop callbacks its protocol needs (loft/train/callbacks.py), e.g. checkpoint
        selection on held-out rows; the loop calls them and checkpoints their state."""
        return []

    def provenance(self) -> dict:
        """Which training data the run read, for the record's `data` field: {train_file, rows, sha256}
        (loft.core.provenance.file_provenance builds it after setup); {} = unknown."""
        return {}

def on_model_device(model, batch: dict, floating: tuple[str, ...] = ()) -> dict:
    """`batch`'s tensors on the device of `model`'s parameters; the `floating` keys (pixel values)
    also in their dtype, so a bf16 model gets bf16 inputs."""
    p = next(model.parameters())
    return {k: v.to(p.device, p.dtype) if k in floating else v.to(p.device) for k, v in batch.items()}


def model_loss(model, batch: dict, floating: tuple[str, ...] = ()) -> Any:
    """The loss the model computes itself from `batch` (labels included), on the model's device."""
    return model(**on_model_device(model, batch, floating)).loss
