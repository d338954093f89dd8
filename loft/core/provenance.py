"""Data provenance for the record's `data` field: which file a run trained on, how many rows it
read and the file's sha256, so a table can tell two runs on different copies of a data set apart."""
from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20  # bytes read at a time: data files can be gigabytes


def sha256_of(*paths: Path) -> str:
    """Hex sha256 of a file (or of several files' bytes concatenated in order), read in chunks
    (never a whole file in memory)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def file_provenance(path, rows: int, root=None) -> dict:
    """{train_file, rows, sha256} of the training file at `path` of which the task used `rows` rows.
    `train_file` is `path` relative to `root` when given (e.g. the data dir, so records from two
    machines name the same file alike), else `path` as given."""
    path = Path(path)
    name = path.relative_to(root) if root is not None else path
    return {"train_file": str(name), "rows": int(rows), "sha256": sha256_of(path)}
