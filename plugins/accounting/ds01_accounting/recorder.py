"""The daemon's accounting work after each cycle: open, checkpoint and close usage records.

Every cycle (full and partial) reads the allocations it must follow in one query by primary
key (the open records' and every id above the highest seen, so an allocation that came and
went between two cycles is recorded too) and, in one transaction, moves each open record's
checkpoint to now, or closes it at the allocation's own ``released_at``. A SIGKILL therefore
loses at most what happened since the last checkpoint, and the next daemon resumes from the
stored checkpoints: the time in between is counted from the allocation's times, its
utilisation unknown. Full cycles also read the GPUs' energy counters and attribute them.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from ds01_accounting.energy import Counter, Holding, attribute, co2_grams, delta
from ds01_accounting.records import (
    HOUR,
    OpenRecord,
    Sample,
    add_energy,
    checkpoint,
    insert_record,
    open_records,
    segments,
    write_segments,
)
from ds01_accounting.store import AccountingStore, writer
from ds01_core.api import allocation_history, effective_limits, live_allocations

if TYPE_CHECKING:
    from ds01_core.api import Allocation, CycleReport, Runtime

log = logging.getLogger(__name__)

LAST_ID = "last_allocation_id"
SAMPLE_KEY = "accounting-sample"


def max_gap(runtime: Runtime) -> float:
    """The longest interval one cycle's readings are trusted for: two cycles and a half."""
    return 2.5 * float(runtime.config.lifecycle.interval) + 30.0


def sample_of(runtime: Runtime, report: CycleReport, now: float) -> Sample | None:
    """The slots' utilisation and the idle containers as this cycle saw them; a partial cycle
    (no GPU reading, no idle sampling) uses the last full cycle's, if recent enough."""
    memo: dict[str, Any] = runtime.memo(SAMPLE_KEY, dict)
    if report.partial or not report.gpus:
        last = memo.get("sample")
        if report.partial and last is not None and now - memo["at"] <= max_gap(runtime):
            return last
        return None
    utilization, weights = {}, {}
    for gpu in report.gpus:
        for slot in gpu.slots:
            weights[slot.uuid] = slot.weight
            util = slot.utilization
            if util is None and not gpu.mig_enabled:
                util = gpu.utilization
            if util is not None:
                utilization[slot.uuid] = float(util)
    idle: set[str] = set()
    for workload in report.workloads:
        if workload.idle_seconds is not None and workload.idle_seconds > 0:
            idle.update((workload.id, workload.name))
    sample = Sample(utilization, weights, frozenset(idle))
    memo.update(sample=sample, at=now)
    return sample


def group_of(runtime: Runtime, user: str) -> str | None:
    """The user's group now (directory plugins, then the file); None when it cannot be told."""
    try:
        return effective_limits(runtime, user).group
    except Exception as exc:  # a directory that fails must not lose the record
        log.warning("accounting: group of %s unknown: %s", user, exc)
        return None


