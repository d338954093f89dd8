"""A built table -> Markdown (with links to the records) and LaTeX (booktabs)."""
from __future__ import annotations

import os
from pathlib import Path

from loft.tables.build import Row, Stat, Table
from loft.tables.spec import Column, Specs

MISSING, NOT_AVAILABLE, MARK, DATA_MARK = "—", "n/a", "‡", "§"
LEGEND = ("Cells: **ours (paper)**. Ours is the mean ± sample std over seeds when there are several; "
          "'—' = no record yet (or no number in the paper), 'n/a' = method not in this runner; "
          f"{MARK} = rests on a run that did not end ok, skipped steps or lacks a seed's metric (listed below); "
          f"{DATA_MARK} = trained on another file than the paper's (e.g. the union of the eight commonsense "
          "training splits for commonsense_170k.json: the record's `data.train_file`); "
          "Δ = ours − paper.")


def decimals(table: Table, col: Column) -> int:
    if table.paper is not None and col.key in table.paper.columns:
        return table.paper.decimals(col.key)
    return 2


def fmt(value: float, col: Column, places: int) -> str:
    if col.relative_to and col.relative == "percent_increase":
        return f"{value:+.{places}f}%"
    if col.relative_to:
        return f"{value:.{places}f}×"
    return f"{value:.{places}f}"


def ours_text(row: Row, col: Column, places: int) -> str:
    stat: Stat = row.cells[col.key]
    if stat.mean is None:
        return MISSING if row.available else NOT_AVAILABLE
    text = fmt(stat.mean, col, places)
    return (text + (f" ± {stat.std:.{places}f}" if stat.std is not None else "") + (MARK if stat.flagged else "")
            + (DATA_MARK if stat.other_data else ""))


def paper_text(table: Table, row: Row, col: Column) -> str | None:
    """The paper's number as printed; None for columns the paper does not have."""
    if not table.paper_numbers or col.key not in table.paper.columns:
        return None
    if row.paper_row is None:
        return MISSING
    return row.paper_row.cells[col.key].text or MISSING


def cell_text(table: Table, row: Row, col: Column) -> str:
    ours = ours_text(row, col, decimals(table, col))
    paper = paper_text(table, row, col)
    return ours if paper is None else f"{ours} ({paper})"


def delta_text(table: Table, row: Row, key: str) -> str:
    col = next(c for c in table.columns if c.key == key)
    ours = row.cells[key].mean
    paper = row.paper_row.cells[key].value if row.paper_row is not None else None
    if ours is None or paper is None:
        return MISSING
    return f"{ours - paper:+.{decimals(table, col)}f}"


def seeds_text(row: Row) -> str:
    seeds = sorted({r.seed for r in row.records})
    return ",".join(map(str, seeds)) if seeds else MISSING


def run_links(row: Row, out_dir: Path) -> str:
    """Links to the records behind a row, named by what tells them apart (task, method, rank) and seed."""
    varying = [k for k in ("task", "method", "rank") if len({r.data.get(k) for r in row.records}) > 1]
    links = []
    for rec in row.records:
        parts = [("r" if k == "rank" else "") + str(rec.data.get(k)) for k in varying]
        name = "/".join(parts) + (":" if parts else "") + f"s{rec.seed}" + ("†" if rec.data.get("notes") else "")
        name += MARK if rec.flag else ""
        rel = os.path.relpath(rec.path, out_dir)
        title = f"config {rec.data['config_hash']}" + (f", variant {rec.data['variant']}" if rec.data["variant"] else "")
        links.append(f'[{name}]({rel} "{title.replace(chr(34), chr(39))}")')
    return " ".join(links) if links else MISSING


def citation(table: Table) -> str:
    if table.paper is None:
        return "no published numbers"
    meta = table.paper.meta
    return f"{meta.get('paper', '')}, {meta.get('table', '')} (source: `{meta.get('source', '')}`)"


def presets_text(table: Table) -> list[str]:
    lines = []
    if table.spec.presets:
        lines.append("Reproduce (GPU): " + "; ".join(f"`python run.py -m +experiment={p}`" for p in table.spec.presets))
    if table.spec.cpu_presets:
        lines.append("CPU miniature: " + "; ".join(f"`python run.py -m +experiment=cpu/{p}`" for p in table.spec.cpu_presets))
    lines.append("Everything: `make reproduce-tables` (`SCALE=cpu` for the miniatures), then `make tables`.")
    return lines


# --- Markdown ----------------------------------------------------------------------------
def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _header(table: Table, section: str) -> list[str]:
    head = ["Model", "Method"] + (["paper ref."] if section == "ours" and table.paper_numbers else [])
    head += [c.label for c in table.columns]
    if table.paper_numbers:
        head += [f"Δ {next(c.label for c in table.columns if c.key == k)}" for k in table.spec.delta]
    return head + ["seeds", "runs"]


