"""What the admin pages share: the admins-only rule for GET pages, and how times read.

:func:`admin_page` is :func:`ds01_web.site.page` for admins: anyone else signed in gets a 403
page (an htmx poll, the fragment saying it) and an ``access.denied`` event, before any
operation runs. The operations refuse non-admins too (they are ``admin=True``); this is the
page's own first line, so a refusal says what happened in the panel's words.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ds01_core.api import parse_time
from ds01_web.errors import WebError
from ds01_web.site import PageHandler, Visitor, address_of, error_page, page, site_of

#: how often the panel's live parts are fetched again (seconds; the issue asks 10 to 30)
POLL_SECONDS = 20

#: the admin pages, for their sub-navigation
SECTIONS = (
    ("/admin", "Overview"),
    ("/admin/users", "Users"),
    ("/admin/overrides", "Overrides"),
    ("/admin/audit", "Audit log"),
)


class NotAdmin(WebError):
    """A signed-in user who is not in the admin group asked for an admin page."""

    def __init__(self, user: str):
        super().__init__(
            "forbidden",
            f"the admin panel is for ds01 admins only; {user} is not in the admin group. "
            "If you should be, ask an admin to add you; your own pages are on the dashboard.",
        )


def admin_page(handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    """A GET page or fragment for admins only; others get a 403 page and an audit event."""

    @functools.wraps(handler)
    async def serve(request: Request, visitor: Visitor) -> Response:
        if not visitor.is_admin:
            site_of(request).event(
                "access.denied",
                visitor.caller.name,
                {
                    "endpoint": f"{request.method} {request.url.path}",
                    "address": address_of(request),
                    "reason": "not an admin",
                },
            )
            return error_page(request, visitor, NotAdmin(visitor.caller.name))
        return await handler(request, visitor)

    return page(serve)


def sections(current: str) -> list[dict[str, Any]]:
    """The admin sub-navigation, the current page marked."""
    return [{"url": u, "label": label, "current": u == current} for u, label in SECTIONS]


def moment(value: Any) -> dt.datetime | None:
    """A time from an operation's answer (a datetime, or a ``…Z`` text) as an aware datetime;
    None for None or an unreadable one."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not value:
        return None
    try:
        return parse_time(str(value))
    except ValueError:
        return None


def iso(value: Any) -> str:
    """A time for ``<time datetime=…>`` (UTC, ISO 8601); empty for none."""
    found = moment(value)
    return found.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if found else ""


def shown_time(text: Any) -> str:
    """A timestamp as people read it here: ``2026-12-01 10:04 UTC``; ``-`` for none."""
    found = moment(text)
    return found.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if found else "-"


def age(text: Any, now: dt.datetime) -> str:
    """How long ago ``text`` was, in words (``3 h 05 min``, ``2 d 4 h``, ``40 s``)."""
    found = moment(text)
    if found is None:
        return "-"
    seconds = max(0, int((now - found).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


__all__ = [
    "POLL_SECONDS",
    "NotAdmin",
    "admin_page",
    "age",
    "iso",
    "moment",
    "now_utc",
    "sections",
    "shown_time",
]
