"""Commonsense data: the LLM-Adapters files on disk, the hub conversion, and the training union.

Layout: `<data_dir>/commonsense/<Folder>/{train,test}.json` (folders in `sets.SETS`) and two
union files: `commonsense_170k.json`, the published file the papers trained on
(LLM-Adapters' `ft-training_set/commonsense_170k.json`, copied in by `prepare_data.py
--union-from`), and `commonsense_union_8.json`, `prepare_data.py`'s union of the eight
training splits (~147.6k rows, not the paper's file). The task asks for the published file;
when it is absent the union is read instead (with a note), and without either the per-set
training files are joined (a partial union offline, noted too). Every training read is
described by its provenance (file name, rows, sha256) for the run record.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tasks.commonsense.sets import SETS, to_llm_adapters
from tasks.data_files import check_rows, read_json
from tasks.sources import HubProbe

from loft.core.provenance import file_provenance, sha256_of

PREPARE_FIX = "python scripts/prepare_data.py commonsense --data-dir {data_dir}"
PUBLISHED_FILE = "commonsense/commonsense_170k.json"  # the papers' training file (LLM-Adapters)
UNION_8_FILE = "commonsense/commonsense_union_8.json"  # prepare_data's union of the eight training splits


def load_hub_split(set_key: str, split: str) -> list[dict]:
    """One canonical hub split in the LLM-Adapters format (needs the hub)."""
    import datasets

    s = SETS[set_key]
    rows = datasets.load_dataset(s.hub[0], s.hub[1], split=split)
    out = []
    for row in rows:
        if set_key == "hellaswag" and str(row.get("label", "")).strip() == "":
            continue  # unlabelled rows
        out.append(to_llm_adapters(set_key, row))
    return out


def dora_holdout(n: int, size: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) row indices as DoRA's finetune.py draws them,
    `train_test_split(test_size=val_set_size, shuffle=True, seed=42)`: datasets permutes the
    rows with np.random.default_rng(seed) and holds out the first `size`."""
    order = np.random.default_rng(seed).permutation(n)
    return order[size:], order[:size]


@dataclass
class TrainingRows:
    rows: list[dict]
    files: list[Path] = field(default_factory=list)  # the files read, in order (none: from the hub)
    missing: list[str] = field(default_factory=list)  # training sets found nowhere
    note: str | None = None                          # what a reader of the result must know

    def provenance(self) -> dict | None:
        """file_provenance of the one file read; for several, their names joined by '+', the row
        count and the sha256 of their bytes concatenated in reading order; None from the hub."""
        if not self.files:
            return None
        if len(self.files) == 1:
            return file_provenance(self.files[0], len(self.rows), root=self.files[0].parents[1])
        name = "+".join(f"{p.parent.name}/{p.name}" for p in self.files)
        return {"train_file": name, "rows": len(self.rows), "sha256": sha256_of(*self.files)}


class CommonsenseFiles:
    """Reads the local files (`source=local|auto`), else converts from the hub (`auto|hub`)."""

    def __init__(self, data_dir: Path, source: str, eval_limit: int | None):
        self.data_dir, self.source, self.eval_limit = Path(data_dir), source, eval_limit
        self.fix = PREPARE_FIX.format(data_dir=self.data_dir)
        self.hub_ok = HubProbe(source)  # one probe per task, not one per missing file

    def set_path(self, set_key: str, split: str) -> Path:
        return self.data_dir / "commonsense" / SETS[set_key].folder / f"{split}.json"

    def read_set(self, set_key: str, split: str) -> list[dict] | None:
        """Local LLM-Adapters file, else the hub conversion, else None."""
        s, path = SETS[set_key], self.set_path(set_key, split)
        if self.source != "hub" and path.is_file():
            rows = read_json(path, self.fix)
            if split == "train":  # task.max_train_samples draws a random subset: every row counts
                check_rows(path, self.data_dir, len(rows), self.fix)
            else:
                check_rows(path, self.data_dir, len(rows), self.fix, first=self.eval_limit, first_key="task.eval_limit")
            return rows
        if self.hub_ok():
            return load_hub_split(set_key, s.hub_train if split == "train" else s.hub_eval)
        return None

    def read_file(self, path: Path) -> list[dict]:
        rows = read_json(path, self.fix)
        check_rows(path, self.data_dir, len(rows), self.fix)  # count stored at prepare
        return rows

    def training(self, train_file: str | None, train_sets: list[str]) -> TrainingRows:
        """The training rows: `train_file` when present (the union in place of the published
        file, noted), else the sets' own training files joined."""
        if train_file and self.source != "hub":
            path = self.data_dir / train_file
            if path.is_file():
                return TrainingRows(self.read_file(path), [path])
            union = self.data_dir / UNION_8_FILE
            if train_file == PUBLISHED_FILE and union.is_file():
                rows = self.read_file(union)
                return TrainingRows(rows, [union], note=(
                    f"{path} (the published file) not found: training on {union.name}, the union of the eight "
                    f"training splits ({len(rows)} rows, not the paper's {Path(PUBLISHED_FILE).name}); tables mark "
                    f"these cells. Fix: `{self.fix} --union-from <LLM-Adapters commonsense_170k.json>`."))
        out = TrainingRows([])
        for k in train_sets:
            got = self.read_set(k, "train")
            if got is None:
                out.missing.append(k)
                continue
            out.rows.extend(got)
            path = self.set_path(k, "train")
            if self.source != "hub" and path.is_file():
                out.files.append(path)
        if len(out.files) != len(train_sets) - len(out.missing):
            out.files = []  # some rows came from the hub: no file describes them
        if train_file and out.missing:
            present = [k for k in train_sets if k not in out.missing]
            out.note = (f"{self.data_dir / train_file} not found: training on a PARTIAL union of "
                        f"{', '.join(present) or 'nothing'} ({len(out.rows)} examples); missing training sets: "
                        f"{', '.join(out.missing)}. Fix: `{self.fix}` (online).")
        return out
