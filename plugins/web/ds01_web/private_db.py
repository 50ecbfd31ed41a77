"""A small SQLite file only root may read: the web plugin's tokens and sessions live in one each.

The file is made 0600 before SQLite first opens it (never readable by others, not even for a
moment), its schema is applied once per process, and each call gets its own connection and
transaction, so any thread may use it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

_READY: set[tuple[Path, str]] = set()
_LOCK = threading.Lock()


@contextlib.contextmanager
def private_db(path: Path, schema: str) -> Iterator[sqlite3.Connection]:
    """A connection to ``path`` (made 0600, ``schema`` applied), in a transaction that commits
    when the block ends without an error."""
    with _LOCK:
        ready = (path, schema) in _READY and path.exists()
        if not ready:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            os.chmod(path, 0o600)
    db = sqlite3.connect(path, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        if not ready:
            db.executescript(schema)
            _READY.add((path, schema))
        with db:
            yield db
    finally:
        db.close()


__all__ = ["private_db"]
