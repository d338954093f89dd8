"""Run records as the tables see them: an index by (task, model, method, rank, tag) -> {seed: record}."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

GroupKey = tuple  # (task, model, method, rank, tag)


@dataclass
class Record:
    path: Path
    data: dict

    @property
    def key(self) -> GroupKey:
        d = self.data
        return (d["task"], d["model"], d["method"], d.get("rank"), d.get("tag") or "")

    @property
    def seed(self) -> int:
        return int(self.data.get("seed", 0))


class RecordIndex:
    def __init__(self, records: list[Record]):
        self.records = records
        self.groups: dict[GroupKey, dict[int, Record]] = defaultdict(dict)
        for rec in records:
            self.groups[rec.key][rec.seed] = rec

    def get(self, task: str, model: str, method: str, rank: int | None, tag: str = "") -> dict[int, Record]:
        return self.groups.get((task, model, method, rank, tag or ""), {})

    def tasks(self) -> set[str]:
        return {k[0] for k in self.groups}

    def __len__(self) -> int:
        return len(self.records)


def load_records(runs_dir: Path) -> RecordIndex:
    """Every finished record under runs_dir (temp files of in-flight atomic writes are ignored)."""
    records = []
    for path in sorted(Path(runs_dir).rglob("*.json")):
        if path.name.startswith(".tmp-"):
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            print(f"warning: skipping unreadable record {path}: {err}")
            continue
        if not isinstance(data, dict) or not {"task", "model", "method", "metrics"} <= data.keys():
            continue
        records.append(Record(path, data))
    return RecordIndex(records)
