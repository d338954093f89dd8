"""Checks a run passes before anything is built: value ranges, the fields every task and model
share, a task paired with a model it can train, and writable results folders. Each failure is a
ConfigError of one line, `key=value: allowed ...`; run.py prints it as `error: ...` and exits 2.

Types are checked earlier, while Hydra composes (loft/config_schema.py); `compose_error_line`
turns Hydra's several-line report of a type error into the same one-line form.
"""
from __future__ import annotations

import dataclasses
import math
import re
import tempfile
import typing
from pathlib import Path
from typing import Any, Callable

from loft.config_schema import LoftConfig
from loft.core.errors import ConfigError

MODEL_KINDS = ("causal_lm", "seq_cls", "image_cls", "matrix")
RESUME = ("auto", "true", "false")
QUANTIZATIONS = ("none", "nf4", "fp4")  # model.quantization (loft/quantization.py loads them)
MAX_SEED = 2**32 - 1  # numpy's seed range (transformers.set_seed seeds numpy too)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        shown = "null" if value is None else value
        raise ConfigError(f"{key}={shown}: allowed {allowed}")


def _int_at_least(key: str, value, low: int, optional: bool = False, extra: str = "") -> None:
    ok = (optional and value is None) or (_is_int(value) and value >= low)
    _check(ok, key, value, f"an integer >= {low}" + (" or null" if optional else "") + extra)


def _positive(key: str, value, optional: bool = False, zero: bool = False) -> None:
    ok = (optional and value is None) or (_is_number(value) and (value >= 0 if zero else value > 0))
    _check(ok, key, value, f"a number {'>=' if zero else '>'} 0" + (" or null" if optional else ""))


def validate(cfg) -> None:
    """Raise ConfigError naming the first bad key of a composed config (no side effects)."""
    _int_at_least("rank", cfg.rank, 1)
    _check(_is_int(cfg.seed) and 0 <= cfg.seed <= MAX_SEED, "seed", cfg.seed, f"an integer in [0, {MAX_SEED}]")
    _check(_is_number(cfg.adapter_dropout) and 0 <= cfg.adapter_dropout < 1, "adapter_dropout",
           cfg.adapter_dropout, "a number in [0, 1)")
    _check(str(cfg.resume).lower() in RESUME, "resume", cfg.resume, ", ".join(RESUME))
    _validate_trainer(cfg.trainer)
    _validate_task_and_model(cfg.task, cfg.model)
    _validate_scheduler(cfg.trainer)


def _validate_trainer(t) -> None:
    _positive("trainer.lr", t.lr)
    _positive("trainer.head_lr", t.head_lr, optional=True)
    _positive("trainer.eps", t.eps)
    _positive("trainer.weight_decay", t.weight_decay, zero=True)
    betas = list(t.betas)
    _check(len(betas) == 2 and all(_is_number(b) and 0 <= b < 1 for b in betas), "trainer.betas", betas,
           "two numbers in [0, 1)")
    _int_at_least("trainer.batch_size", t.batch_size, 1)
    _int_at_least("trainer.micro_batch_size", t.micro_batch_size, 1, optional=True)
    if t.micro_batch_size is not None:
        _check(t.batch_size % t.micro_batch_size == 0, "trainer.micro_batch_size", t.micro_batch_size,
               f"a divisor of trainer.batch_size={t.batch_size} (gradient accumulation) or null")
    _int_at_least("trainer.max_steps", t.max_steps, 0, optional=True, extra=" (0 = evaluate only)")
    if t.max_steps is None:  # epochs decide the length only when max_steps is unset
        _int_at_least("trainer.epochs", t.epochs, 1, extra=" (or set trainer.max_steps; 0 = evaluate only)")
    _int_at_least("trainer.warmup_steps", t.warmup_steps, 0)
    if t.get("warmup_ratio") is not None:
        _check(_is_number(t.warmup_ratio) and 0 <= t.warmup_ratio < 1 and t.warmup_steps == 0, "trainer.warmup_ratio",
               t.warmup_ratio, "a fraction in [0, 1) of the run's steps, with trainer.warmup_steps=0")
    _positive("trainer.max_grad_norm", t.max_grad_norm, optional=True)
    _int_at_least("trainer.max_bad_steps", t.max_bad_steps, 1)
    _check(_is_number(t.divergence_factor) and t.divergence_factor > 1, "trainer.divergence_factor",
           t.divergence_factor, "a number > 1 (x the first step's loss)")
    _positive("trainer.divergence_loss", t.divergence_loss)
    _int_at_least("trainer.divergence_steps", t.divergence_steps, 1)
    _int_at_least("trainer.checkpoint_every", t.checkpoint_every, 0, extra=" (0 = no checkpoints)")
    _int_at_least("trainer.stop_after_steps", t.stop_after_steps, 1, optional=True)


