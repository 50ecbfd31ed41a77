"""The state store: WAL, versioned migrations, transactions that commit or roll back whole."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from ds01_core.domain.state.notices_sent import Subject, first_notice, sent_at, subjects_with
from ds01_core.domain.state.store import MIGRATIONS, StateStore


def test_new_store_is_migrated_and_in_wal_mode(tmp_path):
    store = StateStore(tmp_path / "state.db")
    assert store.schema_version == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "allocations",
        "allocation_slots",
        "overrides",
        "idle_streaks",
        "notices_sent",
        "grants",
    } <= tables


def test_migrations_run_once_and_new_ones_apply_on_open(tmp_path):
    path = tmp_path / "state.db"
    StateStore(path).close()
    ran = []

    def m2(db: sqlite3.Connection) -> None:
        ran.append(2)
        db.execute("CREATE TABLE extra (x INTEGER)")

    store = StateStore(path, migrations=(*MIGRATIONS, m2))
    assert store.schema_version == len(MIGRATIONS) + 1
    store.close()
    StateStore(path, migrations=(*MIGRATIONS, m2)).close()
    assert ran == [2]


def test_failed_migration_leaves_the_version_and_schema_untouched(tmp_path):
    path = tmp_path / "state.db"
    StateStore(path).close()

    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        StateStore(path, migrations=(*MIGRATIONS, broken))
    store = StateStore(path)
    assert store.schema_version == len(MIGRATIONS)
    names = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master")}
    assert "half_done" not in names


def test_newer_schema_than_known_is_refused(tmp_path):
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    store.close()
    with pytest.raises(RuntimeError, match="newer than this ds01 knows"):
        StateStore(path)


def test_transaction_rolls_back_on_error(tmp_path):
    store = StateStore(tmp_path / "state.db")
    with pytest.raises(ValueError), store.transaction() as db:
        db.execute(
            "INSERT INTO grants (user, kind, created_at) VALUES ('alice', 'bare-metal', 'now')"
        )
        raise ValueError("abort")
    assert store.db.execute("SELECT COUNT(*) FROM grants").fetchone()[0] == 0
    with store.transaction() as db:
        db.execute(
            "INSERT INTO grants (user, kind, created_at) VALUES ('alice', 'bare-metal', 'now')"
        )
    other = StateStore(tmp_path / "state.db")  # a second connection sees the commit
    assert other.db.execute("SELECT COUNT(*) FROM grants").fetchone()[0] == 1


def test_a_slot_cannot_be_held_twice_by_schema(tmp_path):
    store = StateStore(tmp_path / "state.db")
    with store.transaction() as db:
        for container in ("c1", "c2"):
            db.execute(
                "INSERT INTO allocations (user, container, weight, allocated_at) "
                "VALUES ('alice', ?, 1.0, 'now')",
                (container,),
            )
        db.execute("INSERT INTO allocation_slots (allocation_id, slot_uuid) VALUES (1, 'GPU-a')")
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as db:
        db.execute("INSERT INTO allocation_slots (allocation_id, slot_uuid) VALUES (2, 'GPU-a')")
    with store.transaction() as db:  # once released (live=0), the slot can be taken again
        db.execute("UPDATE allocation_slots SET live = 0 WHERE slot_uuid = 'GPU-a'")
        db.execute("INSERT INTO allocation_slots (allocation_id, slot_uuid) VALUES (2, 'GPU-a')")


def test_store_file_is_not_world_readable(tmp_path):
    store = StateStore(tmp_path / "sub" / "state.db")
    assert (tmp_path / "sub" / "state.db").stat().st_mode & 0o007 == 0
    store.close()


def test_notices_of_an_old_store_keep_their_subjects_after_migration_4(tmp_path):
    """Before schema 4, ``notices_sent.container`` held a container id, ``user:<name>`` or
    ``pid:<pid>:<ticks>``; each row survives with a subject of its kind and keeps its effect
    (a notice already sent is not sent again)."""
    path = tmp_path / "state.db"
    old = StateStore(path, migrations=MIGRATIONS[:3])
    rows = [
        ("0123abcd" * 8, "idle", "0.8", "2026-11-01T10:00:00+00:00"),
        ("user:alice", "quota", "gpu", "2026-11-01T11:00:00+00:00"),
        ("pid:4242:987654", "bare_metal", "unauthorised", "2026-11-01T12:00:00+00:00"),
    ]
    with old.transaction() as db:
        db.executemany(
            "INSERT INTO notices_sent (container, kind, threshold, sent_at) VALUES (?, ?, ?, ?)",
            rows,
        )
    old.close()

    store = StateStore(path)
    assert store.schema_version == len(MIGRATIONS) >= 4
    db = store.db
    assert [tuple(r) for r in db.execute("SELECT * FROM notices_sent ORDER BY sent_at")] == [
        ("container", "0123abcd" * 8, "idle", "0.8", "2026-11-01T10:00:00+00:00"),
        ("user", "alice", "quota", "gpu", "2026-11-01T11:00:00+00:00"),
        ("process", "4242:987654", "bare_metal", "unauthorised", "2026-11-01T12:00:00+00:00"),
    ]
    process = Subject.process(4242, 987654)
    assert subjects_with(db, "process", "bare_metal") == [process]
    assert process.pid_and_start() == (4242, 987654)
    assert sent_at(db, process, "bare_metal", "unauthorised") == dt.datetime(
        2026, 11, 1, 12, tzinfo=dt.UTC
    )
    now = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    with store.transaction() as db:
        assert not first_notice(db, Subject.user("alice"), "quota", "gpu", now)  # already sent
        assert not first_notice(db, Subject.container("0123abcd" * 8), "idle", "0.8", now)
        assert first_notice(db, Subject.container("alice"), "quota", "gpu", now)  # other kind
    store.close()


def test_each_thread_has_its_own_connection(tmp_path):
    """A listener thread writing while another thread holds a transaction open neither joins
    that transaction nor breaks it (ds01d's alert receiver beside the cycle); connections of
    threads that ended are closed when the next one opens."""
    import threading

    store = StateStore(tmp_path / "state.db")
    store.db.execute("CREATE TABLE t (v TEXT)")
    seen: list = []

    def writer() -> None:
        seen.append(store.db is not main_db)
        with store.transaction():  # waits for the main thread's write lock, then commits
            store.db.execute("INSERT INTO t VALUES ('thread')")

    main_db = store.db
    with store.transaction():
        store.db.execute("INSERT INTO t VALUES ('main')")
        thread = threading.Thread(target=writer)
        thread.start()
        thread.join(0.3)
        assert thread.is_alive()  # blocked on the lock, not inside this transaction
        store.db.execute("DELETE FROM t WHERE v = 'thread'")  # nothing of the thread's here
    thread.join(10)
    rows = sorted(r[0] for r in store.db.execute("SELECT v FROM t"))
    assert rows == ["main", "thread"] and seen == [True]
    assert len(store._connections) == 2
    writer_db = next(db for _t, db in store._connections if db is not main_db)
    third = threading.Thread(target=lambda: store.db)  # a new thread: the dead one's closed
    third.start()
    third.join(10)
    assert len(store._connections) == 2
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        writer_db.execute("SELECT 1")
    store.close()
    assert store._connections == []
