"""The accounting database: ``<paths.state_dir>/accounting.db``, its schema and migrations.

A database of its own (not the core's state store) so that a year of usage records never
slows the allocation path and the plugin's schema moves at its own pace. SQLite in WAL mode,
mode 0640, created by the daemon (the only writer); readers (``ds01 usage`` as root,
``ds01-api``) open it read-only and see an empty history when it does not exist yet.

Schema version: ``PRAGMA user_version``, moved by an ordered list of migrations, each in one
transaction with its version bump, so an upgrade keeps every record and a failed one changes
nothing.

Times are stored as Unix seconds (REAL); an hour bucket's ``hour`` is the Unix second its UTC
hour starts at.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ds01_core.api import Runtime

FILE_NAME = "accounting.db"
FILE_MODE = 0o640
BUSY_TIMEOUT_MS = 10_000

Migration = Callable[[sqlite3.Connection], None]


def _statements(db: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL inside the caller's transaction (``executescript`` would
    commit first and make the migration non-atomic)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _m1_records(db: sqlite3.Connection) -> None:
    _statements(
        db,
        """
        CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            allocation_id INTEGER NOT NULL UNIQUE,
            user TEXT NOT NULL,
            grp TEXT,
            container TEXT NOT NULL,
            container_id TEXT NOT NULL,
            slots TEXT NOT NULL,
            weight REAL NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            checkpoint_at REAL NOT NULL,
            gpu_eq_seconds REAL NOT NULL DEFAULT 0,
            busy REAL NOT NULL DEFAULT 0,
            known REAL NOT NULL DEFAULT 0,
            idle REAL NOT NULL DEFAULT 0,
            energy REAL,
            co2 REAL
        );
        CREATE INDEX records_open ON records (allocation_id) WHERE ended_at IS NULL;
        CREATE INDEX records_started ON records (started_at);
        CREATE INDEX records_user ON records (user, started_at);
        CREATE TABLE buckets (
            hour INTEGER NOT NULL,
            record_id INTEGER NOT NULL,
            user TEXT NOT NULL,
            grp TEXT,
            gpu_eq_seconds REAL NOT NULL DEFAULT 0,
            busy REAL NOT NULL DEFAULT 0,
            known REAL NOT NULL DEFAULT 0,
            idle REAL NOT NULL DEFAULT 0,
            energy REAL,
            co2 REAL,
            PRIMARY KEY (hour, record_id)
        ) WITHOUT ROWID;
        CREATE INDEX buckets_record ON buckets (record_id);
        CREATE TABLE unattributed (
            gpu_uuid TEXT NOT NULL,
            hour INTEGER NOT NULL,
            energy REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (gpu_uuid, hour)
        ) WITHOUT ROWID;
        CREATE TABLE gpu_counters (
            gpu_uuid TEXT PRIMARY KEY,
            joules REAL NOT NULL,
            at REAL NOT NULL
        );
        CREATE TABLE totals (
            user TEXT PRIMARY KEY,
            energy REAL NOT NULL DEFAULT 0,
            co2 REAL NOT NULL DEFAULT 0
        );
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
        """,
    )


#: Append only: a released version's migration never changes (its databases already ran it).
MIGRATIONS: tuple[Migration, ...] = (_m1_records,)


def db_path(runtime: Runtime) -> Path:
    return Path(runtime.config.paths.state_dir) / FILE_NAME


class AccountingStore:
    """One connection to the accounting database; ``writable`` creates and migrates it."""

    def __init__(
        self,
        path: Path | str,
        *,
        writable: bool = False,
        migrations: Sequence[Migration] = MIGRATIONS,
    ):
        self.path = Path(path)
        self.writable = writable
        if writable:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists()
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if fresh:
                os.chmod(self.path, FILE_MODE)
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
        else:
            uri = f"file:{self.path}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if writable:
            self._migrate(migrations)

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        for version, migration in enumerate(migrations, start=1):
            if self.schema_version >= version:
                continue
            with self.transaction() as db:
                if self.schema_version >= version:  # another writer got there first
                    continue
                migration(db)
                db.execute(f"PRAGMA user_version = {version}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if the body raises."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def close(self) -> None:
        self.db.close()


def writer(runtime: Runtime) -> AccountingStore:
    """The daemon's store, opened (created, migrated) once per runtime."""
    return runtime.memo(
        "accounting-store", lambda: AccountingStore(db_path(runtime), writable=True)
    )


def reader(runtime: Runtime) -> AccountingStore | None:
    """A read-only store for queries; None when the daemon has not created one yet."""
    path = db_path(runtime)
    if not path.exists():
        return None
    return AccountingStore(path)
