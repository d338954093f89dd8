"""Published numbers: one CSV per paper table under results/paper/, read by `load_paper_table`.

File format (readable in any editor, diffable, no quoting of numbers):

    # paper: <title (authors, year)>
    # table: Table 2
    # source: <where in the paper text>
    # caption: ...
    # unit: accuracy (%)
    # higher_is_better: true
    # key_columns: context          (optional: extra columns that identify a row)
    # note: ...                     (any number of notes)
    label,model,method,rank,<value columns...>
    LoRA r=16,llama_7b,lora,16,65.38,...

`label` is the row as the paper prints it, `model`/`method` are this runner's config names
(conf/model, conf/method; a method the runner lacks keeps a descriptive name such as
lora_pro), `rank` is empty where the paper has none (full fine-tuning, zero-shot). Values
are kept exactly as printed ("80.69 ± 0.18", "1.00×", "+25.65%", "03.18"); `Cell.value`
is the parsed number and `Cell.decimals` the printed precision, used to format ours alike.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from loft.core.paths import REPO

PAPER_DIR = REPO / "results" / "paper"
BASE_KEYS = ("label", "model", "method", "rank")
_NUMBER = re.compile(r"[-+]?\d+(?:\.(\d+))?")


@dataclass(frozen=True)
class Cell:
    text: str                 # as printed ("" = the paper gives no number)
    value: float | None
    std: float | None = None
    decimals: int = 2

    @classmethod
    def parse(cls, text: str) -> "Cell":
        text = text.strip()
        if not text:
            return cls("", None)
        mean, _, spread = text.partition("±")
        m = _NUMBER.search(mean)
        if m is None:
            raise ValueError(f"not a number: {text!r}")
        std = float(_NUMBER.search(spread).group(0)) if spread.strip() else None
        return cls(text, float(m.group(0)), std, len(m.group(1) or ""))


@dataclass
class PaperRow:
    label: str
    model: str
    method: str
    rank: int | None
    keys: dict[str, str]          # extra key columns (e.g. context)
    cells: dict[str, Cell]


@dataclass
class PaperTable:
    name: str
    meta: dict[str, str]
    notes: list[str]
    columns: list[str]            # value columns, in the paper's order
    rows: list[PaperRow] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.meta.get("table", self.name)

    @property
    def higher_is_better(self) -> bool:
        return self.meta.get("higher_is_better", "true").lower() == "true"

    def decimals(self, column: str) -> int:
        return max((r.cells[column].decimals for r in self.rows if r.cells[column].value is not None), default=2)

    def find(self, model: str, method: str, rank: int | None, **keys) -> PaperRow | None:
        for row in self.rows:
            if (row.model, row.method, row.rank) == (model, method, rank) and all(
                    str(row.keys.get(k)) == str(v) for k, v in keys.items()):
                return row
        return None

    def value(self, model: str, method: str, rank: int | None, column: str, **keys) -> float | None:
        row = self.find(model, method, rank, **keys)
        return None if row is None else row.cells[column].value


def paper_tables(root: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (root or PAPER_DIR).glob("*.csv"))


def load_paper_table(name: str, root: Path | None = None) -> PaperTable:
    """The published numbers of one table, e.g. load_paper_table("loft_table02_commonsense")."""
    path = (root or PAPER_DIR) / f"{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such paper table; have: {', '.join(paper_tables(root))}")
    meta, notes, body = {}, [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].strip().partition(":")
            if key.strip() == "note":
                notes.append(value.strip())
            else:
                meta[key.strip()] = value.strip()
        elif line.strip():
            body.append(line)
    reader = csv.reader(body)
    header = next(reader)
    extra_keys = [k.strip() for k in meta.get("key_columns", "").split(",") if k.strip()]
    missing = [k for k in (*BASE_KEYS, *extra_keys) if k not in header]
    if missing:
        raise ValueError(f"{path}: header lacks {missing}")
    columns = [c for c in header if c not in BASE_KEYS and c not in extra_keys]
    table = PaperTable(name, meta, notes, columns)
    for n, values in enumerate(reader, start=2):
        if len(values) != len(header):
            raise ValueError(f"{path}: row {n} has {len(values)} fields, header has {len(header)}")
        row = dict(zip(header, values))
        table.rows.append(PaperRow(
            label=row["label"], model=row["model"], method=row["method"],
            rank=int(row["rank"]) if row["rank"].strip() else None,
            keys={k: row[k] for k in extra_keys},
            cells={c: Cell.parse(row[c]) for c in columns}))
    return table
