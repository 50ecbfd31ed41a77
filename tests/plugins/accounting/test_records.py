"""Usage records over simulated time: exact to the second from the allocations' own times,
across partial cycles, an allocation that came and went between two cycles, a long gap, a
restart and a schema migration; busy, known and idle time; the hour buckets."""

from __future__ import annotations

import datetime as dt
import sqlite3
import stat
from pathlib import Path

import pytest

from ds01_accounting.recorder import record_cycle
from ds01_accounting.records import OpenRecord, Sample, hours, segments
from ds01_accounting.store import MIGRATIONS, AccountingStore, db_path
from ds01_accounting.usage import aggregate, usage_rows
from ds01_core.domain.state.allocations import Allocations
from tests.plugins.accounting.accounting_helpers import (
    T0,
    Clock,
    allocate,
    make_runtime,
    release,
    report,
    slots,
)

HOUR = 3600


def test_an_interval_is_split_at_each_utc_hour() -> None:
    start = T0.timestamp() + 3500
    assert hours(start, start + 3800) == [
        (int(T0.timestamp()), 100.0),
        (int(T0.timestamp()) + HOUR, 3600.0),
        (int(T0.timestamp()) + 2 * HOUR, 100.0),
    ]
    assert hours(start, start) == []


def test_a_segment_counts_busy_known_and_idle_by_slot_weight() -> None:
    record = OpenRecord(1, 1, "u", None, "c", "c-id", ("a", "b"), 0.5, 0.0, 0.0)
    sample = Sample({"a": 60.0}, {"a": 2 / 7, "b": 3 / 14}, frozenset({"c-id"}))
    [part] = segments(record, 0.0, 10.0, sample, max_gap=100)
    assert part.gpu_eq_seconds == pytest.approx(5.0)
    assert part.known == pytest.approx(10 * 2 / 7)
    assert part.busy == pytest.approx(10 * 2 / 7 * 0.6)
    assert part.idle == pytest.approx(5.0)
    # a gap longer than the readings are trusted for: allocated, nothing measured
    [gap] = segments(record, 0.0, 200.0, sample, max_gap=100)
    assert (gap.gpu_eq_seconds, gap.known, gap.busy, gap.idle) == (100.0, 0.0, 0.0, 0.0)


def _expected(runtime, start: float, end: float) -> dict[str, float]:
    """weight x overlap with [start, end), per container, from the state store itself."""
    out = {}
    for a in Allocations(runtime).history(after=0):
        stop = (a.released_at or runtime.now()).timestamp()
        overlap = max(0.0, min(stop, end) - max(a.allocated_at.timestamp(), start))
        out[a.container_name] = a.weight * overlap
    return out