def _stamp(moment: dt.datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _allocations(
    runtime: Runtime, store: AccountingStore, open_ids: list[int]
) -> tuple[list[Allocation], bool]:
    """What to follow this cycle, and whether this is the first cycle ever (then allocations
    released before it are left out: no history is made up from before accounting began)."""
    last = store.meta(LAST_ID)
    if last is not None:
        return allocation_history(runtime, open_ids, after=int(last)), False
    # once: every allocation above the highest live one (all of them when none is live), so
    # that the highest id is known and the next cycle reads by key
    live = live_allocations(runtime)
    top = max((a.id for a in live if a.id is not None), default=0)
    newer = allocation_history(runtime, after=top)
    return sorted([*live, *newer], key=lambda a: a.id or 0), True


def record_cycle(runtime: Runtime, report: CycleReport) -> None:
    """Checkpoint every open record, open the new ones, close the released ones."""
    store = writer(runtime)
    now = runtime.now().timestamp()
    gap = max_gap(runtime)
    sample = sample_of(runtime, report, now)
    opened = open_records(store.db)
    allocations, first = _allocations(runtime, store, sorted(opened))
    seen: dict[int, tuple[OpenRecord, float]] = {}
    top = int(store.meta(LAST_ID) or 0)
    with store.transaction() as db:
        for allocation in allocations:
            if allocation.id is None:
                continue
            top = max(top, allocation.id)
            released = _stamp(allocation.released_at)
            record = opened.get(allocation.id)
            if record is None:
                if first and released is not None:
                    continue
                record = insert_record(db, _new_record(runtime, allocation))
            record.container = allocation.container_name or allocation.container
            record.container_id = allocation.container
            end = max(record.checkpoint_at, min(released if released is not None else now, now))
            write_segments(db, record, segments(record, record.checkpoint_at, end, sample, gap))
            checkpoint(db, record, end, closed=released is not None)
            seen[allocation.id] = (record, end)
        for allocation_id, record in opened.items():
            if allocation_id not in seen:  # the allocation row is gone: end at the checkpoint
                checkpoint(db, record, record.checkpoint_at, closed=True)
        if not report.partial and report.gpus:
            _energy(runtime, db, report, seen, now, gap)
        store.set_meta(db, LAST_ID, str(top))
    _publish(runtime)


def _new_record(runtime: Runtime, allocation: Allocation) -> OpenRecord:
    started = allocation.allocated_at.timestamp()
    return OpenRecord(
        id=0,
        allocation_id=allocation.id or 0,
        user=allocation.user,
        group=group_of(runtime, allocation.user),
        container=allocation.container_name or allocation.container,
        container_id=allocation.container,
        slots=tuple(allocation.slot_uuids),
        weight=allocation.weight,
        started_at=started,
        checkpoint_at=started,
    )


def _energy(
    runtime: Runtime,
    db: sqlite3.Connection,
    report: CycleReport,
    seen: dict[int, tuple[OpenRecord, float]],
    now: float,
    gap: float,
) -> None:
    """Attribute each GPU's energy since the last full cycle, and store the counters."""
    previous = {
        row["gpu_uuid"]: Counter(row["joules"], row["at"])
        for row in db.execute("SELECT gpu_uuid, joules, at FROM gpu_counters")
    }
    hour = int(now // HOUR) * HOUR
    intensity: list[float | None] = []  # asked once, only when something is billed
    for gpu in report.gpus:
        got = delta(gpu, previous.get(gpu.uuid), now, gap)
        if gpu.energy_joules is not None:
            db.execute(
                "INSERT INTO gpu_counters (gpu_uuid, joules, at) VALUES (?, ?, ?) "
                "ON CONFLICT (gpu_uuid) DO UPDATE SET joules = excluded.joules, at = excluded.at",
                (gpu.uuid, gpu.energy_joules, now),
            )
        if got is None:
            continue
        joules, since = got
        span = now - since
        on_gpu = {slot.uuid for slot in gpu.slots}
        holdings = [
            Holding(aid, slot, (min(end, now) - max(record.started_at, since)) / span)
            for aid, (record, end) in seen.items()
            for slot in record.slots
            if slot in on_gpu and min(end, now) > max(record.started_at, since)
        ]
        billed, unattributed = attribute(gpu, joules, holdings)
        if unattributed > 0:
            db.execute(
                "INSERT INTO unattributed (gpu_uuid, hour, energy) VALUES (?, ?, ?) "
                "ON CONFLICT (gpu_uuid, hour) DO UPDATE SET energy = energy + excluded.energy",
                (gpu.uuid, hour, unattributed),
            )
        for aid, part in billed.items():
            if not intensity:
                intensity.append(carbon_intensity(runtime))
            record = seen[aid][0]
            add_energy(db, record, hour, part, co2_grams(part, intensity[0]))


def _optional(module: str, name: str) -> Any:
    """``module.name`` from a part of the plugin that may not be installed yet, or None."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def carbon_intensity(runtime: Runtime) -> float | None:
    """The grid's carbon intensity now (g/kWh) from ``ds01_accounting.carbon``; None when
    there is no provider or it cannot tell."""
    intensity_now = _optional("ds01_accounting.carbon", "intensity_now")
    if intensity_now is None:
        return None
    try:
        value = intensity_now(runtime)
    except Exception as exc:  # a provider's failure costs the CO2 figure, never the record
        log.warning("accounting: carbon intensity unknown: %s", exc)
        return None
    grams = getattr(value, "grams_per_kwh", None) if value is not None else None
    return float(grams) if grams is not None else None


def _publish(runtime: Runtime) -> None:
    """Hand the per-user lifetime totals to ``ds01_accounting.metrics_file`` (the exporter's
    source), when that part is installed."""
    publish = _optional("ds01_accounting.metrics_file", "publish")
    if publish is None:
        return
    from ds01_accounting.usage import lifetime_totals

    try:
        publish(runtime, lifetime_totals(runtime))
    except Exception as exc:
        log.warning("accounting: publishing the totals failed: %s", exc)
