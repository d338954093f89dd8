"""Checkpoints that let a run continue bit-for-bit: trainable weights, optimizer state (LoFT's
included), scheduler, RNG states (python, numpy, torch, CUDA), the step, the number of micro
batches consumed (the data position), the history so far and the loop's callbacks' states
(checkpoint selection's best snapshot).

One file per run key (`<checkpoint_dir>/<task>/<model>/<method>/<rank>_seed<seed>/last.pt`),
replaced atomically, so an interruption at any moment leaves the previous checkpoint intact.
"""
from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import torch

from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
                                                     set_model_state_dict, set_optimizer_state_dict)

from loft.records import atomic_path
from loft.train.distributed import is_fsdp_sharded, unwrap
from loft.core.errors import ConfigError, DamagedFileError


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Trainable tensors by name, without DDP's `module.` prefix (a checkpoint of a 2-process
    run loads into a 1-process run and back); FSDP shards are gathered into full tensors."""
    model = unwrap(model)
    if is_fsdp_sharded(model):
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        names = {name for name, p in model.named_parameters() if p.requires_grad}
        return {name: t for name, t in full.items() if name in names}
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _gathered_by_torch(model, optimizer) -> bool:
    """Sharded model, optimizer with torch's state layout: torch.distributed.checkpoint gathers
    it. An optimizer with `supports_fsdp` (LoFT) gathers its own state in state_dict()."""
    return is_fsdp_sharded(unwrap(model)) and not getattr(optimizer, "supports_fsdp", False)


def optimizer_state(model, optimizer) -> dict:
    if _gathered_by_torch(model, optimizer):  # gathered, so the checkpoint does not depend on the world size
        return get_optimizer_state_dict(unwrap(model), optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return optimizer.state_dict()


def save(path: Path, model, optimizer, scheduler, progress: dict, write: bool = True, callbacks=None) -> None:
    """Gather (every rank must call this under FSDP) and, where `write`, save atomically, with
    the callbacks' states (Callbacks.state_dict()) unless the model is sharded (a model
    selection snapshot would hold only this rank's shard)."""
    keep_callbacks = callbacks is not None and not is_fsdp_sharded(unwrap(model))
    payload = {"model": trainable_state(model), "optimizer": optimizer_state(model, optimizer),
               "scheduler": scheduler.state_dict(), "rng": rng_state(), "progress": progress,
               "callbacks": callbacks.state_dict() if keep_callbacks else {}}
    if not write:
        return
    with atomic_path(path, ".pt") as tmp:
        torch.save(payload, tmp)


def load(path: Path, model, optimizer, scheduler, callbacks=None) -> dict:
    """Restore everything into the live objects (the callbacks' states too); return the saved progress dict."""
    payload = _read(path)
    if payload.get("task"):  # selection state of the task era: its candidates are unknown
        raise ConfigError(f"{path} predates checkpoint selection in the training loop and cannot be resumed "
                          f"exactly; resume=false starts this run over")
    model = unwrap(model)
    if is_fsdp_sharded(model):
        options = StateDictOptions(full_state_dict=True, strict=False)
        set_model_state_dict(model, payload["model"], options=options)
        if _gathered_by_torch(model, optimizer):
            set_optimizer_state_dict(model, optimizer, payload["optimizer"], options=options)
        else:
            optimizer.load_state_dict(payload["optimizer"])
    else:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in payload["model"].items():
                params[name].copy_(value)
        optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    restore_rng(payload["rng"])
    if callbacks is not None:
        callbacks.load_state_dict(payload.get("callbacks", {}), model)
    return payload["progress"]


def read_checkpoint_progress(path: Path) -> dict:
    """The saved progress (step, config_hash, git_sha, ...) without restoring anything."""
    return _read(path)["progress"]


def _read(path: Path) -> dict:
    """The saved payload; a damaged file (cut short, overwritten) fails naming it and the fix."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(payload, dict) or not isinstance(payload.get("progress"), dict):
            raise ValueError("not a checkpoint of this runner")
        return payload
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError, AttributeError, ImportError) as err:
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DamagedFileError(f"cannot read checkpoint {path} ({why}): resume=false starts over "
                               f"(force=true also retrains a finished run)") from None
