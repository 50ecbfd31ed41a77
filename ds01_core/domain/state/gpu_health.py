"""The gpu_health table: each GPU's health as the daemon last concluded it, drained or not.

Written by the ``gpu-health`` step (:mod:`ds01_core.cycle.gpu_health`) in ``ds01d``; read by
allocation, which leaves a drained GPU's slots out (:func:`drained`), and by ``ds01 gpu
health``. One row per GPU index: the state, the reasons (JSON ``[{code, detail}]``), since
when, drained or not, the last readings (JSON) and the XIDs still within the window. The
table is made by the store's migration 5 (:mod:`ds01_core.domain.state.store`).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import attrs

from ds01_core.domain.gpu.health import GpuHealth, GpuTelemetry, HealthReason
from ds01_core.domain.gpu.health_rules import Known, SeenXid
from ds01_core.domain.model import GpuSlot, utc_text

_TELEMETRY_FIELDS = {f.name for f in attrs.fields(GpuTelemetry)}


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def telemetry_json(telemetry: GpuTelemetry) -> dict[str, Any]:
    """The readings as JSON (times as UTC text, throttle reasons as a list)."""
    data = attrs.asdict(telemetry)
    data["last_xid_at"] = utc_text(telemetry.last_xid_at) if telemetry.last_xid_at else None
    data["throttle_reasons"] = list(telemetry.throttle_reasons)
    return data


def telemetry_from(data: dict[str, Any]) -> GpuTelemetry:
    """The readings back from :func:`telemetry_json` (keys this version does not know: left out)."""
    known = {k: v for k, v in data.items() if k in _TELEMETRY_FIELDS}
    known["last_xid_at"] = _time(known.get("last_xid_at"))
    known["throttle_reasons"] = tuple(known.get("throttle_reasons") or ())
    return GpuTelemetry(**known)


def reasons_json(health: GpuHealth) -> list[dict[str, str]]:
    return [{"code": r.code, "detail": r.detail} for r in health.reasons]


@attrs.frozen
class Stored:
    """One row: the health, its XIDs in the window, and when the daemon last wrote it."""

    known: Known
    updated_at: dt.datetime


def load(db: sqlite3.Connection) -> dict[int, Stored]:
    """Every GPU's row, by index (empty until the daemon's first full cycle)."""
    found = {}
    for row in db.execute("SELECT * FROM gpu_health ORDER BY gpu_index"):
        telemetry = json.loads(row["telemetry"]) if row["telemetry"] else None
        health = GpuHealth(
            index=row["gpu_index"],
            uuid=row["uuid"],
            state=row["state"],
            reasons=tuple(HealthReason(r["code"], r["detail"]) for r in json.loads(row["reasons"])),
            since=_time(row["since"]),
            drained=bool(row["drained"]),
            telemetry=telemetry_from(telemetry) if telemetry is not None else None,
        )
        xids = tuple(
            SeenXid(int(x["code"]), _time(x["at"]) or dt.datetime.min.replace(tzinfo=dt.UTC))
            for x in json.loads(row["xids"])
        )
        updated = _time(row["updated_at"]) or dt.datetime.min.replace(tzinfo=dt.UTC)
        found[health.index] = Stored(Known(health, xids), updated)
    return found


def save(db: sqlite3.Connection, known: Known, now: dt.datetime) -> None:
    """Write one GPU's row (inside the caller's transaction)."""
    health = known.health
    db.execute(
        "INSERT OR REPLACE INTO gpu_health (gpu_index, uuid, state, reasons, since, drained, "
        "telemetry, xids, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            health.index,
            health.uuid,
            health.state,
            json.dumps(reasons_json(health)),
            utc_text(health.since) if health.since else None,
            int(health.drained),
            json.dumps(telemetry_json(health.telemetry)) if health.telemetry else None,
            json.dumps([{"code": x.code, "at": utc_text(x.at)} for x in known.xids]),
            utc_text(now),
        ),
    )


@attrs.frozen
class Drained:
    """A GPU that allocation leaves out, and why (for the refusal's words)."""

    index: int
    uuid: str
    state: str


def drained(db: sqlite3.Connection) -> list[Drained]:
    """The drained GPUs (inside the caller's transaction: allocation reads it under its lock)."""
    return [
        Drained(row["gpu_index"], row["uuid"], row["state"])
        for row in db.execute(
            "SELECT gpu_index, uuid, state FROM gpu_health WHERE drained = 1 ORDER BY gpu_index"
        )
    ]


def is_drained(slot: GpuSlot, out: Sequence[Drained]) -> bool:
    """The slot is on a drained GPU (the same GPU: its UUID, or its index where none is known)."""
    return any(slot.gpu_uuid == d.uuid if d.uuid else slot.gpu_index == d.index for d in out)


def drained_words(out: Sequence[Drained]) -> str:
    """``GPU 3 is drained (unhealthy), see `ds01 gpu health```: for a refusal."""
    listed = ", ".join(f"{d.index} ({d.state})" for d in out)
    verb = "is" if len(out) == 1 else "are"
    return f"GPU{'s' if len(out) > 1 else ''} {listed} {verb} drained, see `ds01 gpu health`"


def undrained(
    db: sqlite3.Connection, free: Sequence[GpuSlot]
) -> tuple[list[GpuSlot], list[Drained]]:
    """The free slots allocation may give (those on drained GPUs left out: a drained GPU takes
    no new work, what it holds stays), and the drained GPUs that had free slots (for a
    refusal's words)."""
    out = drained(db)
    kept = [s for s in free if not is_drained(s, out)]
    withheld = [d for d in out if any(is_drained(s, [d]) for s in free)]
    return kept, withheld


def drained_problem(db: sqlite3.Connection, slots: Sequence[GpuSlot]) -> str | None:
    """Why these exact slots (a stopped container's, started again) cannot be given again, or
    None: one of them is on a drained GPU."""
    out = [d for d in drained(db) if any(is_drained(s, [d]) for s in slots)]
    if not out:
        return None
    ids = ", ".join(s.slot_id for s in slots)
    return (
        f"{drained_words(out)}: this container's GPU slot(s) {ids} cannot be given again; "
        "recreate the container to get another GPU"
    )


__all__ = [
    "Drained",
    "Stored",
    "drained",
    "drained_problem",
    "drained_words",
    "is_drained",
    "load",
    "reasons_json",
    "save",
    "telemetry_from",
    "telemetry_json",
    "undrained",
]
