"""One run: config -> model -> method -> task (train, evaluate) -> JSON record.

`run(cfg)` is what `run.py` calls for every Hydra job; tests call it with a composed config.
"""
from __future__ import annotations

import itertools
import numbers
import os
import sys
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import hydra
import torch
import transformers
from omegaconf import DictConfig, OmegaConf

from loft import adapters, quantization
from loft.core import schema
from loft.core.dtypes import resolve_dtype
from loft.core.errors import ConfigError, DamagedFileError, TrainingDiverged
from loft.core.key import RunKey
from loft.core.paths import REPO
from loft.locking import record_lock
from loft.methods import MethodContext, build_method
from loft.models import load_model
from loft.records import columnar, config_hash, git_sha, versions, write_json_atomic
from loft.config_schema import hash_ignores
from loft.train.callbacks import Callbacks
from loft.train.checkpoint import read_checkpoint_progress
from loft.train.distributed import init_world, sharding_engine, wrap
from loft.train.loop import (Checkpointing, TrainResult, accumulation_steps, micro_batch_size, optimizer_state_bytes,
                             peak_memory_bytes, total_steps, train)
from loft.train.tracking import Tracker
from loft.validation import check_writable, validate
from loft.variant import variant_of


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def absolute(path: str) -> Path:
    """Relative paths in the config are relative to the repository, not Hydra's run dir."""
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else REPO / p


def run_key(cfg: DictConfig, variant: str = "") -> RunKey:
    uses_rank = cfg.method.adapter.kind != "none"
    return RunKey(cfg.task.name, cfg.model.name, cfg.method.name, int(cfg.rank) if uses_rank else None,
                  int(cfg.seed), variant)


