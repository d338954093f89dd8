"""The one training loop every task and method shares.

Features: gradient accumulation (batch_size / micro_batch_size), transformers' LR schedules
with warm-up, global-norm clipping (an optimizer's own `clip_grad_norm_` wins, so LoFT clips
the projected gradient), a guard that skips non-finite steps and stops after
`max_bad_steps` in a row, a guard that stops a finite divergence (a loss above
`divergence_factor` x the first step's loss, or above `divergence_loss`, for `divergence_steps`
steps in a row), per-step metrics (loss, lr, grad norm, step time, peak memory)
sent to the logger, a progress bar, and checkpoints every `checkpoint_every` steps and at the
end, from which a run resumes bit-for-bit (data position included: the micro-batch stream
restarts at the saved position of its deterministic (seed, epoch) order). Callbacks
(loft/train/callbacks.py, e.g. checkpoint selection) hear of every step's end with the epoch
position computed from the loop's counters, and their state travels in the checkpoint.
"""
from __future__ import annotations

import math
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm
from transformers import get_scheduler

from loft.train import checkpoint
from loft.train.distributed import World, gradient_sync, mean_over_ranks, split_by_rank
from loft.core.errors import ConfigError, TrainingDiverged
from loft.train.callbacks import Callbacks, EpochClock, micro_batches_per_epoch


class Interrupted(RuntimeError):
    """Raised by `trainer.stop_after_steps` (fault injection): the run ends like a killed process."""


@dataclass
class Checkpointing:
    path: Path | None = None       # None: no checkpoints
    every: int = 0                 # steps between checkpoints; 0 = only at the end
    resume: bool = False           # continue from `path` when it exists
    stop_after: int | None = None  # fault injection: stop after this step, no record
    config_hash: str = ""          # a checkpoint of another config is never resumed
    code_version: str | None = None  # git sha stored with the checkpoint (resume checks it)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    bad_steps: int = 0
    train_time_s: float = 0.0


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """The optimizer's own count (`state_bytes()`, e.g. LoFT's packed cross terms) when it has one,
    else the bytes of the tensors in `optimizer.state` (step counters excluded)."""
    if hasattr(optimizer, "state_bytes"):
        return int(optimizer.state_bytes())
    return sum(t.numel() * t.element_size() for st in optimizer.state.values() for t in st.values()
               if torch.is_tensor(t) and t.ndim > 0)


def total_steps(tcfg, num_examples: int) -> int:
    if tcfg.max_steps is not None and tcfg.max_steps >= 0:
        return int(tcfg.max_steps)
    return int(tcfg.epochs * math.ceil(num_examples / tcfg.batch_size))


def warmup_steps(tcfg, steps: int) -> int:
    """trainer.warmup_ratio of the run's steps, rounded down as PSOFT's fine-tuning_glue.py does
    (int(num_train_steps * warmup_ratio)), when set; else trainer.warmup_steps."""
    ratio = getattr(tcfg, "warmup_ratio", None)
    return tcfg.warmup_steps if ratio is None else int(steps * ratio)


def accumulation_steps(tcfg, world_size: int = 1) -> int:
    """Micro batches per rank per step: batch_size = micro_batch_size x accumulation x world_size."""
    micro = micro_batch_size(tcfg, world_size)
    if tcfg.batch_size % (micro * world_size):
        raise ConfigError(f"trainer.batch_size={tcfg.batch_size} is not a multiple of trainer.micro_batch_size={micro} "
                          f"x {world_size} processes")
    return tcfg.batch_size // (micro * world_size)


def micro_batch_size(tcfg, world_size: int = 1) -> int:
    return tcfg.micro_batch_size or tcfg.batch_size // world_size


def _micro_batches(task, micro: int, seed: int, start: int = 0):
    """The global micro-batch stream from position `start`: whole epochs before it are not
    generated. Epoch ends are placed by count (callbacks.EpochClock), so every epoch must hold
    exactly ceil(examples / micro) batches."""
    per_epoch = micro_batches_per_epoch(task.num_train_examples(), micro)
    if per_epoch == 0:
        raise ConfigError(f"task {task.name} has no training example; check task.max_train_samples")
    epoch, skip = divmod(start, per_epoch)
    while True:
        n = 0
        for batch in task.train_batches(micro, epoch, seed):
            n += 1
            if n > per_epoch:
                break
            if n > skip:
                yield batch
        if n != per_epoch:
            got = f"more than {per_epoch}" if n > per_epoch else str(n)
            raise ConfigError(f"task {task.name} yielded {got} micro batches in epoch {epoch}, not ceil("
                              f"{task.num_train_examples()} examples / {micro}) = {per_epoch}: its train_batches "
                              f"and num_train_examples disagree")
        epoch, skip = epoch + 1, 0


