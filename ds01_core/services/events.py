"""The audit log as a caller may see it: users their own events, admins everyone's."""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Iterator
from typing import Any

from ds01_core.domain.audit_log import matcher, parse_time
from ds01_core.services.errors import Invalid, Unavailable
from ds01_core.services.operations import Operation, Param, ServiceContext

#: Seconds between the empty lines a quiet follow sends, so that a caller who went away is
#: noticed (the write fails) and the follow ends.
HEARTBEAT = 5.0


def _time(name: str, value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise Invalid(f"{name}: {exc}") from None


def _filters(
    ctx: ServiceContext,
    user: str | None,
    type: str | None,
    container: str | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    """The filters to apply: a user who is not an admin sees only events about themselves."""
    if not ctx.caller.admin:
        user = ctx.target_user(user, "another user's events")
    return {
        "user": user,
        "type_prefix": type,
        "container": container,
        "since": _time("since", since),
        "until": _time("until", until),
    }


def query(
    ctx: ServiceContext,
    user: str | None = None,
    type: str | None = None,
    container: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """The last ``limit`` matching events, oldest first, and warnings about unreadable lines."""
    if limit < 1:
        raise Invalid(f"limit must be at least 1, got {limit}")
    warnings: list[str] = []
    try:
        records = ctx.runtime.events.query(
            **_filters(ctx, user, type, container, since, until),
            limit=limit,
            warn=warnings.append,
        )
    except OSError as exc:
        raise Unavailable(f"cannot read the audit log: {exc}") from None
    return {"events": records, "warnings": warnings[:20]}


def follow(
    ctx: ServiceContext,
    user: str | None = None,
    type: str | None = None,
    container: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Iterator[dict[str, Any] | None]:
    """Matching events as they are written; ``None`` every :data:`HEARTBEAT` seconds of quiet.

    The log is read on a thread of its own, so the stream can send heartbeats and stops the
    reader as soon as the caller goes away (the generator is closed). The filters (who may
    see what) are checked now, before the stream starts: a refusal is an error, not a 200.
    """
    match = matcher(**_filters(ctx, user, type, container, since, until))
    return _follow(ctx, match)


def _follow(ctx: ServiceContext, match: Any) -> Iterator[dict[str, Any] | None]:
    log = ctx.runtime.events
    stop = threading.Event()
    found: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=10_000)

    def read() -> None:
        try:
            for record in log.follow(match, stop=stop, warn=lambda _m: None):
                found.put(record)
        finally:
            found.put(None)  # the log's follow ended: so does this stream

    reader = threading.Thread(target=read, name="events-follow", daemon=True)
    reader.start()
    try:
        while True:
            try:
                record = found.get(timeout=HEARTBEAT)
            except queue.Empty:
                yield None
                continue
            if record is None:
                return
            yield record
    finally:
        stop.set()


_FILTERS = (
    Param("user"),
    Param("type"),
    Param("container"),
    Param("since"),
    Param("until"),
)

OPERATIONS = (
    Operation(
        "events.query",
        "GET",
        "/v1/events",
        query,
        (*_FILTERS, Param("limit", "int", default=50)),
        summary="The audit log: your events (admins: everyone's).",
    ),
    Operation(
        "events.follow",
        "GET",
        "/v1/events/follow",
        follow,
        _FILTERS,
        stream="jsonl",
        summary="Events as they are written.",
    ),
)
