"""The key of a run, (task, model, method, rank, seed, variant), and the record path it names:
`<task>/<model>/<method>/<r4|full>_seed<seed>[_<variant>].json` (variant: loft/variant.py)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

MAX_NAME = 120  # characters of a variant kept in a file name (a hash stands for the rest)


@dataclass(frozen=True)
class RunKey:
    task: str
    model: str
    method: str
    rank: int | None
    seed: int
    variant: str = ""  # tag, or the overrides that are not part of the key (loft/variant.py)

    @property
    def rank_label(self) -> str:
        return "full" if self.rank is None else f"r{self.rank}"

    def relative_path(self) -> Path:
        name = f"{self.rank_label}_seed{self.seed}" + (f"_{file_part(self.variant)}" if self.variant else "") + ".json"
        return Path(self.task) / self.model / self.method / name

    def lock_path(self, runs_dir: Path) -> Path:
        """Beside the record, not named *.json: readers never take it for one."""
        path = runs_dir / self.relative_path()
        return path.with_name(path.name + ".lock")

    def run_id(self) -> str:
        """Stable id (W&B run id, checkpoint folder) for this key."""
        return hashlib.sha1(str(self.relative_path()).encode()).hexdigest()[:16]


def file_part(variant: str) -> str:
    """A variant as a file-name suffix: '/' escaped (so it stays one name), very long ones
    shortened with their hash."""
    safe = variant.replace("%", "%25").replace("/", "%2F")
    if len(safe) > MAX_NAME:
        safe = safe[:MAX_NAME - 9] + "~" + hashlib.sha1(variant.encode()).hexdigest()[:8]
    return safe
