"""The unified inventory: its JSON form, the daemon's snapshot file, and what changed.

Root computes the inventory live; users read the snapshot the daemon writes after every cycle
(written to a temporary file and renamed, so a reader never sees half of one).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ds01_core.domain.model import Event, Workload, utc_text

SNAPSHOT_VERSION = 1


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return utc_text(moment)


def workload_json(workload: Workload) -> dict[str, Any]:
    """The documented JSON form of one workload (``ds01 workloads --json``)."""
    return {
        "kind": workload.kind,
        "id": workload.id,
        "name": workload.name,
        "origin": workload.origin,
        "owner": workload.owner,
        "owner_source": workload.owner_source,
        "status": workload.status,
        "gpu_slots": list(workload.gpu_slots),
        "unrestricted_gpu": workload.unrestricted_gpu,
        "pids": list(workload.pids),
        "created_at": _iso(workload.created_at),
        "started_at": _iso(workload.started_at),
        "finished_at": _iso(workload.finished_at),
        "image": workload.image,
        "cmdline": workload.cmdline,
        "flags": list(workload.flags),
        "idle_seconds": workload.idle_seconds,
        "last_active_signal": workload.last_active_signal,
    }


def _parse(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def workload_from_json(data: dict[str, Any]) -> Workload:
    return Workload(
        kind=data["kind"],
        id=data["id"],
        name=data["name"],
        origin=data["origin"],
        owner=data["owner"],
        owner_source=data["owner_source"],
        status=data["status"],
        gpu_slots=list(data.get("gpu_slots") or []),
        unrestricted_gpu=bool(data.get("unrestricted_gpu")),
        pids=list(data.get("pids") or []),
        created_at=_parse(data.get("created_at")),
        started_at=_parse(data.get("started_at")),
        finished_at=_parse(data.get("finished_at")),
        image=data.get("image"),
        cmdline=data.get("cmdline"),
        flags=list(data.get("flags") or []),
        idle_seconds=data.get("idle_seconds"),
        last_active_signal=data.get("last_active_signal"),
    )


def write_snapshot(path: Path, workloads: Sequence[Workload], taken_at: dt.datetime) -> None:
    """Atomically replace the snapshot file (readable by users: it is what they query)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "version": SNAPSHOT_VERSION,
        "taken_at": _iso(taken_at),
        "workloads": [workload_json(w) for w in workloads],
    }
    fd, tmp = tempfile.mkstemp(prefix=".inventory-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(body, handle, separators=(",", ":"))
        os.chmod(tmp, 0o600)  # root only: users ask the API, which applies privacy.*
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_snapshot(path: Path) -> tuple[dt.datetime, list[Workload]]:
    """The snapshot's time and workloads; FileNotFoundError when the daemon has written none."""
    data = json.loads(path.read_text())
    if data.get("version") != SNAPSHOT_VERSION:
        raise ValueError(f"{path}: unknown snapshot version {data.get('version')!r}")
    taken = _parse(data["taken_at"])
    assert taken is not None
    return taken, [workload_from_json(w) for w in data["workloads"]]


def _details(workload: Workload, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {
        "kind": workload.kind,
        "id": workload.id,
        "name": workload.name,
        "origin": workload.origin,
        "owner": workload.owner,
        "owner_source": workload.owner_source,
        "gpu_slots": list(workload.gpu_slots),
    }
    if workload.kind == "container":
        details["container"] = workload.name
        details["container_id"] = workload.id
    else:
        details["pid"] = workload.pids[0] if workload.pids else None
        details["cmdline"] = workload.cmdline
    details.update(extra)
    return details


def diff_events(before: Sequence[Workload], after: Sequence[Workload]) -> list[Event]:
    """The ``detection.*`` events that describe how ``before`` became ``after``."""
    old = {(w.kind, w.id): w for w in before}
    new = {(w.kind, w.id): w for w in after}
    events: list[Event] = []
    for key, workload in new.items():
        previous = old.get(key)
        user = workload.owner
        if workload.kind == "container":
            if previous is None:
                events.append(
                    Event("detection.container_discovered", user, "detection", _details(workload))
                )
            elif previous.status != workload.status:
                kind = (
                    "detection.container_exited"
                    if workload.status == "exited"
                    else "detection.container_status_changed"
                )
                events.append(
                    Event(
                        kind,
                        user,
                        "detection",
                        _details(workload, previous=previous.status, status=workload.status),
                    )
                )
        elif previous is None:
            events.append(
                Event(
                    "detection.host_gpu_process_discovered", user, "detection", _details(workload)
                )
            )
        unmanaged = "unmanaged_gpu" in workload.flags
        was_unmanaged = previous is not None and "unmanaged_gpu" in previous.flags
        if unmanaged and not was_unmanaged:
            events.append(
                Event(
                    "detection.unmanaged_gpu_workload",
                    user,
                    "detection",
                    _details(workload, unrestricted_gpu=workload.unrestricted_gpu),
                )
            )
    for key, workload in old.items():
        if key in new:
            continue
        if workload.kind == "process":
            events.append(
                Event(
                    "detection.host_gpu_process_exited",
                    workload.owner,
                    "detection",
                    _details(workload),
                )
            )
        elif workload.status != "exited":
            # removed without being seen stopped: it exited too
            events.append(
                Event(
                    "detection.container_exited",
                    workload.owner,
                    "detection",
                    _details(workload, previous=workload.status, status="removed"),
                )
            )
    return events
