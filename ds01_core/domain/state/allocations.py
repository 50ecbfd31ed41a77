"""GPU allocation in the state store: decided and recorded in one transaction, always released.

Why it is race-free: :meth:`Allocations.allocate` takes SQLite's write lock first
(``BEGIN IMMEDIATE``), then reads who holds what, asks the ``allocate_gpu`` plugin, checks the
answer and records it, all before the lock is released. Two requests from any number of
processes are therefore serialised, and a partial unique index on live slots makes a double
booking impossible even for a buggy allocator.

Why it is crash-safe: an allocation exists before its container does (the slot UUIDs go into
the create body). Until it is *bound* to a container id, the allocating process vouches for it
(its PID and start time are recorded); the cycle's reconcile
(:mod:`ds01_core.cycle.allocation_reconcile`) releases it once that process is gone without
having created the container. Bound allocations are checked against the containers Docker
really has, every cycle.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.domain.gpu.access import GpuUnavailableError
from ds01_core.domain.model import (
    Allocation,
    Event,
    GpuRequest,
    GpuSlot,
    utc_text,
)
from ds01_core.domain.state.allocation_decision import decide
from ds01_core.domain.state.allocation_rules import check_decision, quota_problem
from ds01_core.domain.state.gpu_health import drained_problem, drained_words, undrained
from ds01_core.domain.state.gpu_queue import wake_head
from ds01_core.domain.state.owner_process import process_alive, process_start_ticks
from ds01_core.domain.user_limits import effective_limits

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

STOPPED_STATES = ("exited", "dead", "created")


class AllocationRefused(Exception):
    """The request was refused; the message says by which limit and what is in use."""


@attrs.frozen
class Granted:
    allocation: Allocation
    slots: tuple[GpuSlot, ...]
    warning: str | None = None


def _parse(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


SLOT_CACHE_SECONDS = 5.0


def inventory_slots(runtime: Runtime) -> list[GpuSlot]:
    """The GPU slots, re-read from the driver at most every few seconds.

    Allocation needs the slots' identity and size, which change only when an admin
    re-partitions MIG; reading every GPU's metrics for each request would dominate its cost.
    The records, not this list, are what prevent double booking.
    """
    provider = runtime.gpu  # asked every time: no slot is offered while NVML does not answer
    cache: dict[str, Any] = runtime.memo("allocation-slots", lambda: {"at": -1e9, "slots": []})
    now = time.monotonic()
    if now - cache["at"] > SLOT_CACHE_SECONDS:
        cache["slots"], cache["at"] = provider.slots(), now
    return cache["slots"]


def _slots_or_refuse(runtime: Runtime) -> list[GpuSlot]:
    """The slots to allocate from; refused, saying why, while the GPUs are unavailable."""
    try:
        return inventory_slots(runtime)
    except GpuUnavailableError as exc:
        raise AllocationRefused(str(exc)) from None


class Allocations:
    """The allocation records of one state store, with the runtime's GPUs and plugins."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.state = runtime.state

    # -- reading ------------------------------------------------------------------------------

    @staticmethod
    def _rows_to_allocations(
        db: sqlite3.Connection, rows: Iterable[sqlite3.Row]
    ) -> list[Allocation]:
        rows = list(rows)
        slots: dict[int, list[str]] = {row["id"]: [] for row in rows}
        if slots:
            marks = ",".join("?" * len(slots))
            for slot in db.execute(
                f"SELECT allocation_id, slot_uuid FROM allocation_slots "
                f"WHERE allocation_id IN ({marks}) ORDER BY rowid",
                tuple(slots),
            ):
                slots[slot["allocation_id"]].append(slot["slot_uuid"])
        return [
            Allocation(
                id=row["id"],
                user=row["user"],
                container=row["container"],
                slot_uuids=slots[row["id"]],
                weight=row["weight"],
                allocated_at=_parse(row["allocated_at"]),  # type: ignore[arg-type]
                released_at=_parse(row["released_at"]),
                release_reason=row["release_reason"],
                container_name=row["container_name"],
                bound=bool(row["bound"]),
                stopped_at=_parse(row["stopped_at"]),
            )
            for row in rows
        ]

    def live(
        self, db: sqlite3.Connection | None = None, user: str | None = None
    ) -> list[Allocation]:
        """Allocations not released (held-after-stop ones included)."""
        db = db or self.state.db
        query = "SELECT * FROM allocations WHERE released_at IS NULL"
        args: tuple[Any, ...] = ()
        if user is not None:
            query += " AND user = ?"
            args = (user,)
        return self._rows_to_allocations(db, db.execute(query + " ORDER BY id", args))

    def for_container(self, container: str) -> list[Allocation]:
        return [a for a in self.live() if a.container == container or a.container_name == container]

    # -- allocating ---------------------------------------------------------------------------

    def allocate(self, request: GpuRequest, *, ticket: int | None = None) -> Granted:
        """Decide and record in one transaction; raise :class:`AllocationRefused` otherwise.

        :param ticket: the caller's place in the wait queue. While anyone waits, only the head
            of the queue is served, so a newcomer never overtakes a waiter.
        """
        runtime = self.runtime
        all_slots = _slots_or_refuse(runtime)
        by_uuid = {s.uuid: s for s in all_slots}
        now = runtime.now()
        decision_warning = None
        with self.state.transaction() as db:
            held_uuids = {
                row[0]
                for row in db.execute("SELECT slot_uuid FROM allocation_slots WHERE live = 1")
            }
            free, out = undrained(db, [s for s in all_slots if s.uuid not in held_uuids])
            mine = self.live(db, user=request.user)
            limits = effective_limits(runtime, request.user, db=db, now=now)
            decision, free, withheld = decide(
                runtime, db, request, ticket, all_slots, free, mine, limits, now
            )
            mode = runtime.config.enforcement.mode
            refusal = check_decision(decision, free, mine, limits, mode)
            if refusal is not None and out:
                refusal += f"; {drained_words(out)}"
            if refusal is not None and withheld:
                refusal += f"; {withheld}"
            if refusal is None:
                assert decision is not None
                decision_warning = decision.warning
                chosen = [by_uuid[s.uuid] for s in decision.slots]
                weight = sum(s.weight for s in chosen)
                cursor = db.execute(
                    "INSERT INTO allocations (user, container, container_name, weight, "
                    "allocated_at, bound, owner_pid, owner_pid_start, request) "
                    "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
                    (
                        request.user,
                        request.container,
                        request.container,
                        weight,
                        utc_text(now),
                        os.getpid(),
                        process_start_ticks(os.getpid()),
                        json.dumps(attrs.asdict(request)),
                    ),
                )
                allocation_id = cursor.lastrowid
                db.executemany(
                    "INSERT INTO allocation_slots (allocation_id, slot_uuid) VALUES (?, ?)",
                    [(allocation_id, s.uuid) for s in chosen],
                )
        if refusal is not None and ticket is not None:
            raise AllocationRefused(refusal)  # a waiter's retries are not each an event
        if refusal is not None:
            runtime.events.append(
                Event(
                    "gpu.rejected",
                    request.user,
                    "allocation",
                    {
                        "container": request.container,
                        "request": attrs.asdict(request),
                        "reason": refusal,
                    },
                )
            )
            raise AllocationRefused(refusal)
        allocation = Allocation(
            allocation_id,
            request.user,
            request.container,
            [s.uuid for s in chosen],
            weight,
            now,
            container_name=request.container,
            bound=False,
        )
        details = {
            "container": request.container,
            "slots": [s.slot_id for s in chosen],
            "uuids": [s.uuid for s in chosen],
            "profiles": [s.profile or "full" for s in chosen],
            "weight": round(weight, 4),
            "allocation_id": allocation_id,
        }
        if decision_warning:
            details["warning"] = decision_warning
        runtime.events.append(Event("gpu.allocated", request.user, "allocation", details))
        return Granted(allocation, tuple(chosen), decision_warning)

    def reserve(self, user: str, container_id: str, name: str, uuids: Sequence[str]) -> Allocation:
        """Record that an existing container holds exactly ``uuids`` again (starting after its
        hold ran out): only if they all exist and are free, and within the GPU quota by the
        same rule as a new allocation (:func:`quota_problem`; in ``soft`` mode over quota is
        granted with a warning in the event)."""
        now = self.runtime.now()
        slots = {s.uuid: s for s in _slots_or_refuse(self.runtime)}
        missing = [u for u in uuids if u not in slots]
        if missing:
            raise AllocationRefused(f"GPU slot(s) {', '.join(missing)} no longer exist")
        ids = ", ".join(slots[u].slot_id for u in uuids)
        warning = None
        with self.state.transaction() as db:
            live = self.live(db)
            if problem := drained_problem(db, [slots[u] for u in uuids]):
                raise AllocationRefused(problem)
            holders = [a for a in live if set(a.slot_uuids) & set(uuids)]
            if holders:
                theirs = [a for a in holders if a.user != user]
                whose = (
                    "another user's container"
                    if theirs
                    else ", ".join(sorted({a.container_name or a.container[:12] for a in holders}))
                )
                raise AllocationRefused(f"GPU slot(s) {ids} are now allocated to {whose}")
            weight = sum(slots[u].weight for u in uuids)
            limits = effective_limits(self.runtime, user, db=db, now=now)
            problem = quota_problem(
                limits, [a for a in live if a.user == user], weight, "this container needs"
            )
            if problem and self.runtime.config.enforcement.mode == "hard":
                raise AllocationRefused(problem)
            warning = problem
            allocation_id = self.insert_bound(db, user, container_id, name, uuids, weight, now)
        details: dict[str, Any] = {
            "container": name,
            "container_id": container_id,
            "slots": [slots[u].slot_id for u in uuids],
            "uuids": list(uuids),
            "weight": round(weight, 4),
            "allocation_id": allocation_id,
            "reason": "started again after its hold expired",
        }
        if warning:
            details["warning"] = warning
        self.runtime.events.append(Event("gpu.allocated", user, "allocation", details))
        return Allocation(
            allocation_id,
            user,
            container_id,
            list(uuids),
            weight,
            now,
            container_name=name,
            bound=True,
        )

    @staticmethod
    def insert_bound(
        db: sqlite3.Connection,
        user: str,
        container_id: str,
        name: str,
        uuids: Sequence[str],
        weight: float,
        now: dt.datetime,
    ) -> int:
        """Record, inside the caller's transaction, that an existing container holds ``uuids``
        (re-allocated on start, or adopted); returns the allocation's id."""
        cursor = db.execute(
            "INSERT INTO allocations (user, container, container_name, weight, "
            "allocated_at, bound) VALUES (?, ?, ?, ?, ?, 1)",
            (user, container_id, name, weight, utc_text(now)),
        )
        allocation_id = int(cursor.lastrowid or 0)
        db.executemany(
            "INSERT INTO allocation_slots (allocation_id, slot_uuid) VALUES (?, ?)",
            [(allocation_id, u) for u in uuids],
        )
        return allocation_id

    # -- binding, stopping, releasing ----------------------------------------------------------

    def bind(self, allocation_id: int, container_id: str) -> None:
        """The container exists: from now on Docker, not the allocating process, vouches."""
        with self.state.transaction() as db:
            db.execute(
                "UPDATE allocations SET container = ?, bound = 1, owner_pid = NULL "
                "WHERE id = ? AND released_at IS NULL",
                (container_id, allocation_id),
            )

    def release(self, allocation_ids: Sequence[int], reason: str) -> list[Allocation]:
        """Release allocations (idempotent: already released ones are skipped)."""
        now = self.runtime.now()
        with self.state.transaction() as db:
            rows = [
                row
                for aid in allocation_ids
                for row in db.execute(
                    "SELECT * FROM allocations WHERE id = ? AND released_at IS NULL", (aid,)
                )
            ]
            released = self._rows_to_allocations(db, rows)
            for allocation in released:
                db.execute(
                    "UPDATE allocations SET released_at = ?, release_reason = ? WHERE id = ?",
                    (utc_text(now), reason, allocation.id),
                )
                db.execute(
                    "UPDATE allocation_slots SET live = 0 WHERE allocation_id = ?",
                    (allocation.id,),
                )
        if released:
            wake_head(self.runtime)
        for allocation in released:
            self.runtime.events.append(
                Event(
                    "gpu.released",
                    allocation.user,
                    "allocation",
                    {
                        "container": allocation.container_name or allocation.container,
                        "container_id": allocation.container if allocation.bound else None,
                        "uuids": allocation.slot_uuids,
                        "weight": round(allocation.weight, 4),
                        "reason": reason,
                        "allocation_id": allocation.id,
                    },
                )
            )
        return released

    def release_container(self, container_id: str, reason: str) -> list[Allocation]:
        ids = [a.id for a in self.for_container(container_id) if a.id is not None]
        return self.release(ids, reason)

    # -- what the reconcile step reads and changes (ds01_core.cycle.allocation_reconcile) -------

    def allocating_process_alive(self, allocation_id: int) -> bool:
        """An unbound allocation's maker still runs (so the container may yet be created)."""
        row = self.state.db.execute(
            "SELECT owner_pid, owner_pid_start FROM allocations WHERE id = ?", (allocation_id,)
        ).fetchone()
        return row is not None and process_alive(row["owner_pid"], row["owner_pid_start"])

    def set_stopped(self, allocation_id: int, moment: dt.datetime | None) -> None:
        """Start (a time) or end (None) the hold after stop of a bound allocation."""
        with self.state.transaction() as db:
            db.execute(
                "UPDATE allocations SET stopped_at = ? WHERE id = ?",
                (utc_text(moment) if moment else None, allocation_id),
            )
