"""Usage records: what one allocation accumulates between two checkpoints, by UTC hour.

A record's time is exact (the allocation's own ``allocated_at`` and ``released_at``); what
is *measured* over it (busy, known, idle, energy) is taken from the cycle that closes the
interval: the slots' utilisation and the workload's idle streak as that cycle read them. An
interval longer than ``max_gap`` (the daemon was down, or a cycle stalled) is counted in full
as allocated time, with its utilisation unknown: a reading is never stretched over a gap.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

import attrs

HOUR = 3600


@attrs.frozen
class Sample:
    """What a cycle knows about slots and containers, for the interval it closes."""

    #: slot UUID -> utilisation in percent (only slots whose utilisation is known)
    utilization: Mapping[str, float] = attrs.Factory(dict)
    #: slot UUID -> its weight in GPU-equivalents (every slot the cycle read)
    weights: Mapping[str, float] = attrs.Factory(dict)
    #: ids and names of containers in an idle streak (``idle_seconds > 0``)
    idle: frozenset[str] = frozenset()


@attrs.define
class OpenRecord:
    """An open record as the recorder carries it from one checkpoint to the next."""

    id: int
    allocation_id: int
    user: str
    group: str | None
    container: str
    container_id: str
    slots: tuple[str, ...]
    weight: float
    started_at: float
    checkpoint_at: float


@attrs.frozen
class Segment:
    """One record's accumulation inside one UTC hour (GPU-equivalent-seconds each)."""

    hour: int
    gpu_eq_seconds: float
    busy: float
    known: float
    idle: float


def hours(start: float, end: float) -> list[tuple[int, float]]:
    """``(hour, seconds)`` for each UTC hour that ``[start, end)`` touches."""
    pieces = []
    moment = start
    while moment < end:
        hour = int(moment // HOUR) * HOUR
        stop = min(end, hour + HOUR)
        pieces.append((hour, stop - moment))
        moment = stop
    return pieces


def rates(record: OpenRecord, sample: Sample | None) -> tuple[float, float, float]:
    """``(busy, known, idle)`` GPU-equivalents per second of ``record`` under ``sample``.

    Busy: the sum over its slots of weight x utilisation; known: the weight of the slots whose
    utilisation was read; idle: the whole weight while its container is in an idle streak.
    """
    if sample is None:
        return 0.0, 0.0, 0.0
    fallback = record.weight / len(record.slots) if record.slots else 0.0
    busy = known = 0.0
    for slot in record.slots:
        util = sample.utilization.get(slot)
        if util is None:
            continue
        weight = sample.weights.get(slot, fallback)
        busy += weight * min(max(util, 0.0), 100.0) / 100.0
        known += weight
    idle = record.weight if {record.container, record.container_id} & sample.idle else 0.0
    return busy, known, idle


def segments(
    record: OpenRecord, start: float, end: float, sample: Sample | None, max_gap: float
) -> list[Segment]:
    """What ``record`` accumulates over ``[start, end)``, hour by hour."""
    if end <= start:
        return []
    busy, known, idle = rates(record, sample if end - start <= max_gap else None)
    return [
        Segment(hour, record.weight * s, busy * s, known * s, idle * s)
        for hour, s in hours(start, end)
    ]


def write_segments(db: sqlite3.Connection, record: OpenRecord, parts: Iterable[Segment]) -> None:
    """Add ``parts`` to the record's hour buckets and to its totals."""
    parts = list(parts)
    if not parts:
        return
    db.executemany(
        "INSERT INTO buckets (hour, record_id, user, grp, gpu_eq_seconds, busy, known, idle) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hour, record_id) DO UPDATE SET "
        "gpu_eq_seconds = gpu_eq_seconds + excluded.gpu_eq_seconds, "
        "busy = busy + excluded.busy, known = known + excluded.known, "
        "idle = idle + excluded.idle",
        [
            (
                p.hour,
                record.id,
                record.user,
                record.group,
                p.gpu_eq_seconds,
                p.busy,
                p.known,
                p.idle,
            )
            for p in parts
        ],
    )
    db.execute(
        "UPDATE records SET gpu_eq_seconds = gpu_eq_seconds + ?, busy = busy + ?, "
        "known = known + ?, idle = idle + ? WHERE id = ?",
        (
            sum(p.gpu_eq_seconds for p in parts),
            sum(p.busy for p in parts),
            sum(p.known for p in parts),
            sum(p.idle for p in parts),
            record.id,
        ),
    )


def add_energy(
    db: sqlite3.Connection,
    record: OpenRecord,
    hour: int,
    joules: float,
    co2_grams: float | None,
) -> None:
    """Add attributed energy (and its CO2 when the intensity is known) to the record, its
    hour bucket and its user's lifetime totals."""
    db.execute(
        "INSERT INTO buckets (hour, record_id, user, grp, energy, co2) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (hour, record_id) DO UPDATE SET "
        "energy = COALESCE(energy, 0) + excluded.energy, "
        "co2 = CASE WHEN excluded.co2 IS NULL THEN co2 ELSE COALESCE(co2, 0) + excluded.co2 END",
        (hour, record.id, record.user, record.group, joules, co2_grams),
    )
    db.execute(
        "UPDATE records SET energy = COALESCE(energy, 0) + ?, "
        "co2 = CASE WHEN ? IS NULL THEN co2 ELSE COALESCE(co2, 0) + ? END WHERE id = ?",
        (joules, co2_grams, co2_grams, record.id),
    )
    db.execute(
        "INSERT INTO totals (user, energy, co2) VALUES (?, ?, ?) ON CONFLICT (user) DO UPDATE "
        "SET energy = energy + excluded.energy, co2 = co2 + excluded.co2",
        (record.user, joules, co2_grams or 0.0),
    )


def open_records(db: sqlite3.Connection) -> dict[int, OpenRecord]:
    """The open records, by allocation id."""
    return {
        row["allocation_id"]: OpenRecord(
            id=row["id"],
            allocation_id=row["allocation_id"],
            user=row["user"],
            group=row["grp"],
            container=row["container"],
            container_id=row["container_id"],
            slots=tuple(row["slots"].split()),
            weight=row["weight"],
            started_at=row["started_at"],
            checkpoint_at=row["checkpoint_at"],
        )
        for row in db.execute("SELECT * FROM records WHERE ended_at IS NULL")
    }


def insert_record(db: sqlite3.Connection, record: OpenRecord) -> OpenRecord:
    """Store a new open record; its id is the one SQLite gave it."""
    cursor = db.execute(
        "INSERT INTO records (allocation_id, user, grp, container, container_id, slots, weight, "
        "started_at, checkpoint_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.allocation_id,
            record.user,
            record.group,
            record.container,
            record.container_id,
            " ".join(record.slots),
            record.weight,
            record.started_at,
            record.checkpoint_at,
        ),
    )
    assert cursor.lastrowid is not None
    return attrs.evolve(record, id=cursor.lastrowid)


def checkpoint(
    db: sqlite3.Connection, record: OpenRecord, at: float, *, closed: bool = False
) -> None:
    """Move the record's checkpoint to ``at``; ``closed``: it ended there."""
    db.execute(
        "UPDATE records SET checkpoint_at = ?, ended_at = ?, container = ?, container_id = ? "
        "WHERE id = ?",
        (at, at if closed else None, record.container, record.container_id, record.id),
    )
    record.checkpoint_at = at
