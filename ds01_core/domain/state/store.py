"""The state store: one SQLite database (WAL) that only the root daemon and root CLI write.

Every write happens in a transaction; decisions that must not race (GPU allocation) use
``BEGIN IMMEDIATE`` so the write lock is taken before anything is read. The schema is versioned
by an ordered list of migrations; each runs once, in its own transaction, and the version
number moves with it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000

Migration = Callable[[sqlite3.Connection], None]


def _run_statements(db: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL inside the caller's transaction.

    Comments must not contain a semicolon.

    ``sqlite3.executescript`` would commit first, which would make a migration non-atomic.
    """
    for statement in script.split(";"):
        lines = [ln for ln in statement.splitlines() if not ln.strip().startswith("--")]
        if "".join(lines).strip():
            db.execute("\n".join(lines))


def _m1_initial(db: sqlite3.Connection) -> None:
    _run_statements(
        db,
        """
        CREATE TABLE allocations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user TEXT NOT NULL,
            container TEXT NOT NULL,
            container_name TEXT,
            weight REAL NOT NULL,
            allocated_at TEXT NOT NULL,
            stopped_at TEXT,
            released_at TEXT,
            release_reason TEXT
        );
        CREATE INDEX allocations_live ON allocations (user) WHERE released_at IS NULL;
        CREATE TABLE allocation_slots (
            allocation_id INTEGER NOT NULL REFERENCES allocations (id),
            slot_uuid TEXT NOT NULL,
            live INTEGER NOT NULL DEFAULT 1
        );
        -- the guarantee against double booking lives in the schema, not only in the code
        CREATE UNIQUE INDEX allocation_slots_one_holder ON allocation_slots (slot_uuid)
            WHERE live = 1;
        CREATE TABLE overrides (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            expires TEXT NOT NULL,
            reason TEXT NOT NULL,
            approved_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            removed_at TEXT
        );
        CREATE TABLE idle_streaks (
            container TEXT PRIMARY KEY,
            idle_since TEXT,
            cycles INTEGER NOT NULL DEFAULT 0,
            last_active_signal TEXT,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE notices_sent (
            container TEXT NOT NULL,
            kind TEXT NOT NULL,
            threshold TEXT NOT NULL,
            sent_at TEXT NOT NULL,
            PRIMARY KEY (container, kind, threshold)
        );
        CREATE TABLE grants (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user TEXT NOT NULL,
            kind TEXT NOT NULL,
            target TEXT,
            expires TEXT,
            reason TEXT,
            granted_by TEXT,
            created_at TEXT NOT NULL,
            revoked_at TEXT
        );
        """,
    )


def _m2_allocation_lifecycle(db: sqlite3.Connection) -> None:
    _run_statements(
        db,
        """
        -- an allocation is made before its container exists (the UUIDs go into the create
        -- body). Until it is bound to a container id, the allocating process vouches for it
        ALTER TABLE allocations ADD COLUMN bound INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE allocations ADD COLUMN owner_pid INTEGER;
        ALTER TABLE allocations ADD COLUMN owner_pid_start INTEGER;
        ALTER TABLE allocations ADD COLUMN request TEXT;
        CREATE TABLE gpu_queue (
            ticket INTEGER PRIMARY KEY AUTOINCREMENT,
            user TEXT NOT NULL,
            container_name TEXT NOT NULL,
            request TEXT NOT NULL,
            enqueued_at TEXT NOT NULL,
            pid INTEGER NOT NULL,
            pid_start INTEGER NOT NULL,
            wake_path TEXT NOT NULL,
            left_at TEXT,
            outcome TEXT
        );
        CREATE INDEX gpu_queue_waiting ON gpu_queue (ticket) WHERE left_at IS NULL
        """,
    )


def _m3_label_migrations(db: sqlite3.Connection) -> None:
    _run_statements(
        db,
        """
        CREATE TABLE label_migrations (
            container_id TEXT PRIMARY KEY,
            container_name TEXT NOT NULL,
            legacy TEXT NOT NULL,
            mapped TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            recreated_as TEXT
        )
        """,
    )


def _m4_notice_subjects(db: sqlite3.Connection) -> None:
    # notices_sent.container held three kinds of key: a container id, user:<name> (quota
    # warnings) and pid:<pid>:<start ticks> (bare-metal processes). Each row keeps its notice,
    # now under a subject of its kind.
    _run_statements(
        db,
        """
        CREATE TABLE notices_sent_4 (
            subject_kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            kind TEXT NOT NULL,
            threshold TEXT NOT NULL,
            sent_at TEXT NOT NULL,
            PRIMARY KEY (subject_kind, subject, kind, threshold)
        );
        INSERT INTO notices_sent_4 (subject_kind, subject, kind, threshold, sent_at)
            SELECT
                CASE
                    WHEN container LIKE 'user:%' THEN 'user'
                    WHEN container LIKE 'pid:%' THEN 'process'
                    ELSE 'container'
                END,
                CASE
                    WHEN container LIKE 'user:%' THEN substr(container, 6)
                    WHEN container LIKE 'pid:%' THEN substr(container, 5)
                    ELSE container
                END,
                kind, threshold, sent_at
            FROM notices_sent;
        DROP TABLE notices_sent;
        ALTER TABLE notices_sent_4 RENAME TO notices_sent
        """,
    )


def _m5_gpu_health(db: sqlite3.Connection) -> None:
    # each GPU's health as the daemon's gpu-health step concluded it (domain/state/gpu_health)
    _run_statements(
        db,
        """
        CREATE TABLE gpu_health (
            gpu_index INTEGER PRIMARY KEY,
            uuid TEXT NOT NULL,
            state TEXT NOT NULL,
            reasons TEXT NOT NULL,
            since TEXT,
            drained INTEGER NOT NULL DEFAULT 0,
            telemetry TEXT,
            xids TEXT NOT NULL DEFAULT '[]',
            updated_at TEXT NOT NULL
        )
        """,
    )


#: Ordered schema migrations; version N is reached by running MIGRATIONS[N-1]. Append only:
#: never edit or reorder a migration that has shipped.
MIGRATIONS: tuple[Migration, ...] = (
    _m1_initial,
    _m2_allocation_lifecycle,
    _m3_label_migrations,
    _m4_notice_subjects,
    _m5_gpu_health,
)


class StateStore:
    """A connection to the state database, migrated to the current schema on open."""

    def __init__(self, path: Path | str, *, migrations: Sequence[Migration] = MIGRATIONS):
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        # check_same_thread=False: a process may open the store in one thread (a plugin's
        # configure hook) and use it from another (the gateway's runtime thread); callers never
        # use one store from two threads at once, and Python's SQLite is built serialized.
        self.db = sqlite3.connect(
            str(self.path),
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("PRAGMA foreign_keys = ON")
        if str(path) != ":memory:":
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o640)
        self._migrate(migrations)

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        for target, migration in enumerate(migrations, start=1):
            with self.transaction():
                # re-read inside the lock: another process may have migrated meanwhile
                if self.schema_version >= target:
                    continue
                migration(self.db)
                self.db.execute(f"PRAGMA user_version = {target}")
        if self.schema_version > len(migrations):
            raise RuntimeError(
                f"state store {self.path} has schema version {self.schema_version}, newer than "
                f"this ds01 knows ({len(migrations)}); upgrade ds01 before running it"
            )

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        """A transaction that commits on success and rolls back on any exception.

        ``immediate`` takes the write lock at ``BEGIN``, so a read-decide-write sequence inside
        cannot interleave with another process's.
        """
        self.db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN DEFERRED")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()
