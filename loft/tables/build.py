"""Records + a table spec + the paper's numbers -> the rows and cells of one rendered table.

Two sections, as the paper lays its table out:
- "paper" rows: one per row of the paper's table, in its order, ours read from the records
  of the same (model, method, rank); a cell with no record is empty (rendered "—"), a
  method this runner lacks is marked n/a.
- "ours" rows: our runs of the same methods and ranks on other models (CPU miniatures, or
  models the paper does not report in this table), each beside the paper's numbers of its
  stand-in model (spec `stand_in`), so the reference stays visible.
Ours is the mean (± sample std) over the seeds found; every contributing record is linked.
A cell is marked (`flagged`) when it rests on a record whose status is not ok or that skipped
steps, or when a record of its group lacks the metric its other seeds have (a renamed metric
must not silently drop a seed); the table lists those records with the reason (`attention`).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from loft.tables.paper import PaperRow, PaperTable, load_paper_table
from loft.tables.records import Record, RecordIndex
from loft.tables.spec import Column, Source, Specs, TableSpec


@dataclass(frozen=True)
class Selector:
    model: str
    method: str
    rank: int | None
    tag: str = ""


@dataclass
class Stat:
    values: dict[int, float]          # seed -> value
    flagged: bool = False             # rests on a record listed in Table.attention
    other_data: bool = False          # rests on a record trained on another file than the paper's

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values.values()) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values.values()) if self.n >= 2 else None


@dataclass
class Row:
    section: str                      # "paper" | "ours"
    label: str
    sel: Selector
    paper_row: PaperRow | None        # numbers printed in parentheses
    paper_model: str | None           # model of paper_row (the stand-in, for "ours" rows)
    cells: dict[str, Stat]
    records: list[Record]
    available: bool = True            # the runner has this method


@dataclass
class Table:
    spec: TableSpec
    paper: PaperTable | None
    columns: list[Column]             # shown: the spec's columns plus extra columns that have data
    rows: list[Row]
    ignored: dict[str, int] = field(default_factory=dict)   # variant -> records of this table's tasks not shown
    attention: dict[str, str] = field(default_factory=dict)  # record path -> why its cells are marked
    rejected: list[tuple[Path, str]] = field(default_factory=list)  # files of this table's tasks left out

    def section(self, name: str) -> list[Row]:
        return [r for r in self.rows if r.section == name]

    @property
    def paper_numbers(self) -> bool:
        return self.paper is not None and bool(self.paper.rows)

    @property
    def has_records(self) -> bool:
        return any(r.records for r in self.rows)


def available_methods() -> set[str]:
    """The runner's methods: the options of Hydra's `method` group (read through Hydra, not conf/)."""
    from loft.tables.presets import group_options  # Hydra's loader: only tables that mark n/a rows need it

    return set(group_options("method"))


def source_value(src: Source, rec: Record) -> float | None:
    d = rec.data
    if src.metric is not None:
        v = (d.get("metrics") or {}).get(src.metric)
    elif src.field is not None:
        v = d.get(src.field)
        if src.divide_by is not None:
            den = d.get(src.divide_by)
            v = v / den if _finite(v) and _finite(den) and den else None
    else:
        series = [x for x in ((d.get("history") or {}).get(src.history) or []) if _finite(x)]
        if not series:
            return None
        v = {"median": statistics.median, "mean": statistics.fmean, "last": lambda s: s[-1], "min": min}[src.reduce](series)
    return float(v) * src.scale if _finite(v) else None


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Builder:
    def __init__(self, spec: TableSpec, specs: Specs, index: RecordIndex, methods: set[str] | None = None,
                 paper_root: Path | None = None):
        self.spec, self.specs, self.index = spec, specs, index
        self.methods = available_methods() if methods is None else methods
        self.paper = load_paper_table(spec.paper, paper_root) if spec.paper else None
        self.by_key = {c.key: c for c in (*spec.columns, *spec.extra_columns)}
        self.attention: dict[str, str] = {}
        self.marked: list[str] = []  # paths behind the cell being built that need a mark

    # --- ours: one column for one row -------------------------------------------------
    def values(self, col: Column, sel: Selector, relative: bool = True) -> tuple[dict[int, float], list[Record]]:
        rank = col.rank if col.rank is not None else sel.rank
        vals: dict[int, float] = {}
        recs: list[Record] = []
        for src in col.sources:
            group = self.index.get(src.task, sel.model, sel.method, rank, sel.tag)
            got = {seed: v for seed, rec in group.items() if (v := source_value(src, rec)) is not None}
            if got and src.metric is not None:
                self._note_lacking(src.metric, group, got)
            if got:
                vals, recs = got, [group[s] for s in sorted(got)]
                break
        if col.percent:
            vals = {s: v * 100 if abs(v) <= 1.0 else v for s, v in vals.items()}
        if not vals and col.mean_of:
            parts = [self.values(self.by_key[k], sel) for k in col.mean_of]
            seeds = set.intersection(*(set(p[0]) for p in parts)) if parts else set()
            vals = {s: statistics.fmean(p[0][s] for p in parts) for s in sorted(seeds)}
            recs = list({id(r): r for p in parts for r in p[1]}.values()) if vals else []
        if relative and col.relative_to and vals:
            ref_sel = Selector(sel.model, col.relative_to["method"], col.relative_to.get("rank", rank), sel.tag)
            ref_col = Column(col.key, col.label, col.sources, col.percent, col.mean_of)  # rank from ref_sel
            ref, ref_recs = self.values(ref_col, ref_sel, relative=False)
            ref_mean = statistics.fmean(ref.values()) if ref else None
            if not ref_mean:
                return {}, []
            ratio = {s: v / ref_mean for s, v in vals.items()}
            vals = ratio if col.relative == "ratio" else {s: (r - 1) * 100 for s, r in ratio.items()}
            recs = recs + [r for r in ref_recs if r.path not in {x.path for x in recs}]
        return vals, recs

    def _note_lacking(self, metric: str, group: dict[int, Record], got: dict[int, float]) -> None:
        for seed, rec in group.items():
            if seed not in got and rec.data["status"] == "ok":
                self.attention[str(rec.path)] = (f"no metric '{metric}' (it has: {', '.join(rec.data['metrics']) or 'none'}), "
                                                 f"unlike seed(s) {', '.join(map(str, sorted(got)))}")
                self.marked.append(str(rec.path))

    def row(self, section: str, label: str, sel: Selector, paper_row: PaperRow | None, paper_model: str | None,
            columns: list[Column]) -> Row:
        cells, recs = {}, {}
        for col in columns:
            self.marked = []
            vals, rs = self.values(col, sel)
            for r in rs:
                if r.flag:
                    self.attention[str(r.path)] = r.flag
                    self.marked.append(str(r.path))
            cells[col.key] = Stat(vals, bool(vals) and bool(self.marked), bool(vals) and any(r.other_data for r in rs))
            for r in rs:
                recs[str(r.path)] = r
        available = sel.method in self.methods or bool(recs)
        return Row(section, label, sel, paper_row, paper_model, cells, sorted(recs.values(), key=lambda r: str(r.path)),
                   available)

    # --- the table ---------------------------------------------------------------------
    def selector(self, prow: PaperRow) -> Selector:
        method, tag = self.specs.ours(prow.method)
        if self.spec.tag_format:
            tag = self.spec.tag_format.format(**prow.keys)
        elif self.spec.tag and not tag:
            tag = self.spec.tag
        rank = None if self.spec.rank_in_columns else prow.rank
        return Selector(prow.model, method, rank, tag)

    def build(self) -> Table:
        spec, specs = self.spec, self.specs
        all_columns = [*spec.columns, *spec.extra_columns]
        rows: list[Row] = []
        primary: dict[Selector, PaperRow] = {}
        for prow in (self.paper.rows if self.paper else []):
            sel = self.selector(prow)
            primary[sel] = prow
            rows.append(self.row("paper", prow.label, sel, prow, prow.model, all_columns))

        # Our other runs of this table's methods and ranks (any method and rank when the paper gives none).
        cells_of_table = {(s.method, s.rank, s.tag) for s in primary}
        tags = {s.tag for s in primary} | {spec.tag}
        paper_models = list(dict.fromkeys(s.model for s in primary))
        order = {cell: i for i, cell in enumerate(dict.fromkeys((s.method, s.rank, s.tag) for s in primary))}
        others: dict[Selector, None] = {}
        ignored: dict[str, int] = {}
        for (task, model, method, rank, tag), group in self.index.groups.items():
            if task not in spec.tasks:
                continue
            if tag not in tags:
                ignored[tag] = ignored.get(tag, 0) + len(group)
                continue
            sel = Selector(model, method, None if spec.rank_in_columns else rank, tag)
            if sel in primary or (primary and (sel.method, sel.rank, sel.tag) not in cells_of_table):
                continue
            others[sel] = None
        for sel in sorted(others, key=lambda s: (s.model, order.get((s.method, s.rank, s.tag), len(order)), s.method,
                                                 -(s.rank or 0), s.tag)):
            stand_in = spec.stand_in.get(sel.model, paper_models[0] if paper_models else None)
            ref = primary.get(Selector(stand_in, sel.method, sel.rank, sel.tag)) if stand_in else None
            label = specs.row_label(sel.method, sel.rank, "" if sel.tag == spec.tag else sel.tag)
            row = self.row("ours", label, sel, ref, stand_in if ref else None, all_columns)
            if row.records:
                rows.append(row)

        shown = list(spec.columns) + [c for c in spec.extra_columns if any(r.cells[c.key].n for r in rows)]
        for group in (g for k, g in self.index.groups.items() if k[0] in spec.tasks and k[4] in tags):
            for rec in group.values():  # e.g. a diverged run: no metrics, so no cell, but listed
                if rec.flag:
                    self.attention.setdefault(str(rec.path), rec.flag)
        rejected = [(p, why) for p, why in self.index.rejected if set(spec.tasks) & set(Path(p).parts)]
        return Table(spec, self.paper, shown, rows, ignored, dict(sorted(self.attention.items())), rejected)


def build_table(spec: TableSpec, specs: Specs, index: RecordIndex, methods: set[str] | None = None,
                paper_root: Path | None = None) -> Table:
    return Builder(spec, specs, index, methods, paper_root).build()
