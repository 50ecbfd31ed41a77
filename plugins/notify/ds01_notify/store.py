"""The plugin's tables in ds01's state store, and transactions that nest in the caller's.

Tables are created with ``CREATE TABLE IF NOT EXISTS`` inside a state-store transaction (safe
when the daemon and a CLI start together), once per runtime. A notice may be sent from inside
another transaction of the core's (a refusal told while allocating): :func:`transaction` then
joins that one instead of failing on a nested ``BEGIN``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ds01_core.api import Runtime


@contextlib.contextmanager
def transaction(runtime: Runtime) -> Iterator[sqlite3.Connection]:
    """A write transaction (``BEGIN IMMEDIATE``), or the caller's if one is open."""
    db = runtime.state.db
    if db.in_transaction:
        yield db
        return
    with runtime.state.transaction() as db:
        yield db


def ensure_tables(runtime: Runtime, key: str, statements: Sequence[str]) -> None:
    """Run ``statements`` (idempotent DDL) once per runtime under ``key``."""

    def create() -> bool:
        with transaction(runtime) as db:
            for statement in statements:
                db.execute(statement)
        return True

    runtime.memo(f"ds01_notify.schema.{key}", create)
