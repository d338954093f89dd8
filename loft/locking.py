"""One process per record name: an exclusive, non-blocking flock on `<record>.lock`.

The kernel releases a flock when its process dies, so a killed run never leaves a stale lock;
the lock file itself stays (deleting it would let two processes lock two different files).
"""
from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path

from loft.core.errors import RunLocked


@contextmanager
def record_lock(path: Path, record: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(f"{record} is being computed by another process right now (lock {path}); "
                            f"wait for it, or give this run its own name with tag=NAME") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
