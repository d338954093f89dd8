"""Run records as the tables see them: an index by (task, model, method, rank, variant) -> {seed: record}.

Every file is read through loft/core/schema.py. A record that does not validate, whose fields
disagree with its path, or that shares its key with another record is left out and listed in
`rejected` (path, reason); nothing is merged silently.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from loft.core import schema

GroupKey = tuple  # (task, model, method, rank, variant)
PUBLISHED_TRAIN_FILES = {"commonsense170k": "commonsense/commonsense_170k.json"}  # task -> the file its paper trained on (under the data dir)


@dataclass
class Record:
    path: Path
    data: dict  # normalized to the current schema
    variant: str | None = None  # the variant tables see (load_records' default_variant); None: the record's

    @property
    def key(self) -> GroupKey:
        d = self.data
        return (d["task"], d["model"], d["method"], d["rank"], d["variant"] if self.variant is None else self.variant)

    @property
    def seed(self) -> int:
        return self.data["seed"]

    @property
    def flag(self) -> str | None:
        """Why cells resting on this record are marked (status not ok, skipped steps); None if clean."""
        return schema.flag(self.data)

    @property
    def other_data(self) -> str | None:
        """The training file the record names (its `data` field) when it is not the paper's; None otherwise."""
        published, used = PUBLISHED_TRAIN_FILES.get(self.data["task"]), (self.data.get("data") or {}).get("train_file")
        return used if published and used and used != published else None


@dataclass
class RecordIndex:
    records: list[Record]
    rejected: list[tuple[Path, str]] = field(default_factory=list)

    def __post_init__(self):
        self.groups: dict[GroupKey, dict[int, Record]] = defaultdict(dict)
        for rec in self.records:
            self.groups[rec.key][rec.seed] = rec

    def get(self, task: str, model: str, method: str, rank: int | None, variant: str = "") -> dict[int, Record]:
        return self.groups.get((task, model, method, rank, variant or ""), {})

    def __len__(self) -> int:
        return len(self.records)


def load_records(runs_dir: Path, quiet: bool = False, default_variant: str = "") -> RecordIndex:
    """Every valid record under runs_dir (temp files of in-flight atomic writes are not records).

    `default_variant`: read the records of this variant as the default one (e.g. presets run with
    extra overrides, `reproduce_tables.py -- model.m=48`); the true default's are then shown as
    "(default)"."""
    records, rejected = [], []
    for path in sorted(Path(runs_dir).rglob("*.json")):
        if path.name.startswith(".tmp-"):
            continue
        try:
            records.append(Record(path, schema.read(path)))
        except schema.RecordError as err:
            rejected.append((path, str(err)))
    by_key = defaultdict(list)
    for rec in records:
        by_key[(*rec.key, rec.seed)].append(rec)
    duplicated = {id(r) for group in by_key.values() if len(group) > 1 for r in group}
    for group in by_key.values():
        if len(group) > 1:
            rejected += [(r.path, "shares its key with " + ", ".join(str(o.path) for o in group if o is not r))
                         for r in group]
    if not quiet:
        for path, reason in rejected:
            print(f"warning: left out {path}: {reason}")
    if default_variant:
        for rec in records:
            v = rec.data["variant"]
            rec.variant = "" if v == default_variant else "(default)" if v == "" else v
    return RecordIndex([r for r in records if id(r) not in duplicated], rejected)
