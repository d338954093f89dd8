"""One run: config -> model -> method -> task (train, evaluate) -> JSON record.

`run(cfg)` is what `run.py` calls for every Hydra job; tests call it with a composed config.
"""
from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import hydra
import torch
import transformers
from omegaconf import DictConfig, OmegaConf

from loft.errors import ConfigError
from loft.methods import MethodContext, build_method
from loft.records import RunKey, columnar, config_hash, git_sha, read_record, versions, write_json_atomic
from loft.tracking import Tracker
from loft.checkpoint import read_checkpoint_hash
from loft.distributed import init_world, sharding_engine, wrap
from loft.training import (Checkpointing, accumulation_steps, micro_batch_size, peak_memory_bytes, total_steps,
                           train)

REPO = Path(__file__).resolve().parents[1]
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise ConfigError(f"trainer.dtype={name} is not one of auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def absolute(path: str) -> Path:
    """Relative paths in the config are relative to the repository, not Hydra's run dir."""
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else REPO / p


def run_key(cfg: DictConfig) -> RunKey:
    uses_rank = cfg.method.adapter.kind != "none"
    return RunKey(cfg.task.name, cfg.model.name, cfg.method.name, int(cfg.rank) if uses_rank else None,
                  int(cfg.seed), cfg.get("tag") or "")


def run(cfg: DictConfig) -> dict | None:
    """Train and evaluate one (model, task, method, rank, seed); return its record, or None
    when a finished record with the same config already exists (unless force=true)."""
    key = run_key(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    path = absolute(cfg.paths.runs_dir) / key.relative_path()
    digest = config_hash(config, ignore=("rank",) if key.rank is None else ())  # full FT: rank is moot
    if path.exists() and not cfg.force:
        existing = read_record(path)
        if existing.get("config_hash") != digest:
            raise ConfigError(f"{path} holds this run with a different config; force=true replaces it, tag=NAME keeps both")
        print(f"skip: {path} is finished (force=true reruns it)")
        return None

    transformers.set_seed(int(cfg.seed))
    world, world_device = init_world()
    device = world_device or resolve_device(cfg.trainer.device)
    dtype = resolve_dtype(cfg.trainer.dtype, device)
    task = hydra.utils.instantiate(cfg.task, _recursive_=False, _convert_="all")
    bundle = task.build_model(cfg.model)
    sharded = world.size > 1 and sharding_engine() == "fsdp"  # fully_shard moves each shard to the GPU itself
    bundle.model.to(device=torch.device("cpu") if sharded else device, dtype=dtype)  # (70B does not fit one GPU whole)
    task.setup(bundle, str(absolute(cfg.paths.data_dir)))
    hp = {"lr": cfg.trainer.lr, "betas": tuple(cfg.trainer.betas), "eps": cfg.trainer.eps,
          "weight_decay": cfg.trainer.weight_decay, "head_lr": cfg.trainer.get("head_lr")}
    micro = micro_batch_size(cfg.trainer, world.size)
    ctx = MethodContext(int(cfg.rank), hp, bundle.target_modules, bundle.head_modules,
                        total_steps(cfg.trainer, task.num_train_examples()),
                        lambda n: itertools.islice(task.train_batches(micro, 0, int(cfg.seed)), n), task.loss)
    method = build_method(cfg.method, bundle.model, ctx, parallel=lambda m: wrap(m, world))

    tracker = Tracker(cfg.logger, key.run_id(), str(key.relative_path().with_suffix("")), config,
                      group=f"{key.task}/{key.model}", enabled=world.is_main)
    start = time.perf_counter()
    ckpt = checkpointing(cfg, key, digest)
    result = train(method.train_model, method.optimizer, task, cfg.trainer, int(cfg.seed), cfg.method.name,
                   tracker.log, after_step=method.after_step, ckpt=ckpt, world=world)
    metrics = task.evaluate(method.model)  # every rank holds the same weights; only rank 0 writes
    record = {
        "task": key.task, "model": key.model, "method": key.method, "rank": key.rank, "seed": key.seed,
        "tag": key.tag,
        "metrics": metrics,
        "final_train_loss": result.history[-1]["loss"] if result.history else None,
        "steps": result.steps, "bad_steps": result.bad_steps,
        "trainable_params": method.trainable_params,
        "total_params": sum(p.numel() for p in method.model.parameters()),
        "optimizer_state_bytes": _state_bytes(method.optimizer),
        "wall_time_s": time.perf_counter() - start, "train_time_s": result.train_time_s,
        "peak_memory_bytes": peak_memory_bytes(device),
        "device": str(device), "dtype": str(dtype).replace("torch.", ""), "world_size": world.size,
        "parallelism": (sharding_engine() or "ddp") if world.size > 1 else "none",
        "effective_batch_size": cfg.trainer.batch_size,
        "micro_batch_size": micro, "accumulation_steps": accumulation_steps(cfg.trainer, world.size),
        "method_info": method.info,
        "notes": list(getattr(task, "notes", [])),  # e.g. a partial offline union, a missing eval set
        "versions": versions(), "git_sha": git_sha(),
        "config": config, "config_hash": digest,
        "history": columnar(result.history),
    }
    if world.is_main:
        write_json_atomic(path, record)
        tracker.finish({f"eval/{k}": v for k, v in metrics.items()})
        print(f"record: {path}\nmetrics: " + ", ".join(f"{k}={v:.6g}" for k, v in metrics.items()))
    return record


def checkpointing(cfg: DictConfig, key: RunKey, digest: str) -> Checkpointing:
    """Where this run checkpoints, and whether it continues an earlier checkpoint.

    resume=auto (default) continues a checkpoint written by the same config, so relaunching an
    interrupted sweep resumes its partial runs; resume=true insists (a checkpoint of another
    config is an error); resume=false starts over."""
    every = int(cfg.trainer.checkpoint_every or 0)
    path = absolute(cfg.paths.checkpoint_dir) / key.relative_path().with_suffix("") / "last.pt" if every else None
    resume = str(cfg.resume).lower()
    if resume not in ("auto", "true", "false"):
        raise ConfigError(f"resume={cfg.resume} must be auto, true or false")
    if resume != "false" and path is not None and path.exists():
        saved = read_checkpoint_hash(path)
        if saved != digest:
            if resume == "true":
                raise ConfigError(f"{path} was written by a different config; resume=false starts over")
            print(f"note: ignoring {path}, written by a different config")
            resume = "false"
    elif resume == "true":
        print("note: resume=true but no checkpoint exists for this run (set trainer.checkpoint_every); starting fresh")
    stop = cfg.trainer.get("stop_after_steps")
    return Checkpointing(path, every, resume != "false", int(stop) if stop is not None else None, digest)


def _state_bytes(optimizer) -> int:
    if hasattr(optimizer, "state_bytes"):
        return optimizer.state_bytes()
    return sum(t.numel() * t.element_size() for st in optimizer.state.values() for t in st.values()
               if torch.is_tensor(t) and t.ndim > 0)
