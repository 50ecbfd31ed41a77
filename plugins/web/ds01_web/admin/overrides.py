"""Quota overrides in the admin panel, ``/admin/overrides``: the list (``admin.override.list``),
a form to add one (``admin.override.set``) and a button to end one (``admin.override.remove``).

The two POSTs are admin actions (:func:`ds01_web.site.action` with ``admin=True``): CSRF and
origin checked, audited as ``web.request``, and only for an admin who typed their password in
the last ``reauth_window`` (else off to ``/reauth`` first, and nothing is changed). The
operations record the change and write ``override.set`` / ``override.removed`` themselves.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ds01_core.api import ServiceError
from ds01_web.admin.common import admin_page, now_utc, sections, shown_time
from ds01_web.site import NO_STORE, Visitor, action, render

#: what the expiry field offers first: a week from now
DEFAULT_DAYS = 7
FIELDS = ("user", "key", "value", "reason", "expires")


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def _page(
    request: Request,
    visitor: Visitor,
    status: int = 200,
    error: str | None = None,
    given: dict[str, str] | None = None,
) -> Response:
    """The overrides page: the notice of what was just done, the form, the list."""
    query = request.query_params
    user = query.get("user") or None
    show_all = query.get("all") == "1"
    listed = await visitor.call("admin.override.list", user=user, all=show_all)
    own = await visitor.call("config.limits")
    default_expiry = (now_utc() + dt.timedelta(days=DEFAULT_DAYS)).strftime("%Y-%m-%dT%H:%M")
    values = {"expires": default_expiry, "key": "max_gpu_equivalents", **(given or {})}
    rows = [
        {
            **row,
            "shown_value": str(row["value"]),
            "until": shown_time(row["expires"]),
            "created": shown_time(row.get("created_at")),
        }
        for row in listed
    ]
    notice = None
    if query.get("added"):
        notice = f"Override {query['added']} added for {query.get('for', 'the user')}."
    elif query.get("removed"):
        notice = f"Override {query['removed']} ended."
    return render(
        request,
        "admin/overrides.html",
        visitor,
        status,
        sections=sections("/admin/overrides"),
        rows=rows,
        keys=list(own["limits"]),
        values=values,
        error=error,
        notice=notice,
        filter_user=user or "",
        show_all=show_all,
    )


@admin_page
async def overrides(request: Request, visitor: Visitor) -> Response:
    return await _page(request, visitor)


@action(admin=True)
async def add(request: Request, visitor: Visitor, form: FormData) -> Response:
    """Add an override from the form; a mistake shows the form again, filled in, with why."""
    given = {name: _text(form, name) for name in FIELDS}
    missing = [name for name in FIELDS if not given[name]]
    if missing:
        return await _page(
            request,
            visitor,
            400,
            f"fill in {', '.join(missing)}: an override needs a user, a limit, its value, "
            "a reason (kept in the audit log) and when it ends",
            given,
        )
    try:
        made: dict[str, Any] = await visitor.call(
            "admin.override.set",
            user=given["user"],
            assignments=[f"{given['key']}={given['value']}"],
            expires=given["expires"],
            reason=given["reason"],
        )
    except ServiceError as exc:
        return await _page(request, visitor, exc.status, exc.message, given)
    target = "/admin/overrides?" + urlencode(
        {"added": ", ".join(str(i) for i in made["ids"]), "for": made["user"]}
    )
    return RedirectResponse(target, 303, headers=NO_STORE)


@action(admin=True)
async def remove(request: Request, visitor: Visitor, form: FormData) -> Response:
    """End one override now (its row stays in the list of all, marked removed)."""
    number = _text(form, "id")
    if not number.isdigit():
        return await _page(request, visitor, 400, "choose an override to end (its ID is a number)")
    try:
        await visitor.call("admin.override.remove", ids=[number])
    except ServiceError as exc:
        return await _page(request, visitor, exc.status, f"override {number}: {exc.message}")
    return RedirectResponse(f"/admin/overrides?removed={number}", 303, headers=NO_STORE)


ROUTES = [
    Route("/admin/overrides", overrides, methods=["GET"]),
    Route("/admin/overrides", add, methods=["POST"]),
    Route("/admin/overrides/remove", remove, methods=["POST"]),
]
