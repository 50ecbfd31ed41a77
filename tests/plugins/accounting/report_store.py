"""The fixture month written the way the daemon writes it: usage records and their hour
buckets through the accounting store's own functions (``ds01_accounting.records``), and the GPU
queue's events through the audit log. No SQL of its own.

Each allocation's October figures (report_fixture.py) are spread over its October hours in
proportion to the time in each hour; allocations that cross the month's edges get buckets
outside October as well (busy, idle and energy that October's report must not count).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ds01_accounting.records import (
    OpenRecord,
    Segment,
    add_energy,
    checkpoint,
    hours,
    insert_record,
    write_segments,
)
from ds01_accounting.store import AccountingStore, db_path
from ds01_core.api import Event, Runtime
from tests.plugins.accounting.report_fixture import ALLOCATIONS, SINCE, UNTIL, queue_events


def _stamp(moment: dt.datetime) -> float:
    return moment.timestamp()


def _write_one(db: Any, number: int, a: dict[str, Any], now: dt.datetime) -> None:
    start = _stamp(a["start"])
    end = _stamp(a["end"] or now)
    record = insert_record(
        db,
        OpenRecord(
            id=0,
            allocation_id=1000 + number,
            user=a["user"],
            group=a["group"],
            container=a["container"],
            container_id=f"{number:02d}" * 32,
            slots=(f"GPU-fixture-{number}",),
            weight=a["weight"],
            started_at=start,
            checkpoint_at=start,
        ),
    )
    pieces = hours(start, end)
    inside = [(h, s) for h, s in pieces if _stamp(SINCE) <= h < _stamp(UNTIL)]
    outside = [(h, s) for h, s in pieces if (h, s) not in inside]
    seconds_in = sum(s for _h, s in inside)
    busy = a["busy"] or 0.0
    parts = [
        Segment(
            h,
            a["weight"] * s,
            busy * s / seconds_in,
            a["known"] * s / seconds_in,
            a["idle"] * s / seconds_in,
        )
        for h, s in inside
    ]
    # outside October: fully busy, idle and known, so counting them would show
    parts += [
        Segment(h, a["weight"] * s, a["weight"] * s, a["weight"] * s, a["weight"] * s)
        for h, s in outside
    ]
    write_segments(db, record, parts)
    if a["energy"] is not None:
        add_energy(db, record, inside[0][0], a["energy"], a["co2"])
    for h, _s in outside:
        add_energy(db, record, h, 1.0e9, 1.0e6)  # a gigajoule outside: never October's
    checkpoint(db, record, end, closed=a["end"] is not None)


def write_fixture_month(runtime: Runtime) -> None:
    """October 2026's allocations into the accounting store, the queue events into the log."""
    store = AccountingStore(db_path(runtime), writable=True)
    try:
        with store.transaction() as db:
            for number, allocation in enumerate(ALLOCATIONS):
                _write_one(db, number, allocation, runtime.now())
    finally:
        store.close()
    for record in queue_events():
        runtime.events.append(
            Event(
                record["event_type"],
                record["user"],
                record["source"],
                record["details"],
                timestamp=dt.datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")),
            )
        )
