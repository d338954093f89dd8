"""The contract every task honours.

A task owns its data, its loss and its metrics; it never knows which method trains the
model. `run.py` builds the model from `conf/model/`, wraps it with the method, then
drives the task through the generic loop in `loft/training.py`:

    task = hydra.utils.instantiate(cfg.task, _recursive_=False)
    bundle = task.build_model(cfg.model)                 # or loft.models.load(cfg.model)
    for micro_batch in task.train_batches(micro_batch_size, seed): ...
        loss = task.loss(model, micro_batch)
    metrics = task.evaluate(model)                      # dict of floats (after task.callbacks() ran)
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Iterator


class DataMissingError(FileNotFoundError):
    """A data file the task needs is absent; the message names the prepare command."""


class DataCorruptError(DataMissingError):
    """A data file is there but damaged (unreadable, or cut short); the message names it and the fix."""


@dataclass
class ModelBundle:
    """What a model loader returns: the module, its tokenizer (or None) and the default
    names of the linear layers a low-rank method adapts."""

    model: Any
    tokenizer: Any = None
    target_modules: list[str] = field(default_factory=list)
    name: str = ""
    head_modules: list[str] = field(default_factory=list)  # task heads trained in full (e.g. "classifier")


class Task:
    """Base class. Subclasses set `name` and implement the four methods below."""

    name: str = "task"
    model_kinds: tuple[str, ...] = ()  # the conf/model `kind`s it trains (loft/validation.py refuses others)
    notes: list[str]  # a subclass that notes sets it in __init__; the runner copies it into the record

    def _note(self, text: str) -> None:
        """Something a reader of the result must know (partial offline data, a fallback split):
        kept for the run record and shown on stderr."""
        self.notes.append(text)
        print(f"note [{self.name}]: {text}", file=sys.stderr)

    def build_model(self, model_cfg) -> ModelBundle:
        """Most tasks use the shared loader; matfac overrides this (its 'model' is W)."""
        from loft.models import load_model

        return load_model(model_cfg)

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
