"""The loop's step/epoch bookkeeping and checkpoint selection as a callback: EpochClock against the
tags of the real (sharded, accumulated) micro-batch stream, the stream restarted at a saved position
against the uninterrupted one, the epoch-length contract, and ModelSelection's candidates, restore
and resume."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from loft.train.distributed import World, split_by_rank
from loft.core.errors import ConfigError
from loft.train.callbacks import Callbacks, EpochClock, StepEnd, micro_batches_per_epoch
from loft.train.selection import HalfSplit, ModelSelection
from loft.train.loop import _micro_batches


class TaggedTask:
    """Each micro batch is its (epoch, index in epoch, last of epoch) tag; `extra` batches break the contract."""

    name = "tagged"

    def __init__(self, n: int, extra: int = 0):
        self.n, self.extra = n, extra

    def num_train_examples(self) -> int:
        return self.n

    def train_batches(self, micro, epoch, seed):
        count = math.ceil(self.n / micro) + self.extra
        for i in range(count):
            yield epoch, i, i == count - 1


# (examples, micro batch, accumulation, world): the 2 x 2 steps, epochs not aligned with steps,
# several epoch ends in one step, and one example (matfac) whose epoch is shorter than a step
CASES = [(32, 16, 1, 1), (100, 8, 2, 1), (7, 1, 3, 2), (10, 2, 1, 2), (1, 4, 2, 1)]


@pytest.mark.parametrize("n, micro, accum, world", CASES)
def test_epoch_clock_matches_the_stream_every_rank_takes(n, micro, accum, world):
    task, total = TaggedTask(n), 9
    ranks = [split_by_rank(_micro_batches(task, micro, seed=0), World(rank, world)) for rank in range(world)]
    clock = EpochClock(micro_batches_per_epoch(n, micro), accum * world, total)
    for step in range(1, total + 1):
        taken = [next(stream) for stream in ranks for _ in range(accum)]
        expected = StepEnd(step, max(epoch for epoch, _, _ in taken), any(last for _, _, last in taken), step == total)
        assert clock.step_end(step) == expected


@pytest.mark.parametrize("n, micro, accum, world", CASES)
def test_stream_restarted_at_a_position_continues_the_uninterrupted_one(n, micro, accum, world):
    task = TaggedTask(n)
    straight = list(zip(range(40), _micro_batches(task, micro, seed=0)))
    for step in range(6):
        start = step * accum * world
        resumed = list(zip(range(40 - start), _micro_batches(task, micro, seed=0, start=start)))
        assert [b for _, b in resumed] == [b for _, b in straight[start:]]


@pytest.mark.parametrize("extra, got", [(1, "more than 2"), (-1, "1")])
def test_an_epoch_of_the_wrong_length_is_refused(extra, got):
    stream = _micro_batches(TaggedTask(4, extra), 2, seed=0)
    with pytest.raises(ConfigError, match=rf"yielded {got} micro batches in epoch 0, not ceil\(4 examples / 2\) = 2"):
        list(zip(range(10), stream))


def _linear():
    model = torch.nn.Linear(1, 1)
    model.bias.requires_grad_(False)
    return model


def _step(model, selection, step, *, epoch_end=False, total=6):
    with torch.no_grad():
        model.weight.fill_(step)  # the weight equals the step: what was scored and restored is visible
    selection.on_step_end(model, StepEnd(step, 0, epoch_end, step == total))


def test_selection_restores_the_best_checkpoint():
    model, scored = _linear(), []
    selection = ModelSelection(lambda m: scored.append(m.weight.item()) or -abs(m.weight.item() - 3), 1, examples=5)
    for step in range(1, 7):
        _step(model, selection, step)
    selection.on_train_end(model, 6)
    assert model.weight.item() == 3 and scored == [1, 2, 3, 4, 5, 6]  # the final model was scored once
    assert selection.metrics() == {"selected_step": 3.0, "selection_score": 0.0, "selection_examples": 5.0}


def test_selection_every_epoch_scores_epoch_ends_and_the_last_step():
    model = _linear()
    selection = ModelSelection(lambda m: -m.weight.item(), "epoch", examples=5)
    for step in range(1, 7):
        _step(model, selection, step, epoch_end=step in (2, 4))
    selection.on_train_end(model, 6)
    assert [c["step"] for c in selection.candidates] == [2, 4, 6] and model.weight.item() == 2
    every_two = ModelSelection(lambda m: 0.0, 2, examples=5)
    for step in range(1, 6):
        _step(model, every_two, step, total=5)
    assert [c["step"] for c in every_two.candidates] == [2, 4, 5]


def test_selection_state_survives_a_resume():
    """Interrupted after step 4 (best at step 3), restored into a fresh callback and model."""
    def score(m):
        return -abs(m.weight.item() - 3)

    model, straight = _linear(), ModelSelection(score, 1, examples=5)
    for step in range(1, 7):
        _step(model, straight, step)
    model, first = _linear(), ModelSelection(score, 1, examples=5)
    for step in range(1, 5):
        _step(model, first, step)
    state = copy.deepcopy(Callbacks([first]).state_dict())  # what the checkpoint holds
    model, resumed = _linear(), ModelSelection(score, 1, examples=5)
    with torch.no_grad():
        model.weight.fill_(4)  # the checkpoint's model
    Callbacks([resumed]).load_state_dict(state, model)
    for step in range(5, 7):
        _step(model, resumed, step)
    resumed.on_train_end(model, 6)
    assert model.weight.item() == 3 and resumed.summary() == straight.summary()


def test_selection_of_a_run_without_steps_scores_the_model_once():
    model = _linear()
    selection = ModelSelection(lambda m: 1.0, "epoch", examples=5)
    selection.on_train_end(model, 0)
    assert selection.summary()["candidates"] == [{"step": 0, "epoch": None, "score": 1.0}]


def test_nan_scores_never_win():
    model, scores = _linear(), iter([float("nan"), 0.5, float("nan")])
    selection = ModelSelection(lambda m: next(scores), 1, examples=5)
    for step in range(1, 4):
        _step(model, selection, step, total=3)
    selection.on_train_end(model, 3)
    assert model.weight.item() == 2 and selection.metrics()["selection_score"] == 0.5


def test_selection_by_lowest_loss_as_hf_trainer_load_best_model_at_end():
    """mode=min, final=False: candidates at multiples of `every` only (HF's eval_steps), the lowest
    loss wins, the first of equal losses stays (HF replaces the best only on a strictly lower one)."""
    losses = {2: 0.9, 4: 0.4, 6: 0.4, 7: 0.1}  # step 7 (the last) is no candidate: not on a boundary
    model = _linear()
    selection = ModelSelection(lambda m: losses[int(m.weight.item())], 2, examples=5, mode="min", final=False)
    for step in range(1, 8):
        _step(model, selection, step, total=7)
    selection.on_train_end(model, 7)
    assert [c["step"] for c in selection.candidates] == [2, 4, 6] and model.weight.item() == 4
    assert selection.metrics()["selection_score"] == 0.4
    nan_loss = ModelSelection(lambda m: float("nan") if m.weight.item() == 2 else 1.0, 2, examples=5, mode="min")
    for step in range(1, 5):
        _step(model, nan_loss, step, total=4)
    nan_loss.on_train_end(model, 4)
    assert model.weight.item() == 4  # a NaN loss never wins either
    short = ModelSelection(lambda m: 1.0, 80, examples=5, mode="min", final=False)
    for step in range(1, 4):
        _step(model, short, step, total=3)
    short.on_train_end(model, 3)  # no boundary reached: the final weights are kept (HF loads nothing)
    assert [c["step"] for c in short.candidates] == [3] and model.weight.item() == 3


def test_half_split_is_disjoint_fixed_and_covers_the_split():
    halves = HalfSplit("half", "epoch", seed=0)
    halves.split(277)
    a, b = set(halves.select_idx), set(halves.report_idx)
    assert len(a) == 138 and len(b) == 139 and not a & b and a | b == set(range(277))
    again = HalfSplit("half", "epoch", seed=0)
    again.split(277)
    assert (again.select_idx == halves.select_idx).all()
    last = HalfSplit("last", "epoch", seed=0)
    last.split(277)
    assert len(last.select_idx) == 0 and len(last.report_idx) == 277 and last.callbacks(lambda m, i: 0.0) == []
    with pytest.raises(ValueError, match="task.eval_every='often'"):
        HalfSplit("half", "often", seed=0)


def test_checkpoint_carries_callback_state_and_refuses_task_era_selection(tmp_path):
    from loft.train import checkpoint

    def fresh():
        model = _linear()
        optimizer = torch.optim.AdamW([model.weight], lr=0.1)
        return model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)

    model, optimizer, scheduler = fresh()
    selection = ModelSelection(lambda m: m.weight.item(), "epoch", examples=5)
    _step(model, selection, 2, epoch_end=True)
    path = tmp_path / "last.pt"
    checkpoint.save(path, model, optimizer, scheduler, {"step": 2}, callbacks=Callbacks([selection]))
    model, optimizer, scheduler = fresh()
    resumed = ModelSelection(lambda m: m.weight.item(), "epoch", examples=5)
    assert checkpoint.load(path, model, optimizer, scheduler, Callbacks([resumed])) == {"step": 2}
    assert resumed.summary() == selection.summary() and resumed.snapshot[0][0] is model.weight
    payload = torch.load(path, weights_only=False)
    payload["task"] = {"selection": {"best_step": 2}}  # what checkpoints held before selection was a callback
    torch.save(payload, path)
    with pytest.raises(ConfigError, match="predates checkpoint selection in the training loop.*resume=false"):
        checkpoint.load(path, *fresh(), Callbacks([resumed]))