def train(model, optimizer, task, tcfg, seed: int, method_name: str,
          log: Callable[[dict, int], None] = lambda metrics, step: None,
          after_step: Callable[[int], None] | None = None,
          ckpt: Checkpointing = Checkpointing(), world: World = World(),
          callbacks: Callbacks | None = None) -> TrainResult:
    result = TrainResult()
    callbacks = callbacks or Callbacks()
    steps = total_steps(tcfg, task.num_train_examples())
    if steps == 0:
        callbacks.on_train_end(model, 0)
        return result
    accum = accumulation_steps(tcfg, world.size)
    micro = micro_batch_size(tcfg, world.size)
    clock = EpochClock(micro_batches_per_epoch(task.num_train_examples(), micro), accum * world.size, steps)
    scheduler = get_scheduler(tcfg.scheduler, optimizer, num_warmup_steps=warmup_steps(tcfg, steps), num_training_steps=steps)
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    clip = getattr(optimizer, "clip_grad_norm_", None) or (lambda n: torch.nn.utils.clip_grad_norm_(params, n))
    # consumed: micro batches of the global stream (all ranks), so a checkpoint resumes on any world size
    progress = {"step": 0, "consumed": 0, "micro_batch_size": micro, "bad_steps": 0, "history": [],
                "train_time_s": 0.0, "config_hash": ckpt.config_hash, "git_sha": ckpt.code_version}
    if ckpt.resume and ckpt.path is not None and ckpt.path.exists():
        progress = checkpoint.load(ckpt.path, model, optimizer, scheduler, callbacks)
        print(f"resumed from {ckpt.path} at step {progress['step']}")
    result.history, result.bad_steps = progress["history"], progress["bad_steps"]
    if progress.get("micro_batch_size", micro) != micro:
        raise ConfigError(f"{ckpt.path} was written with micro batches of {progress['micro_batch_size']}, this run uses "
                          f"{micro}; set trainer.micro_batch_size={progress['micro_batch_size']} to resume it")
    batches = split_by_rank(_micro_batches(task, micro, seed, start=progress["consumed"]), world)
    model.train()
    bad_in_a_row, above_in_a_row, last_finite = 0, 0, float("nan")
    start = time.perf_counter() - progress["train_time_s"]
    bar = tqdm(range(progress["step"] + 1, steps + 1), desc=f"train {method_name}", dynamic_ncols=True,
               mininterval=1.0, initial=progress["step"], total=steps)
    for step in bar:
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for i in range(accum):
            with gradient_sync(model, enabled=i == accum - 1):  # all-reduce once per step
                loss = task.loss(model, next(batches)) / accum
                loss.backward()
            loss_sum += loss.item()
        loss_sum = mean_over_ranks(loss_sum, world)  # every rank sees the same loss: they skip together
        progress["consumed"] += accum * world.size
        grad_norm = clip(tcfg.max_grad_norm) if tcfg.max_grad_norm else _grad_norm(params)
        grad_norm = float(grad_norm)
        if math.isfinite(loss_sum) and math.isfinite(grad_norm):
            bad_in_a_row, last_finite = 0, loss_sum
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            if after_step is not None:
                after_step(step)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            record = {"step": step, "loss": loss_sum, "lr": lr, "grad_norm": grad_norm,
                      "step_time_s": time.perf_counter() - t0, "peak_memory_bytes": peak_memory_bytes(device)}
            result.history.append(record)
            log({f"train/{k}": v for k, v in record.items() if k != "step"}, step)
            bar.set_postfix(loss=f"{loss_sum:.4g}", refresh=False)
            bound = divergence_bound(tcfg, result.history[0]["loss"])
            above_in_a_row = above_in_a_row + 1 if loss_sum > bound else 0
            if above_in_a_row >= tcfg.get("divergence_steps", 3):
                result.steps = step
                raise TrainingDiverged(f"loss above {bound:.3g} (the divergence bound from the first step's loss "
                                       f"{result.history[0]['loss']:.6g}) for {above_in_a_row} steps in a row up to "
                                       f"step {step} with method={method_name}; last loss {loss_sum:.6g}; lower "
                                       f"trainer.lr", result)
        else:
            result.bad_steps += 1
            bad_in_a_row += 1
            if bad_in_a_row >= tcfg.max_bad_steps:
                result.steps = step
                raise TrainingDiverged(f"{bad_in_a_row} non-finite steps in a row up to step {step} with "
                                       f"method={method_name}; last finite loss {last_finite:.6g}; lower trainer.lr",
                                       result)
        scheduler.step()  # a skipped step still advances the schedule, so step k always has lr_k
        progress.update(step=step, bad_steps=result.bad_steps, train_time_s=time.perf_counter() - start)
        callbacks.on_step_end(model, clock.step_end(step))  # before the checkpoint: it holds their state
        if ckpt.path is not None and (step == steps or (ckpt.every and step % ckpt.every == 0)):
            checkpoint.save(ckpt.path, model, optimizer, scheduler, progress, write=world.is_main, callbacks=callbacks)
        if ckpt.stop_after is not None and step >= ckpt.stop_after and step < steps:
            raise Interrupted(f"stopped after step {step} (trainer.stop_after_steps); "
                              f"checkpoint: {ckpt.path if ckpt.every else 'none (set trainer.checkpoint_every)'}")
    result.steps = steps
    result.train_time_s = time.perf_counter() - start
    callbacks.on_train_end(model, steps)
    return result


def divergence_bound(tcfg, first_loss: float) -> float:
    """divergence_factor x |first loss| (a loss of 0 gives no relative bound), at most divergence_loss."""
    cap = float(tcfg.get("divergence_loss", 1e30))
    relative = float(tcfg.get("divergence_factor", 1e4)) * abs(first_loss)
    return min(relative, cap) if relative > 0 else cap


@torch.no_grad()
def _grad_norm(params) -> float:
    grads = [p.grad for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([g.float().norm() for g in grads])).item() if grads else 0.0
