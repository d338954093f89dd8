"""Callbacks of the training loop, after Lightning's `Callback` (hooks plus `state_dict` /
`load_state_dict`, saved in the run's checkpoint like Lightning's ModelCheckpoint state).

The loop, not the task's data stream, says where a step stands: `EpochClock` turns the step
counter into "step k ended, and it did (or did not) consume the last micro batch of an epoch".
Positions come from counters alone (an epoch is ceil(examples / micro_batch_size) micro
batches of the global stream, which the loop checks while streaming), so a resumed run makes
exactly the calls of the uninterrupted one, on every rank alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class StepEnd:
    step: int        # optimizer steps done, 1-based
    epoch: int       # epoch of the step's last micro batch, 0-based
    epoch_end: bool  # the step consumed the last micro batch of an epoch
    final: bool      # the run's last step


def micro_batches_per_epoch(num_examples: int, micro_batch_size: int) -> int:
    return math.ceil(num_examples / micro_batch_size)


@dataclass(frozen=True)
class EpochClock:
    per_epoch: int  # micro batches in one epoch of the global stream
    per_step: int   # global micro batches per optimizer step: accumulation x world size
    total: int      # optimizer steps in the run

    def step_end(self, step: int) -> StepEnd:
        start, end = (step - 1) * self.per_step, step * self.per_step  # the step's stream positions [start, end)
        return StepEnd(step, (end - 1) // self.per_epoch, end // self.per_epoch > start // self.per_epoch,
                       step == self.total)


class Callback:
    """One hook per event the loop reports; state that must survive a resume goes in state_dict."""

    name = "callback"  # key of its state in the checkpoint and of its summary in the record

    def on_step_end(self, model, at: StepEnd) -> None:
        """After every step, applied or skipped as non-finite (the weights are those after step `at.step`)."""

    def on_train_end(self, model, step: int) -> None:
        """After the last step (also when a resumed run had nothing left to train)."""

    def metrics(self) -> dict[str, float]:
        """Numbers merged into the record's metrics."""
        return {}

    def summary(self) -> dict | None:
        """The record's `<name>` field (None: none)."""
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict, model) -> None:
        """Restore `state_dict()` after the model's own state is loaded."""


class Callbacks:
    """The loop's callbacks, called in order; their states travel in the checkpoint by name."""

    def __init__(self, callbacks: Iterable[Callback] = ()):
        self.items = list(callbacks)
        names = [cb.name for cb in self.items]
        if len(set(names)) != len(names):
            raise ValueError(f"callback names must be unique (they key the checkpoint): {names}")

    def on_step_end(self, model, at: StepEnd) -> None:
        for cb in self.items:
            cb.on_step_end(model, at)

    def on_train_end(self, model, step: int) -> None:
        for cb in self.items:
            cb.on_train_end(model, step)

    def metrics(self) -> dict[str, float]:
        return {k: v for cb in self.items for k, v in cb.metrics().items()}

    def summaries(self) -> dict[str, dict]:
        return {cb.name: s for cb in self.items if (s := cb.summary()) is not None}

    def state_dict(self) -> dict:
        return {cb.name: cb.state_dict() for cb in self.items}

    def load_state_dict(self, state: dict, model) -> None:
        for cb in self.items:
            cb.load_state_dict(state.get(cb.name, {}), model)
