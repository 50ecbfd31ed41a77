"""The audit log in the admin panel, ``/admin/audit``: ``events.query`` with its filters (user,
event type prefix, container, since, until), newest first, a page at a time.

A page is the last ``limit`` matching events; "Older events" asks for the same filters until
just before the oldest event shown, so paging back never repeats or skips an event.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ds01_core.api import ServiceError
from ds01_web.admin.common import admin_page, iso, moment, sections, shown_time
from ds01_web.site import Visitor, render

FILTERS = ("user", "type", "container", "since", "until")
LIMITS = (25, 50, 100, 200)
DEFAULT_LIMIT = 50
#: the most characters of an event's details shown in the table
DETAILS_SHOWN = 400


def _details(details: Any) -> str:
    text = json.dumps(details, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= DETAILS_SHOWN else text[: DETAILS_SHOWN - 1] + "…"


@admin_page
async def audit(request: Request, visitor: Visitor) -> Response:
    query = request.query_params
    filters = {name: query.get(name, "").strip() for name in FILTERS}
    try:
        limit = int(query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        limit = DEFAULT_LIMIT
    limit = limit if limit in LIMITS else DEFAULT_LIMIT
    error = None
    events: list[dict[str, Any]] = []
    warnings: list[str] = []
    try:
        answer = await visitor.call(
            "events.query", limit=limit, **{k: v for k, v in filters.items() if v}
        )
        events, warnings = answer["events"], answer.get("warnings", [])
    except ServiceError as exc:
        error = exc.message
    rows = [
        {
            "when": shown_time(e.get("timestamp")),
            "iso": iso(e.get("timestamp")),
            "type": e.get("event_type", "?"),
            "user": e.get("user") or "-",
            "source": e.get("source") or "-",
            "details": _details(e.get("details")),
        }
        for e in reversed(events)
    ]
    older = None
    oldest = moment(events[0].get("timestamp")) if events else None
    if len(events) == limit and oldest is not None:
        before = oldest - dt.timedelta(microseconds=1)
        kept = {k: v for k, v in filters.items() if v and k != "until"}
        older = "/admin/audit?" + urlencode({**kept, "until": iso(before), "limit": limit})
    newest = None
    if filters["until"]:
        kept = {k: v for k, v in filters.items() if v and k != "until"}
        newest = "/admin/audit?" + urlencode({**kept, "limit": limit})
    return render(
        request,
        "admin/audit.html",
        visitor,
        400 if error else 200,
        sections=sections("/admin/audit"),
        filters=filters,
        limit=limit,
        limits=LIMITS,
        rows=rows,
        warnings=warnings,
        error=error,
        older=older,
        newest=newest,
    )


ROUTES = [Route("/admin/audit", audit, methods=["GET"])]