def _validate_scheduler(t) -> None:
    from transformers.trainer_utils import SchedulerType  # imports peft, bitsandbytes: checked last

    schedulers = [s.value for s in SchedulerType]
    _check(t.scheduler in schedulers, "trainer.scheduler", t.scheduler, ", ".join(schedulers))


def _validate_task_and_model(task, model) -> None:
    for key, value in (("task.name", task.get("name")), ("model.name", model.get("name"))):
        _check(isinstance(value, str) and bool(value), key, value, "a non-empty name")
    for key in ("max_train_samples", "eval_limit"):
        if key in task:
            _int_at_least(f"task.{key}", task[key], 1, optional=True, extra=" (null = all rows)")
    if "quantization" in model:
        _check(model.quantization in QUANTIZATIONS, "model.quantization", model.quantization, ", ".join(QUANTIZATIONS))
    kind = model.get("kind")
    _check(kind in MODEL_KINDS, "model.kind", kind, f"one of {', '.join(MODEL_KINDS)} (declare it in conf/model/)")
    from hydra.utils import get_class

    trains = get_class(task._target_).model_kinds
    if not trains:
        raise ConfigError(f"{task._target_} declares no model_kinds: set it on the task class (one of {MODEL_KINDS})")
    if kind not in trains:
        raise ConfigError(f"task={task.name} model={model.name}: the task trains a {' or '.join(trains)} model, "
                          f"model={model.name} is a {kind}; pick a model of that kind (conf/model/*.yaml, kind:)")


def check_writable(cfg, absolute: Callable[[str], Path]) -> None:
    """Create the results folders and write a file in each now, not after the run has trained."""
    keys = ["runs_dir"] + (["checkpoint_dir"] if cfg.trainer.checkpoint_every else [])
    for key in keys:
        folder = absolute(cfg.paths[key])
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
                pass
        except OSError as err:
            raise ConfigError(f"paths.{key}={folder} is not writable ({err.strerror or err}): "
                              f"fix its permissions or choose another with paths.{key}=PATH") from None


# --- Hydra's composition errors in one line ------------------------------------------------

def _schema_type(dotted: str):
    """The annotation of a schema field (`trainer.lr` -> float), or None outside the schema."""
    node: Any = LoftConfig
    hint = None
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(node):
            return None
        hint = typing.get_type_hints(node).get(part)
        if hint is None:
            return None
        node = hint
    return hint


def _describe(hint) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union and type(None) in args:
        return _describe(next(a for a in args if a is not type(None))) + " or null"
    if typing.get_origin(hint) in (list, typing.List):
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def compose_error_line(err: BaseException) -> str:
    """`rank=abc: allowed an integer` for a type error; other messages with their lines joined."""
    from omegaconf.errors import OmegaConfBaseException, ValidationError

    cause = err if isinstance(err, OmegaConfBaseException) else err.__cause__
    if isinstance(cause, ValidationError) and cause.full_key:
        hint = _schema_type(cause.full_key)
        if hint is not None:
            return f"{cause.full_key}={cause.value}: allowed {_describe(hint)}"
    if err is cause and getattr(err, "full_key", None):  # e.g. an interpolation that does not resolve
        return f"{err.full_key}: {str(err).strip().splitlines()[0]}"
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    if cause is not None and cause is not err:
        first = str(cause).strip().splitlines()[:1]
        text += f" ({first[0]})" if first else ""
    return re.sub(r"\s+", " ", text)
