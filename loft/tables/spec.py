"""Table specs: how a paper table maps to run records (loft/tables/specs.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

SPECS_FILE = Path(__file__).with_name("specs.yaml")
SOURCE_KINDS = ("metric", "field", "history")
REDUCERS = ("median", "mean", "last", "min")


@dataclass(frozen=True)
class Source:
    task: str
    metric: str | None = None      # record["metrics"][metric]
    field: str | None = None       # record[field]
    history: str | None = None     # record["history"][history], reduced
    reduce: str = "median"
    scale: float = 1.0
    divide_by: str | None = None   # record[divide_by] (with `field`)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    sources: tuple[Source, ...] = ()
    percent: bool = False
    mean_of: tuple[str, ...] = ()
    rank: int | None = None
    relative_to: dict | None = None
    relative: str = "ratio"        # ratio | percent_increase


@dataclass
class TableSpec:
    name: str
    title: str
    paper: str | None
    columns: list[Column]
    extra_columns: list[Column] = field(default_factory=list)
    delta: list[str] = field(default_factory=list)
    stand_in: dict[str, str] = field(default_factory=dict)
    tag: str = ""
    tag_format: str | None = None
    notes: list[str] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)
    cpu_presets: list[str] = field(default_factory=list)

    @property
    def tasks(self) -> set[str]:
        return {s.task for c in (*self.columns, *self.extra_columns) for s in c.sources}

    @property
    def rank_in_columns(self) -> bool:
        """Columns are ranks (Table 12): rows carry no rank of their own."""
        return all(c.rank is not None for c in self.columns)


@dataclass
class Specs:
    tables: dict[str, TableSpec]
    figures: dict[str, dict]
    models: dict[str, str]
    methods: dict[str, str]
    method_aliases: dict[str, dict]

    def model_label(self, name: str) -> str:
        return self.models.get(name, name)

    def method_label(self, name: str) -> str:
        return self.methods.get(name, name)

    def row_label(self, method: str, rank: int | None, tag: str = "") -> str:
        """'LoFT r=16'; a (method, tag) that is an alias reads as the alias ('Zero-shot', 'QLoFT r=16')."""
        for alias, target in self.method_aliases.items():
            if tag and target.get("method") == method and target.get("tag", "") == tag:
                return self.method_label(alias) + (f" r={rank}" if rank is not None else "")
        return self.method_label(method) + (f" r={rank}" if rank is not None else "") + (f" [{tag}]" if tag else "")

    def ours(self, paper_method: str) -> tuple[str, str]:
        """(our method, tag) for a paper method name."""
        alias = self.method_aliases.get(paper_method)
        return (alias["method"], alias.get("tag", "")) if alias else (paper_method, "")


def _column(raw: dict) -> Column:
    unknown = set(raw) - {"key", "label", "from", "percent", "mean_of", "rank", "relative_to", "relative"}
    if unknown:
        raise ValueError(f"column {raw.get('key')}: unknown fields {sorted(unknown)}")
    sources = []
    for s in raw.get("from", []):
        kinds = [k for k in SOURCE_KINDS if s.get(k) is not None]
        if "task" not in s or len(kinds) != 1:
            raise ValueError(f"column {raw['key']}: a source needs a task and one of {SOURCE_KINDS}: {s}")
        if s.get("reduce", "median") not in REDUCERS:
            raise ValueError(f"column {raw['key']}: reduce must be one of {REDUCERS}")
        sources.append(Source(**s))
    if not sources and not raw.get("mean_of"):
        raise ValueError(f"column {raw['key']}: needs `from` or `mean_of`")
    if raw.get("relative", "ratio") not in ("ratio", "percent_increase"):
        raise ValueError(f"column {raw['key']}: relative must be ratio or percent_increase")
    return Column(raw["key"], raw.get("label", raw["key"]), tuple(sources), bool(raw.get("percent", False)),
                  tuple(raw.get("mean_of", ())), raw.get("rank"), raw.get("relative_to"), raw.get("relative", "ratio"))


def load_specs(path: Path = SPECS_FILE) -> Specs:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    sets = {name: [_column(c) for c in cols] for name, cols in raw.get("column_sets", {}).items()}
    tables = {}
    for name, t in raw["tables"].items():
        cols = t["columns"]
        columns = sets[cols] if isinstance(cols, str) else [_column(c) for c in cols]
        spec = TableSpec(
            name=name, title=t.get("title", name), paper=t.get("paper"), columns=list(columns),
            extra_columns=[_column(c) for c in t.get("extra_columns", [])], delta=list(t.get("delta", [])),
            stand_in=dict(t.get("stand_in", {})), tag=t.get("tag", ""), tag_format=t.get("tag_format"),
            notes=list(t.get("notes", [])), presets=list(t.get("presets", [])),
            cpu_presets=list(t.get("cpu_presets", [])))
        keys = [c.key for c in spec.columns]
        for c in spec.columns:
            if set(c.mean_of) - set(keys):
                raise ValueError(f"table {name}: column {c.key} averages unknown columns {set(c.mean_of) - set(keys)}")
        if set(spec.delta) - set(keys):
            raise ValueError(f"table {name}: delta names unknown columns {set(spec.delta) - set(keys)}")
        tables[name] = spec
    return Specs(tables, dict(raw.get("figures", {})), dict(raw.get("models", {})), dict(raw.get("methods", {})),
                 dict(raw.get("method_aliases", {})))
