"""Result tables and figures beside the papers' published numbers.

    from loft.tables import load_paper_table, make_tables
    load_paper_table("loft_table02_commonsense").value("llama_7b", "loft", 16, "avg")   # 76.08
    make_tables(Path("results/runs"), Path("results/tables"), Path("results/figures"))

Published numbers: results/paper/*.csv (paper.py). How a paper table maps to records:
specs.yaml (spec.py). Rows and cells: build.py. Markdown/LaTeX: render.py. Figures: figures.py.
Experiment presets, composed through Hydra's compose API (never read from conf/ by hand): presets.py.
"""
from __future__ import annotations

from pathlib import Path

from loft.tables.build import Table, available_methods, build_table
from loft.tables.paper import PaperTable, load_paper_table, paper_tables
from loft.tables.records import RecordIndex, load_records
from loft.tables.render import to_latex, to_markdown
from loft.tables.spec import Specs, load_specs

__all__ = ["Table", "PaperTable", "RecordIndex", "Specs", "build_table", "load_paper_table", "load_records",
           "load_specs", "make_tables", "paper_tables", "to_latex", "to_markdown"]


def make_tables(runs_dir: Path, tables_dir: Path, figures_dir: Path | None = None, only: str | None = None,
                latex: bool = True, specs: Specs | None = None, methods: set[str] | None = None,
                paper_root: Path | None = None, variant: str = "") -> dict[str, list[Path]]:
    """Render every table that has records (Markdown + LaTeX) and every figure; write an index.
    `variant`: build from the records of this variant as if they were the default ones.

    Returns {"tables": [...], "figures": [...], "skipped": [table names without records]}."""
    specs = specs or load_specs()
    methods = available_methods() if methods is None else methods
    index = load_records(runs_dir, default_variant=variant)
    tables_dir.mkdir(parents=True, exist_ok=True)
    written, skipped, rendered = [], [], []
    for name, spec in specs.tables.items():
        if only and only not in name:
            continue
        table = build_table(spec, specs, index, methods, paper_root)
        if not table.has_records:
            skipped.append(name)
            continue
        md = tables_dir / f"{name}.md"
        md.write_text(to_markdown(table, specs, tables_dir), encoding="utf-8")
        written.append(md)
        if latex:
            tex = tables_dir / f"{name}.tex"
            tex.write_text(to_latex(table, specs), encoding="utf-8")
            written.append(tex)
        rendered.append((name, table))
    figures = []
    if figures_dir is not None:
        from loft.tables.figures import make_figures

        figures = make_figures(specs, index, figures_dir, only, methods)
    _write_index(tables_dir, figures_dir, rendered, skipped, figures, runs_dir, index)
    return {"tables": written, "figures": figures, "skipped": skipped}


def _write_index(tables_dir: Path, figures_dir: Path | None, rendered, skipped, figures, runs_dir: Path,
                 index: RecordIndex) -> None:
    import os

    lines = ["# Result tables", "",
             f"Built by `make tables` (scripts/make_tables.py) from {len(index)} run records under `{runs_dir}`.",
             "Each table shows **ours (paper)** per cell; see the legend at the top of each file.", "",
             "| table | rows with runs | file |", "|---|---|---|"]
    for name, table in rendered:
        with_runs = sum(1 for r in table.rows if r.records)
        lines.append(f"| {table.spec.title} | {with_runs} / {len(table.rows)} | [{name}.md]({name}.md) |")
    if skipped:
        lines += ["", "No records yet for: " + ", ".join(skipped) + "."]
    if index.rejected:
        lines += ["", f"Left out {len(index.rejected)} files that are not valid records:", ""]
        lines += [f"- `{path}`: {why}" for path, why in index.rejected]
    if figures:
        lines += ["", "## Figures", ""] + [f"- [{p.name}]({os.path.relpath(p, tables_dir)})" for p in figures]
    (tables_dir / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
