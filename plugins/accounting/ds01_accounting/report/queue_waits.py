"""How long requests waited in the GPU queue, from the audit log alone.

The core writes ``gpu.queued`` (user, ``details.container``) when a request joins the wait
queue, and ``gpu.allocated`` (same user and container) when it is served; a waiter's retries
and a waiter that gives up write nothing. So a wait is the time from a ``gpu.queued`` to the
next ``gpu.allocated`` of the same user and container; a request queued again before it was
served (or never served at all) counts as not served.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

QUEUED = "gpu.queued"
SERVED = "gpu.allocated"


@attrs.frozen
class QueueWaits:
    """Requests that joined the queue inside the window, and how long the served ones waited."""

    requests: int = 0
    served: int = 0
    not_served: int = 0
    median_seconds: float | None = None
    max_seconds: float | None = None
    #: when the longest wait began, and whose it was
    max_user: str | None = None
    max_queued_at: dt.datetime | None = None


def _time(record: Mapping[str, Any]) -> dt.datetime:
    moment = dt.datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _key(record: Mapping[str, Any]) -> tuple[str, str] | None:
    details = record.get("details")
    container = details.get("container") if isinstance(details, dict) else None
    user = record.get("user")
    if not isinstance(user, str) or not isinstance(container, str):
        return None
    return user, container


def queue_waits(
    records: Iterable[Mapping[str, Any]], since: dt.datetime, until: dt.datetime
) -> QueueWaits:
    """Waits of the requests queued in ``[since, until)``; ``records`` oldest first, from
    ``since`` on (a request served after ``until`` still has its wait counted)."""
    pending: dict[tuple[str, str], dt.datetime] = {}
    waits: list[tuple[float, str, dt.datetime]] = []
    requests = unserved = 0
    for record in records:
        kind = record.get("event_type")
        if kind not in (QUEUED, SERVED):
            continue
        key = _key(record)
        if key is None:
            continue
        moment = _time(record)
        if kind == QUEUED:
            if not since <= moment < until:
                continue
            requests += 1
            if key in pending:  # queued again: the earlier request gave up
                unserved += 1
            pending[key] = moment
        elif key in pending:
            queued_at = pending.pop(key)
            waits.append(((moment - queued_at).total_seconds(), key[0], queued_at))
    unserved += len(pending)
    if not waits:
        return QueueWaits(requests, 0, unserved)
    longest = max(waits, key=lambda w: w[0])
    return QueueWaits(
        requests=requests,
        served=len(waits),
        not_served=unserved,
        median_seconds=statistics.median(w[0] for w in waits),
        max_seconds=longest[0],
        max_user=longest[1],
        max_queued_at=longest[2],
    )
