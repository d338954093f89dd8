"""GLUE rows from files and the hub: the original GLUE tsv layout read and written, and hub rows.

`<data_dir>/glue/<Task>/{train,dev}.tsv` as GLUE ships them: CoLA has no header, MRPC starts
with a byte-order mark, MNLI has dev_matched/dev_mismatched; read as plain tab-separated text
(quotes are text, as in GLUE).
"""
from __future__ import annotations

from pathlib import Path

from tasks.data_files import write_row_count
from tasks.glue.spec import GLUE, HUB_DATASET, HUB_SPLITS, GlueSpec


def read_glue_tsv(path: Path, spec: GlueSpec) -> tuple[list[tuple[str, ...]], list]:
    """(texts, labels) of one GLUE file. Plain tab splitting (no quoting: GLUE's text holds bare
    quotes), lines split on '\\n' only (str.splitlines would also split on characters such as
    U+2028 inside a sentence), a leading byte-order mark dropped. Rows too short for the
    needed columns, or without a label, are skipped (as the reference loaders do)."""
    lines = path.read_text(encoding="utf-8-sig").split("\n")
    rows = [line.rstrip("\r").split("\t") for line in lines if line.strip()]
    if spec.header:
        header, rows = rows[0], rows[1:]
        missing = [c for c in (*spec.text, spec.label) if c not in header]
        if missing:
            raise ValueError(f"{path}: header lacks {missing} (header: {header})")
    else:
        header = list(spec.columns)
    where = [header.index(c) for c in spec.text]
    at = header.index(spec.label)
    need = max(*where, at) + 1
    texts, labels = [], []
    for n, row in enumerate(rows, start=2 if spec.header else 1):
        if len(row) < need or not row[at].strip():
            continue
        raw = row[at].strip()
        if spec.labels is None:
            labels.append(float(raw))
        elif raw in spec.labels:
            labels.append(spec.labels.index(raw))
        else:
            raise ValueError(f"{path}:{n}: label {raw!r} is not one of {spec.labels}")
        texts.append(tuple(row[i] for i in where))
    return texts, labels


def write_glue_tsv(path: Path, spec: GlueSpec, texts: list[tuple[str, ...]], labels: list) -> None:
    """The inverse of read_glue_tsv in the original column layout (unknown columns left empty);
    used by `scripts/prepare_data.py glue` to store hub rows."""
    clean = lambda s: " ".join(str(s).split())  # noqa: E731  tabs/newlines would break the row
    out = [] if not spec.header else ["\t".join(spec.columns)]
    for i, (text, label) in enumerate(zip(texts, labels)):
        row = {c: "" for c in spec.columns}
        row.update({c: clean(t) for c, t in zip(spec.text, text)})
        row[spec.label] = f"{float(label):.3f}" if spec.labels is None else spec.labels[int(label)]
        if "index" in row:
            row["index"] = str(i)
        out.append("\t".join(row[c] for c in spec.columns))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(out) + "\n", encoding="utf-8")
    tmp.replace(path)
    write_row_count(path, len(labels))


def hub_rows(task: str, split: str) -> tuple[list[tuple[str, ...]], list]:
    import datasets

    spec = GLUE[task]
    rows = datasets.load_dataset(HUB_DATASET, task, split=HUB_SPLITS[split])
    texts = list(zip(*(rows[c] for c in spec.hub_text)))
    return texts, [float(v) if spec.labels is None else int(v) for v in rows["label"]]
