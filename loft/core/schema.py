"""The run record schema, version 2: defined once, checked by the writer (loft/runner.py) before
it writes and by every reader (loft/tables, scripts/glue_comparison.py) before it trusts.

Fields beyond the contract's (task, model, method, rank, seed, metrics, config, ...):

- `schema`: 2. Records without it are schema 1 (written before this file) and are read as
  version 2 with `variant` = their `tag`, `status` = "ok" and `bad_steps` as recorded.
- `variant`: what distinguishes the run beyond (task, model, method, rank, seed): `tag` when
  given, else the overrides that are not part of the key (loft/variant.py); "" for neither.
  The file name ends with it: `<task>/<model>/<method>/<r4|full>_seed<seed>[_<variant>].json`.
- `status`, how training ended:
    ok        the whole schedule ran and fewer than half of its steps were skipped;
    partial   the whole schedule ran but at least half of its steps were skipped as non-finite
              (the model trained on the rest; the runner warns);
    diverged  the divergence guard stopped it (non-finite steps in a row, or a loss above the
              bound for a few steps); `metrics` is {} (not evaluated), `stopped` says why, and
              the runner exits non-zero after writing the record.
- `bad_steps`: steps skipped as non-finite. Tables mark every cell resting on a record whose
  status is not ok or whose bad_steps > 0.
- `resumed_from`: null, or {step, git_sha} of the checkpoint the run continued.
- `selection` (runs with checkpoint selection only): {every, examples, selected_step, candidates}
  from loft/train/selection.py.
- `adapter`: null, or {path, format, sha256} of the trained adapter saved under paths.adapters_dir
  (loft/adapters.py).
- `data` (optional; absent or null = unknown): {train_file, rows, sha256} of the training data the
  task read (its `provenance()`, built by loft/core/provenance.py). Checked when present.

A record is rejected (listed with the reason, left out of tables) when it fails these checks,
when its fields disagree with its path, or when it shares its key with another record.
"""
from __future__ import annotations

import json
from pathlib import Path

import re

from loft.core.key import RunKey

SCHEMA = 2
STATUSES = ("ok", "diverged", "partial")


class RecordError(ValueError):
    """A record that cannot be trusted; the message is the reason."""


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# field -> (check, what it must be)
FIELDS = {
    "task": (lambda v: isinstance(v, str) and v, "a non-empty string"),
    "model": (lambda v: isinstance(v, str) and v, "a non-empty string"),
    "method": (lambda v: isinstance(v, str) and v, "a non-empty string"),
    "rank": (lambda v: v is None or (_integer(v) and v > 0), "a positive integer or null"),
    "seed": (_integer, "an integer"),
    "variant": (lambda v: isinstance(v, str), "a string"),
    "status": (lambda v: v in STATUSES, f"one of {', '.join(STATUSES)}"),
    "bad_steps": (lambda v: _integer(v) and v >= 0, "a non-negative integer"),
    "metrics": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and (x is None or _number(x))
                                                      for k, x in v.items()), "a dict of numbers"),
    "config_hash": (lambda v: isinstance(v, str) and v, "a non-empty string"),
}


SHA256 = re.compile(r"[0-9a-f]{64}")
DATA_FIELDS = {  # the optional `data` field's keys (loft/core/provenance.py writes them)
    "train_file": (lambda v: isinstance(v, str) and v, "a non-empty string"),
    "rows": (lambda v: _integer(v) and v >= 0, "a non-negative integer"),
    "sha256": (lambda v: isinstance(v, str) and SHA256.fullmatch(v), "64 lowercase hex digits"),
}


def _check_data(value) -> None:
    """The optional `data` field: absent or null (unknown), else exactly the keys of DATA_FIELDS."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise RecordError(f"field 'data' is {value!r}, not a dict or null")
    extra = sorted(set(value) - set(DATA_FIELDS))
    if extra:
        raise RecordError(f"field 'data' has unknown keys {extra}; expected {sorted(DATA_FIELDS)}")
    for name, (check, expected) in DATA_FIELDS.items():
        if name not in value:
            raise RecordError(f"field 'data.{name}' is missing")
        if not check(value[name]):
            raise RecordError(f"field 'data.{name}' is {value[name]!r}, not {expected}")


def normalize(data) -> dict:
    """The record as version 2 (schema 1 upgraded in memory); raises RecordError when invalid."""
    if not isinstance(data, dict):
        raise RecordError(f"not a JSON object but {type(data).__name__}")
    version = data.get("schema", 1)
    if version == 1:
        data = {**data, "schema": SCHEMA, "variant": data.get("tag") or "", "status": "ok",
                "bad_steps": data.get("bad_steps", 0)}
    elif version != SCHEMA:
        raise RecordError(f"schema {version!r} is not 1 or {SCHEMA}")
    for name, (check, expected) in FIELDS.items():
        if name not in data:
            raise RecordError(f"field '{name}' is missing")
        if not check(data[name]):
            raise RecordError(f"field '{name}' is {data[name]!r}, not {expected}")
    _check_data(data.get("data"))
    return data


def key_of(data: dict) -> RunKey:
    return RunKey(data["task"], data["model"], data["method"], data["rank"], data["seed"], data["variant"])


def check(data, path: Path) -> dict:
    """normalize(), then the path must be the one the fields name (…/<task>/<model>/<method>/<name>.json)."""
    data = normalize(data)
    expected = key_of(data).relative_path()
    if Path(path).parts[-len(expected.parts):] != expected.parts:
        raise RecordError(f"its fields name {expected}, not this path")
    return data


def read(path: Path) -> dict:
    """The record at `path`, checked; RecordError names why it cannot be trusted."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"unreadable: {err}") from None
    return check(data, path)


def flag(data: dict) -> str | None:
    """Why a (normalized) record's numbers need a mark in tables; None for a clean run."""
    parts = [f"status {data['status']}"] if data["status"] != "ok" else []
    if data["bad_steps"]:
        parts.append(f"{data['bad_steps']} non-finite steps skipped")
    return ", ".join(parts) or None