def job_overrides() -> list[str]:
    """The command-line overrides of the Hydra job being run ([] outside one, e.g. under compose)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def run(cfg: DictConfig, overrides: list[str] | None = None) -> dict | None:
    """Train and evaluate one (model, task, method, rank, seed) in its variant (`tag`, or the
    `overrides` not part of the key; default: the Hydra job's); return its record, or None when a
    finished record with the same config already exists (unless force=true). One process per
    record name: a second one refuses at start (RunLocked)."""
    validate(cfg)  # bad values and a task/model mismatch fail here, in one line, before anything is built
    check_writable(cfg, absolute)
    tag = cfg.get("tag") or ""
    if "/" in tag:
        raise ConfigError(f"tag={tag} must not contain '/'; it becomes part of a file name")
    key = run_key(cfg, tag or variant_of(job_overrides() if overrides is None else overrides))
    runs_dir = absolute(cfg.paths.runs_dir)
    main_process = os.environ.get("RANK", "0") == "0"  # torchrun: rank 0 holds the lock for all ranks
    with record_lock(key.lock_path(runs_dir), runs_dir / key.relative_path()) if main_process else nullcontext():
        return _run(cfg, key, runs_dir / key.relative_path())


def _run(cfg: DictConfig, key: RunKey, path: Path) -> dict | None:
    config = OmegaConf.to_container(cfg, resolve=True)
    digest = config_hash(config, ignore=hash_ignores(cfg, full_ft=key.rank is None))
    force = bool(cfg.force)
    if path.exists() and not force:
        try:
            existing = schema.read(path)
        except schema.RecordError as err:
            raise DamagedFileError(f"cannot read record {path} ({err}): force=true reruns the run and replaces it") from None
        if existing["config_hash"] != digest:
            raise ConfigError(f"{path} holds this run with a different config; force=true replaces it, tag=NAME keeps both")
        print(f"skip: {path} is finished (status {existing['status']}; force=true reruns it)")
        return None
    code = git_sha()
    ckpt, resumed_from = checkpointing(cfg, key, digest, code)

    adapter_from = adapters.source(cfg)  # model.adapter=PATH, checked against this run before anything is built
    transformers.set_seed(int(cfg.seed))
    world, world_device = init_world()
    device = world_device or resolve_device(cfg.trainer.device)
    dtype = resolve_dtype(cfg.trainer.dtype, device, setting="trainer.dtype")
    task = hydra.utils.instantiate(cfg.task, _recursive_=False, _convert_="all")
    bundle = load_model(cfg.model, **task.model_args())
    sharded = world.size > 1 and sharding_engine() == "fsdp"  # fully_shard moves each shard to the GPU itself
    # a 4-bit base keeps its codes; under FSDP the model stays on the CPU (70B does not fit one GPU whole)
    quantization.place(bundle.model, torch.device("cpu") if sharded else device, dtype)
    task.setup(bundle, str(absolute(cfg.paths.data_dir)))
    hp = {"lr": cfg.trainer.lr, "betas": tuple(cfg.trainer.betas), "eps": cfg.trainer.eps,
          "weight_decay": cfg.trainer.weight_decay, "head_lr": cfg.trainer.get("head_lr")}
    micro = micro_batch_size(cfg.trainer, world.size)
    ctx = MethodContext(int(cfg.rank), hp, bundle.target_modules, bundle.head_modules,
                        total_steps(cfg.trainer, task.num_train_examples()),
                        lambda n: itertools.islice(task.train_batches(micro, 0, int(cfg.seed)), n), task.loss,
                        adapter_path=adapter_from)
    method = build_method(cfg.method, bundle.model, ctx, parallel=lambda m: wrap(m, world))
    saver = adapters.Saver(cfg, method.model, bundle.head_modules) if cfg.trainer.save_adapter and world.is_main else None

    tracker = Tracker(cfg.logger, key.run_id(), str(key.relative_path().with_suffix("")), config,
                      group=f"{key.task}/{key.model}", enabled=world.is_main)
    start = time.perf_counter()
    callbacks = Callbacks(task.callbacks())  # checkpoint selection leaves the picked weights in the model
    diverged = None
    try:
        result = train(method.train_model, method.optimizer, task, cfg.trainer, int(cfg.seed), cfg.method.name,
                       tracker.log, after_step=method.after_step, ckpt=ckpt, world=world, callbacks=callbacks)
        metrics = {**task.evaluate(method.model), **callbacks.metrics()}  # the same weights on every rank; rank 0 writes
        metrics = {k: float(v) if isinstance(v, numbers.Real) and not isinstance(v, bool) else v
                   for k, v in metrics.items()}  # numpy scalars as JSON numbers
    except TrainingDiverged as err:  # recorded (status diverged, not evaluated), then the run fails
        diverged, result, metrics = err, err.result or TrainResult(), {}
    status = "diverged" if diverged else "partial" if 2 * result.bad_steps >= max(result.steps, 1) else "ok"
    # after evaluate: model selection may have restored the weights the metrics describe
    adapter = saver.save(adapters.folder_for(path, absolute(cfg.paths.runs_dir), absolute(cfg.paths.adapters_dir)),
                         path, config) if saver and not diverged else None
    record = {
        "schema": schema.SCHEMA,
        "task": key.task, "model": key.model, "method": key.method, "rank": key.rank, "seed": key.seed,
        "variant": key.variant, "tag": cfg.get("tag") or "",
        "status": status, "stopped": str(diverged) if diverged else None, "resumed_from": resumed_from,
        "metrics": metrics,
        "final_train_loss": result.history[-1]["loss"] if result.history else None,
        "steps": result.steps, "bad_steps": result.bad_steps,
        "trainable_params": method.trainable_params,
        "total_params": sum(p.numel() for p in method.model.parameters()),
        "optimizer_state_bytes": optimizer_state_bytes(method.optimizer),
        "wall_time_s": time.perf_counter() - start, "train_time_s": result.train_time_s,
        "peak_memory_bytes": peak_memory_bytes(device),
        "device": str(device), "dtype": str(dtype).replace("torch.", ""), "world_size": world.size,
        "parallelism": (sharding_engine() or "ddp") if world.size > 1 else "none",
        "effective_batch_size": cfg.trainer.batch_size,
        "micro_batch_size": micro, "accumulation_steps": accumulation_steps(cfg.trainer, world.size),
        "method_info": method.info,
        **callbacks.summaries(),  # `selection`: candidate steps, their scores, the step picked
        "adapter": adapter,  # {path, format, sha256} of results/adapters/<record name>/, or None
        "notes": list(getattr(task, "notes", [])),  # e.g. a partial offline union, a missing eval set
        "data": task.provenance() or None,  # {train_file, rows, sha256} of the training data; None = unknown
        "versions": versions(), "git_sha": code,
        "config": config, "config_hash": digest,
        "history": columnar(result.history),
    }
    schema.check(record, path)  # the writer obeys the schema its readers enforce
    if world.is_main:
        if path.exists():  # force=true: the old record is kept beside (a hard link), never replaced silently
            old = path.with_name(f"{path.name}.replaced-{datetime.now(timezone.utc):%Y%m%dT%H%M%S.%fZ}")
            os.link(path, old)
            print(f"replaced: the previous record is kept as {old}")
        write_json_atomic(path, record)
        if adapter:
            tracker.log_adapter(Path(adapter["path"]), adapter["sha256"])
        tracker.finish({f"eval/{k}": v for k, v in metrics.items()})
        print(f"record: {path} (status {status})" + ("\nmetrics: " + ", ".join(f"{k}={v:.6g}" for k, v in metrics.items())
                                                      if metrics else ""))
        if result.bad_steps and not diverged:
            print(f"warning: {result.bad_steps} of {result.steps} steps were skipped as non-finite (status {status}; "
                  f"tables mark this run); lower trainer.lr", file=sys.stderr)
    if diverged:
        raise diverged
    return record


def checkpointing(cfg: DictConfig, key: RunKey, digest: str, code: str | None) -> tuple[Checkpointing, dict | None]:
    """Where this run checkpoints, whether it continues an earlier checkpoint, and from where.

    force=true discards this name's checkpoint: the run trains again from step 0. resume=auto
    (default) continues a checkpoint written by the same config and the same code (git sha), so
    relaunching an interrupted sweep resumes its partial runs; resume=true insists, and may cross
    a code change (the record's `resumed_from` names the checkpoint's code); resume=false starts
    over. A checkpoint of another config is never resumed."""
    every = int(cfg.trainer.checkpoint_every or 0)
    path = absolute(cfg.paths.checkpoint_dir) / key.relative_path().with_suffix("") / "last.pt"
    resume = str(cfg.resume).lower()  # one of auto, true, false (loft/validation.py)
    if cfg.force:
        if resume == "true":
            raise ConfigError("force=true trains again from step 0; it cannot be combined with resume=true")
        if path.exists():
            path.unlink()
            print(f"force: discarded the checkpoint {path}; training from step 0")
        resume = "false"
    resumed_from = None
    if resume != "false" and every and path.exists():
        saved = read_checkpoint_progress(path)
        if saved.get("config_hash") != digest:
            if resume == "true":
                raise ConfigError(f"{path} was written by a different config; resume=false starts over")
            print(f"note: ignoring {path}, written by a different config; training from step 0")
            resume = "false"
        elif saved.get("git_sha") != code and resume == "auto":
            print(f"note: ignoring {path}, written by code {saved.get('git_sha')} (this is {code}); training from "
                  f"step 0 (resume=true continues it)")
            resume = "false"
        else:
            resumed_from = {"step": saved["step"], "git_sha": saved.get("git_sha")}
    elif resume == "true":
        print("note: resume=true but no checkpoint exists for this run (set trainer.checkpoint_every); starting fresh")
    stop = cfg.trainer.get("stop_after_steps")
    ckpt = Checkpointing(path if every else None, every, resume != "false", int(stop) if stop is not None else None,
                         digest, code)
    return ckpt, resumed_from
