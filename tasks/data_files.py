"""Benchmark files that are there but damaged fail in one line naming the file and the fix.

- `read_json` / `read_jsonl`: a file cut short (or not UTF-8) raises DataCorruptError with the
  line, instead of a JSONDecodeError traceback that names no file.
- `check_rows`: a file whose row count is known and differs, e.g. a TSV cut in half, is refused.
  Known: the count `scripts/prepare_data.py` stored beside the file (`<file>.rows`), else
  KNOWN_ROWS (from ../shared/data/SOURCES.md, matching the hub's splits). Unless the task
  reads only its first `first` rows and that is fewer than were read (a cut can only damage
  the last row read). Readers that draw a random subset pass no `first`: the subset of a
  shorter file is a different subset.
"""
from __future__ import annotations

import json
from pathlib import Path

from tasks.base import DataCorruptError

# Rows (examples) per file, relative to paths.data_dir. A tuple when two published copies differ.
KNOWN_ROWS: dict[str, tuple[int, ...]] = {
    "glue/CoLA/train.tsv": (8551,), "glue/CoLA/dev.tsv": (1043,),
    "glue/SST-2/train.tsv": (67349,), "glue/SST-2/dev.tsv": (872,),
    "glue/MRPC/train.tsv": (3667, 3668),  # SOURCES.md: the offline copy is one row short of GLUE's 3668
    "glue/MRPC/dev.tsv": (408,),
    "glue/RTE/train.tsv": (2490,), "glue/RTE/dev.tsv": (277,),
    "glue/STS-B/train.tsv": (5749,), "glue/STS-B/dev.tsv": (1500,),
    "commonsense/boolq/test.json": (3270,), "commonsense/piqa/test.json": (1838,),
    "commonsense/social_i_qa/test.json": (1954,), "commonsense/winogrande/test.json": (1267,),
    "commonsense/ARC-Challenge/test.json": (1172,), "commonsense/ARC-Easy/test.json": (2376,),
    "commonsense/openbookqa/test.json": (500,),
    "commonsense/boolq/train.json": (9427,), "commonsense/ARC-Challenge/train.json": (1119,),
    "commonsense/ARC-Easy/train.json": (2251,), "commonsense/openbookqa/train.json": (4957,),
    "gsm8k/train.jsonl": (7473,), "gsm8k/test.jsonl": (1319,),
    "math500/test.jsonl": (500,),
}


def damaged(path: Path, why: str, fix: str) -> DataCorruptError:
    """`fix`: the command that writes the file again, then (after `;`) anything else that helps."""
    command, _, more = fix.partition(";")
    return DataCorruptError(f"{path} is damaged ({why}). Fix: `{command.strip()}` writes it again, or restore "
                            f"the file{';' + more if more else ''}")


def read_json(path: Path, fix: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise damaged(path, str(err), fix) from None


def read_jsonl(path: Path, fix: str) -> list:
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    rows.append(json.loads(line))
    except json.JSONDecodeError as err:
        raise damaged(path, f"line {n}: {err}", fix) from None
    except UnicodeDecodeError as err:
        raise damaged(path, str(err), fix) from None
    return rows


def read_text(path: Path, fix: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise damaged(path, str(err), fix) from None


def rows_file(path: Path) -> Path:
    return path.with_name(path.name + ".rows")


def write_row_count(path: Path, rows: int) -> None:
    """Called by the writer of `path` (prepare time), so a later cut is caught for any file."""
    rows_file(path).write_text(f"{rows}\n", encoding="utf-8")


def known_rows(path: Path, data_dir: Path) -> tuple[int, ...] | None:
    stored = rows_file(path)
    if stored.is_file():
        try:
            return (int(stored.read_text(encoding="utf-8")),)
        except ValueError:
            raise damaged(stored, "not a row count", f"rm {stored}") from None
    try:
        return KNOWN_ROWS.get(Path(path).resolve().relative_to(Path(data_dir).resolve()).as_posix())
    except ValueError:  # outside the data folder (e.g. task.train_file=/abs/path): nothing known
        return None


def check_rows(path: Path, data_dir: Path, rows: int, fix: str, first: int | None = None,
               first_key: str | None = None) -> None:
    """Refuse `path` when its known row count is not `rows` and the run would read past a cut
    (`first`: the task reads only its first rows, set by the config key `first_key`)."""
    known = known_rows(path, data_dir)
    if known is None or rows in known or (first is not None and first < rows):
        return
    what = "cut short or a partial copy" if rows < min(known) else "not the published file"
    fewer = f"; or read fewer rows with {first_key}=N, N < {rows}" if first_key and rows else ""
    raise damaged(path, f"{rows} rows, expected {' or '.join(map(str, known))}: {what}", fix + fewer)