def _cells(table: Table, row: Row, specs: Specs, out_dir: Path, show_model: bool) -> list[str]:
    cells = [specs.model_label(row.sel.model) if show_model else "", row.label]
    if row.section == "ours" and table.paper_numbers:
        cells.append(specs.model_label(row.paper_model) if row.paper_model else MISSING)
    cells += [cell_text(table, row, c) for c in table.columns]
    if table.paper_numbers:
        cells += [delta_text(table, row, k) for k in table.spec.delta]
    return cells + [seeds_text(row), run_links(row, out_dir)]


def to_markdown(table: Table, specs: Specs, out_dir: Path) -> str:
    spec, paper = table.spec, table.paper
    lines = [f"# {spec.title}", ""]
    if paper is not None:
        lines += [f"{paper.meta.get('caption', '')}.", "", f"Published: {citation(table)}.",
                  "Better: " + ("higher." if paper.higher_is_better else "lower."), ""]
    else:
        lines += ["Published: none available; ours only.", ""]
    lines += [LEGEND, ""] + [line + "  " for line in presets_text(table)] + [""]
    notes = (paper.notes if paper else []) + spec.notes
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    for section, heading in (("paper", "As in the paper"),
                             ("ours", "Our runs on other models (in parentheses: the paper's number for the same "
                                      "method and rank on the model in 'paper ref.')" if table.paper_numbers
                             else "Our runs")):
        rows = table.section(section)
        if not rows:
            continue
        lines += [f"## {heading}", "", _md_row(_header(table, section)),
                  _md_row(["---"] * len(_header(table, section)))]
        previous = None
        for row in rows:
            lines.append(_md_row(_cells(table, row, specs, out_dir, row.sel.model != previous)))
            previous = row.sel.model
        lines.append("")
    run_notes = sorted({n for row in table.rows for rec in row.records for n in rec.data.get("notes") or []})
    if run_notes:  # e.g. trained on a fallback split offline: not the paper's protocol
        lines += ["† Runs whose records carry notes:", ""] + [f"- {n}" for n in run_notes] + [""]
    if table.attention:
        lines += [f"{MARK} Runs to look at:", ""] + [f"- `{os.path.relpath(p, out_dir)}`: {why}"
                                                    for p, why in table.attention.items()] + [""]
    if table.rejected:
        lines += ["Record files left out (not valid records):", ""] + [
            f"- `{os.path.relpath(p, out_dir)}`: {why}" for p, why in table.rejected] + [""]
    if table.ignored:
        lines += ["Records of this table's tasks in other variants (tag, or overrides beyond the key), not shown: " +
                  ", ".join(f"{t or '(default)'} ({n})" for t, n in sorted(table.ignored.items())) + ".", ""]
    return "\n".join(lines)


# --- LaTeX -------------------------------------------------------------------------------
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}", "±": r"$\pm$", "—": "---", "×": r"$\times$",
        "Δ": r"$\Delta$", "‡": r"$\ddagger$", "§": r"\S{}", "↓": r"$\downarrow$", "−": "--", "–": "--"}


def tex(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def to_latex(table: Table, specs: Specs) -> str:
    spec, paper = table.spec, table.paper
    head = ["Model", "Method"] + [c.label for c in table.columns]
    if table.paper_numbers:
        head += [f"Δ {next(c.label for c in table.columns if c.key == k)}" for k in spec.delta]
    out = [f"% {spec.title}. Generated by scripts/make_tables.py from the run records; needs booktabs and graphicx.",
           f"% Published: {citation(table)}", r"\begin{table}[t]", r"\centering",
           r"\caption{" + tex(spec.title + ". Cells: ours (paper); ours = mean ± std over seeds; — = no run.") + "}",
           r"\resizebox{\linewidth}{!}{%", r"\begin{tabular}{ll" + "c" * (len(head) - 2) + "}", r"\toprule",
           " & ".join(tex(h) for h in head) + r" \\", r"\midrule"]
    runs = []
    for section in ("paper", "ours"):
        rows = table.section(section)
        if not rows:
            continue
        if section == "ours" and table.section("paper"):
            out += [r"\midrule", r"\multicolumn{%d}{l}{\emph{%s}} \\" % (
                len(head), tex("Our runs on other models; in parentheses the paper's number of the stand-in model"))]
        previous = None
        for row in rows:
            model = specs.model_label(row.sel.model) if row.sel.model != previous else ""
            if section == "ours" and row.paper_model:
                model = f"{specs.model_label(row.sel.model)} (vs {specs.model_label(row.paper_model)})"
            cells = [model, row.label] + [cell_text(table, row, c) for c in table.columns]
            if table.paper_numbers:
                cells += [delta_text(table, row, k) for k in spec.delta]
            out.append(" & ".join(tex(c) for c in cells) + r" \\")
            previous = row.sel.model
            runs += [f"%   {row.label} ({row.sel.model}): {rec.path}" for rec in row.records]
    out += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    if runs:
        out += ["% Run records behind the cells:"] + runs
    return "\n".join(out) + "\n"
