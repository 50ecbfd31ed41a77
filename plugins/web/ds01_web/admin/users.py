"""The admin panel's users, ``/admin/users`` (``admin.users``), and one user's effective
limits with where each comes from, ``/admin/users/{user}`` (``config.limits`` for them)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ds01_core.api import normalize_username
from ds01_web.admin.common import admin_page, age, now_utc, sections, shown_time
from ds01_web.site import Visitor, render


def shown(value: Any) -> str:
    """A limit's value as the file writes it (``2h``, ``never``, ``16.0G``); ``-`` for unset."""
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and type(value) is float:
        return str(int(value))
    return str(value)


@admin_page
async def users(request: Request, visitor: Visitor) -> Response:
    answer = await visitor.call("admin.users")
    now = now_utc()
    rows = [
        {
            **row,
            "limits": {key: shown(value) for key, value in row["limits"].items()},
            "active": shown_time(row["last_activity"]),
            "active_ago": age(row["last_activity"], now) if row["last_activity"] else None,
        }
        for row in answer["users"]
    ]
    return render(
        request,
        "admin/users.html",
        visitor,
        sections=sections("/admin/users"),
        rows=rows,
        warnings=answer.get("warnings", []),
    )


@admin_page
async def user_limits(request: Request, visitor: Visitor) -> Response:
    name = normalize_username(request.path_params["user"])
    data = await visitor.call("config.limits", user=name)
    limits = [
        {"key": key, "value": shown(entry["value"]), "source": entry["source"]}
        for key, entry in data["limits"].items()
    ]
    return render(
        request,
        "admin/user_limits.html",
        visitor,
        sections=sections("/admin/users"),
        data=data,
        limits=limits,
    )


ROUTES = [
    Route("/admin/users", users, methods=["GET"]),
    Route("/admin/users/{user}", user_limits, methods=["GET"]),
]
