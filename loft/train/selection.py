"""Checkpoint selection as PSOFT does it (fei407/PSOFT 1-NLU/fine-tuning_glue.py), split in two:

- `HalfSplit` (the task's side): the validation rows are shuffled by `selection_seed` (not the
  run's seed: every method and seed is reported on the same rows) and halved; the first half
  picks the checkpoint, the other half reports it. mode=last: no picking, all rows report.
- `ModelSelection` (the loop's callback, like Lightning's ModelCheckpoint with mode=max, or
  mode=min for a loss):
  scores the model on the selection half at the candidate steps (every `every` steps, or at
  each epoch's end with every=epoch, and always the last step), keeps a snapshot of the best
  trainable tensors, and loads it back when training ends. Candidates come from the loop's
  counters and the best snapshot travels in the run's checkpoint, so a resumed run scores
  and selects exactly what the uninterrupted run does.
- `SelectsCheckpoint` (a mixin for the task class): hands the loop that callback, scoring the
  task's own `_selection_score` (GLUE, and the image tasks with selection=half).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from loft.core.errors import ConfigError
from loft.train.callbacks import Callback, StepEnd


class HalfSplit:
    def __init__(self, mode: str, every, seed: int):
        if mode not in ("half", "last"):
            raise ConfigError(f"task.selection={mode!r}: use half or last")
        if not (every == "epoch" or (isinstance(every, int) and not isinstance(every, bool) and every >= 0)):
            raise ConfigError(f"task.eval_every={every!r}: use a number of steps, 0 (end only) or epoch")
        self.mode, self.every, self.seed = mode, every, int(seed)
        self.select_idx: np.ndarray = np.arange(0)
        self.report_idx: np.ndarray = np.arange(0)

    def split(self, n: int) -> None:
        """Halves of n validation examples (report = all of them with mode=last)."""
        if self.mode == "last":
            self.select_idx, self.report_idx = np.arange(0), np.arange(n)
            return
        if n < 2:
            raise ConfigError(f"task.selection=half needs at least 2 validation examples, got {n} (raise task.eval_limit)")
        order = np.random.default_rng(self.seed).permutation(n)
        self.select_idx, self.report_idx = np.sort(order[: n // 2]), np.sort(order[n // 2:])

    def callbacks(self, score: Callable) -> list[Callback]:
        """`score(model, indices) -> float` (higher is better): the task's main metric."""
        if self.mode == "last":
            return []
        return [ModelSelection(lambda model: score(model, self.select_idx), self.every, len(self.select_idx))]


class SelectsCheckpoint:
    """Mixin for a task reported the PSOFT way: `self.halves` (a HalfSplit of its validation rows)
    gives the loop a ModelSelection callback that scores `_selection_score` on the selection half
    and leaves the best checkpoint in the model; the task's `evaluate` then reports on
    `halves.report_idx`. Listed before the task's base class, so its `callbacks` wins."""

    halves: HalfSplit

    def callbacks(self) -> list[Callback]:
        return self.halves.callbacks(self._selection_score)

    def _selection_score(self, model, idx) -> float:
        """The main metric on validation rows `idx` (higher is better)."""
        raise NotImplementedError


class ModelSelection(Callback):
    name = "selection"

    def __init__(self, score: Callable, every, examples: int, mode: str = "max", final: bool = True):
        """mode=min keeps the lowest score (a validation loss); final=False makes the last step a
        candidate only on an `every` boundary or when there is no other, as HF's Trainer does."""
        if mode not in ("max", "min"):
            raise ValueError(f"ModelSelection mode={mode!r}: use max or min")
        self.score, self.every, self.examples = score, every, int(examples)
        self.sign, self.final = (1.0 if mode == "max" else -1.0), bool(final)
        self.candidates: list[dict] = []  # {"step", "epoch", "score"} in the order scored
        self.best_at: int | None = None  # index of the best candidate
        self.snapshot: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def due(self, at: StepEnd) -> bool:
        if at.final and self.final:
            return True
        if self.every == "epoch":
            return at.epoch_end
        return bool(self.every) and at.step % self.every == 0

    def on_step_end(self, model, at: StepEnd) -> None:
        if self.due(at):
            self._consider(model, at.step, at.epoch)

    def on_train_end(self, model, step: int) -> None:
        if not self.candidates or (self.final and self.candidates[-1]["step"] != step):  # e.g. a run of 0 steps
            self._consider(model, step, None)
        with torch.no_grad():
            for p, saved in self.snapshot:
                p.copy_(saved)

    def _consider(self, model, step: int, epoch: int | None) -> None:
        score = float(self.score(model))
        if math.isnan(score):
            score = -math.inf * self.sign  # e.g. Pearson of constant predictions: never better than a number
        self.candidates.append({"step": step, "epoch": epoch, "score": score})
        if self.best_at is None or self.sign * score > self.sign * self.candidates[self.best_at]["score"]:
            self.best_at = len(self.candidates) - 1
            # The same tensor objects as the live model (also through a DDP wrapper): restore by identity.
            self.snapshot = [(p, p.detach().clone()) for p in model.parameters() if p.requires_grad]

    @property
    def best(self) -> dict:
        return self.candidates[self.best_at]

    def metrics(self) -> dict[str, float]:
        return {"selected_step": float(self.best["step"]), "selection_score": self.best["score"],
                "selection_examples": float(self.examples)}

    def summary(self) -> dict:
        return {"every": self.every, "examples": self.examples, "selected_step": self.best["step"],
                "candidates": [dict(c) for c in self.candidates]}

    def state_dict(self) -> dict:
        return {"candidates": [dict(c) for c in self.candidates],
                "best_at": self.best_at,
                "snapshot": None if self.snapshot is None else [saved for _, saved in self.snapshot]}

    def load_state_dict(self, state: dict, model) -> None:
        self.candidates, self.best_at, self.snapshot = [], None, None
        if not state:
            return
        self.candidates = [dict(c) for c in state["candidates"]]
        self.best_at = state["best_at"]
        if self.best_at is not None:
            params = [p for p in model.parameters() if p.requires_grad]  # saved in this order
            self.snapshot = [(p, saved.to(p.device)) for p, saved in zip(params, state["snapshot"], strict=True)]
