"""Where a task's rows come from, and where its predictions go: the small idioms every task
family shares, defined once.

- `check_source`: `task.source` (and `task.lm_eval_data`) is `auto` (a local file, else the
  hub), `local` (never ask the hub) or `hub` (ignore local files); anything else is a
  ConfigError naming the fix.
- `hub_allowed` / `HubProbe`: whether `source` lets the task ask the hub and the hub answers
  (one quick request: offline, `datasets` would retry for ~25 s before failing).
- `local_or_hub` / `hub_or_missing`: read the local file, else load the hub copy when allowed
  and reachable, else raise DataMissingError saying why (source=local, hub unreachable, hub
  failed) and naming the prepare command.
- `random_subset`: `task.max_train_samples` rows drawn without replacement by `subset_seed`,
  kept in file order, the same for every method and run seed (`task.eval_limit` takes the
  first N rows instead: `rows[:eval_limit]`, a slice that keeps all rows for None).
- `write_predictions`: one JSON object per line at `task.predictions_file`, when set.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from loft.core.errors import ConfigError, DataMissingError
from loft.core import hub  # hub.hub_reachable looked up at call time: one patch target for tests

SOURCES = ("auto", "local", "hub")


def check_source(source: str, key: str = "task.source") -> str:
    """`source` itself when it is one of SOURCES, else ConfigError naming `key`."""
    if source not in SOURCES:
        raise ConfigError(f"{key}={source!r}: use auto, local or hub")
    return source


def hub_allowed(source: str) -> bool:
    """True when `source` permits the hub (not `local`) and the hub is reachable."""
    return source != "local" and hub.hub_reachable()


class HubProbe:
    """`hub_allowed(source)` asked at most once per task (a task may miss several files)."""

    def __init__(self, source: str):
        self.source = check_source(source)
        self._answer: bool | None = None

    def __call__(self) -> bool:
        if self._answer is None:
            self._answer = bool(hub_allowed(self.source))
        return self._answer


def hub_or_missing(load: Callable[[], Any] | None, missing: Path, source: str | HubProbe, fix: str,
                   no_hub: str = "no hub copy") -> Any:
    """`load()` from the hub when `source` (a task.source value, or the task's HubProbe) allows
    it and the hub is reachable, else DataMissingError "<missing> not found (<why>). Fix: <fix>".
    `load=None`: there is no hub copy of this file (`no_hub` says why). A hub failure (outage,
    renamed dataset) also ends in DataMissingError, so the message still names the local fix."""
    hub = source if isinstance(source, HubProbe) else HubProbe(source)
    if load is None:
        why = no_hub
    elif hub.source == "local":
        why = "hub not tried (source=local)"
    elif not hub():
        why = "hub unreachable"
    else:
        try:
            return load()
        except Exception as err:
            first_line = (str(err).splitlines() or [""])[0][:200]
            why = f"hub failed: {type(err).__name__}" + (f": {first_line}" if first_line else "")
    raise DataMissingError(f"{missing} not found ({why}). Fix: {fix}")


def local_or_hub(path: Path, source: str | HubProbe, read: Callable[[Path], Any], load: Callable[[], Any] | None,
                 fix: str, no_hub: str = "no hub copy") -> Any:
    """`read(path)` when the file is there and the source is not `hub`, else `hub_or_missing`."""
    name = source.source if isinstance(source, HubProbe) else check_source(source)
    if name != "hub" and Path(path).is_file():
        return read(Path(path))
    return hub_or_missing(load, Path(path), source, fix, no_hub)


def random_subset(rows: Sequence, limit: int | None, seed: int) -> list:
    """`limit` of `rows` drawn without replacement by `seed`, in their original order (files are
    often sorted by class or type, so a prefix would be biased); all rows when `limit` is None
    or not smaller. The draw is numpy's `default_rng(seed).permutation(len(rows))[:limit]`, so
    subsets of earlier runs stay the same."""
    if limit is None or len(rows) <= int(limit):
        return list(rows)
    keep = np.sort(np.random.default_rng(seed).permutation(len(rows))[: int(limit)])
    return [rows[i] for i in keep]


def write_predictions(path: str | Path | None, rows: Sequence[dict]) -> Path | None:
    """`rows` as JSON lines at `path` (parent folders created); nothing when `path` is None."""
    if not path:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