def test_records_are_exact_to_the_second_across_cycles_gaps_and_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    runtime, _gpus = make_runtime(tmp_path, clock)
    a = allocate(runtime, "ds01ta", "a", "0")
    clock.advance(7)
    record_cycle(runtime, report(runtime))  # the first cycle: GPM's first sample
    b = allocate(runtime, "ds01tb", "b", "1.2")
    clock.advance(30.5)
    record_cycle(runtime, report(runtime, idle=("a",)))
    c = allocate(runtime, "ds01ta", "c", "1.3")
    clock.advance(3)
    release(runtime, c)  # came and went between two cycles
    clock.advance(11.25)
    release(runtime, a)
    clock.advance(20)
    record_cycle(runtime, report(runtime, partial=True))

    # ds01d restarts (a new runtime, new GPU session) and the next cycle comes an hour later
    runtime.close()
    clock.advance(4000)
    runtime, _gpus = make_runtime(tmp_path, clock)
    record_cycle(runtime, report(runtime))
    clock.advance(10)
    release(runtime, b)
    clock.advance(5)
    record_cycle(runtime, report(runtime))

    start, end = T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=3)
    rows = {row.container: row for row in usage_rows(runtime, start, end)}
    expected = _expected(runtime, start.timestamp(), end.timestamp())
    assert set(rows) == {"a", "b", "c"}
    for name, seconds in expected.items():
        assert rows[name].gpu_eq_seconds == pytest.approx(seconds, abs=1e-6), name
        assert rows[name].ended_at is not None
    assert rows["a"].gpu_eq_seconds == pytest.approx(7 + 30.5 + 3 + 11.25)
    assert rows["b"].gpu_eq_seconds == pytest.approx(3 / 7 * (30.5 + 3 + 11.25 + 20 + 4000 + 10))
    assert rows["c"].gpu_eq_seconds == pytest.approx(2 / 7 * 3)
    assert (rows["a"].user, rows["b"].user) == ("ds01ta", "ds01tb")
    assert rows["b"].slots == (slots(runtime)["1.2"].uuid,)
    assert rows["b"].gpu_equivalents == pytest.approx(3 / 7)

    # measured: a was idle in the second cycle, and the partial cycle after it (no idle
    # sampling of its own) kept that reading; b was 80 % busy whenever its utilisation was read
    # (GPM), and the hour-long gap is allocated time of unknown use
    assert rows["a"].idle_gpu_eq_seconds == pytest.approx(30.5 + 14.25)
    known_b = 3 / 7 * (30.5 + 3 + 11.25 + 20 + 10)
    assert rows["b"].known_gpu_eq_seconds == pytest.approx(known_b)
    assert rows["b"].busy_gpu_eq_seconds == pytest.approx(0.8 * known_b)
    assert rows["c"].busy_gpu_eq_seconds == pytest.approx(0.2 * 2 / 7 * 3)

    # the sums: exact whatever the grouping, and the hour buckets add up to the records
    by_user, total = aggregate(runtime, start, end, "user")
    assert total.gpu_eq_seconds == pytest.approx(sum(expected.values()))
    assert {s.key: s.allocations for s in by_user} == {"ds01ta": 2, "ds01tb": 1}
    by_hour, _ = aggregate(runtime, start, end, "day")
    assert sum(s.gpu_eq_seconds for s in by_hour) == pytest.approx(sum(expected.values()))

    # a window inside the allocations: clipped exactly
    inner_start, inner_end = T0 + dt.timedelta(seconds=20), T0 + dt.timedelta(seconds=100)
    inner = {row.container: row for row in usage_rows(runtime, inner_start, inner_end)}
    wanted = _expected(runtime, inner_start.timestamp(), inner_end.timestamp())
    assert {k: v for k, v in wanted.items() if v > 0} == pytest.approx(
        {k: r.gpu_eq_seconds for k, r in inner.items()}
    )
    only_tb = usage_rows(runtime, start, end, users=["ds01tb"])
    assert [r.container for r in only_tb] == ["b"]
    runtime.close()


def test_an_open_record_is_checkpointed_every_cycle(tmp_path: Path) -> None:
    clock = Clock()
    runtime, _gpus = make_runtime(tmp_path, clock)
    allocate(runtime, "ds01ta", "live", "1.3")
    for _ in range(3):
        clock.advance(30)
        record_cycle(runtime, report(runtime))
    db = sqlite3.connect(db_path(runtime))
    checkpoint, ended, seconds = db.execute(
        "SELECT checkpoint_at, ended_at, gpu_eq_seconds FROM records"
    ).fetchone()
    assert (checkpoint, ended) == (clock().timestamp(), None)
    assert seconds == pytest.approx(2 / 7 * 90)
    [row] = usage_rows(runtime, T0, T0 + dt.timedelta(hours=1))
    assert row.ended_at is None and row.gpu_eq_seconds == pytest.approx(2 / 7 * 90)
    assert stat.S_IMODE(db_path(runtime).stat().st_mode) == 0o640
    runtime.close()


def test_records_survive_a_schema_migration(tmp_path: Path) -> None:
    clock = Clock()
    runtime, _gpus = make_runtime(tmp_path, clock)
    allocate(runtime, "ds01ta", "kept", "0")
    clock.advance(60)
    record_cycle(runtime, report(runtime))
    runtime.close()

    def m2_comment(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE records ADD COLUMN comment TEXT")

    store = AccountingStore(db_path(runtime), writable=True, migrations=(*MIGRATIONS, m2_comment))
    assert store.schema_version == len(MIGRATIONS) + 1
    store.close()
    runtime, _gpus = make_runtime(tmp_path, clock)
    [row] = usage_rows(runtime, T0, T0 + dt.timedelta(hours=1))
    assert (row.container, row.gpu_eq_seconds) == ("kept", pytest.approx(60.0))
    runtime.close()


def test_no_records_before_the_daemon_made_the_database(tmp_path: Path) -> None:
    clock = Clock()
    runtime, _gpus = make_runtime(tmp_path, clock)
    assert usage_rows(runtime, T0, T0 + dt.timedelta(days=1)) == []
    assert not db_path(runtime).exists()  # a reader never creates it
    runtime.close()
