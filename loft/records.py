"""Run records: one JSON file per (task, model, method, rank, seed, variant), written atomically.

Tables are built from these files alone. The path is derived from the run's key and variant
(loft/variant.py); the record also stores a hash of the resolved config, so a rerun with
different settings under the same name is refused instead of silently skipped (use
`force=true` or `tag=...`). The fields are defined once, in loft/core/schema.py;
the key and the path it names in loft/core/key.py.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from loft.core.paths import REPO


# Settings that do not change what a run computes, left out of its config hash (dotted paths).
NON_SEMANTIC_KEYS = ("logger", "paths", "force", "resume", "hydra", "trainer.checkpoint_every", "trainer.stop_after_steps",
                     "model.kind", "trainer.save_adapter")  # kind: a declaration for the task/model check, implied by model.loader
TRACKED_PACKAGES = ("torch", "transformers", "peft", "hydra-core", "omegaconf", "wandb", "datasets", "accelerate")


def config_hash(config: dict, ignore: tuple[str, ...] = ()) -> str:
    """Hash of the settings that change what a run computes (`ignore`: more dotted paths to leave out)."""
    semantic = copy.deepcopy(config)
    for dotted in NON_SEMANTIC_KEYS + ignore:
        *parents, leaf = dotted.split(".")
        node = semantic
        for key in parents:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return hashlib.sha256(json.dumps(semantic, sort_keys=True, default=str).encode()).hexdigest()[:16]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_sha(repo: Path | None = None) -> str | None:
    """HEAD's sha, with '-dirty.<hash of the diff>' when tracked files differ from it (two
    different edits of one commit are two code versions); None outside git."""
    repo = repo or REPO
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=repo, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + (f"-dirty.{hashlib.sha1(diff).hexdigest()[:8]}" if diff else "")


@contextmanager
def atomic_path(path: Path, suffix: str):
    """A temp file beside `path` to write into; renamed over `path` (readable by all) only when the
    block succeeds, so readers never see half a file and a failure leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes files private; records and checkpoints are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers never see half a record."""
    with atomic_path(path, ".json") as tmp, open(tmp, "w") as f:
        json.dump(payload, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())


def columnar(history: list[dict]) -> dict[str, list]:
    """[{step, loss, ...}, ...] -> {step: [...], loss: [...]}: compact and easy to plot."""
    keys = list(history[0]) if history else []
    return {k: [h[k] for h in history] for k in keys}
