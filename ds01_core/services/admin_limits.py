"""Admin operations on users' limits: overrides, and exemptions from idle and runtime limits.

Each refuses a mistake before anything is recorded: an expiry already past, a user name that no
account source knows (unless ``allow_unknown_user``), a value the configuration would refuse.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ds01_core.cycle.pipeline import detect
from ds01_core.domain.config import converter
from ds01_core.domain.model import Event, utc_text
from ds01_core.domain.state.grants import active_grants, add_grant, revoke_grants
from ds01_core.domain.state.overrides import (
    OverrideError,
    add_overrides,
    check_expiry,
    list_overrides,
    parse_assignment,
    remove_overrides,
)
from ds01_core.domain.users import UnknownUserError, normalize_username, require_known_user
from ds01_core.services.errors import Invalid, NotFound
from ds01_core.services.operations import Operation, Param, ServiceContext


def _expiry(ctx: ServiceContext, text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"--expires: expected an ISO date and time, got {text!r}") from None
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    try:
        check_expiry(moment, ctx.runtime.now())
    except OverrideError as exc:
        raise Invalid(str(exc)) from None
    return moment


def _known(ctx: ServiceContext, user: str, allow_unknown: bool) -> str:
    try:
        return require_known_user(ctx.runtime, user, allow_unknown=allow_unknown)
    except UnknownUserError as exc:
        raise Invalid(str(exc)) from None


def override_set(
    ctx: ServiceContext,
    user: str,
    assignments: list[str],
    expires: str,
    reason: str,
    approved_by: str | None = None,
    allow_unknown_user: bool = False,
) -> dict[str, Any]:
    """Set limits for ``user`` until ``expires`` (``KEY=VALUE`` assignments)."""
    if not assignments:
        raise Invalid("give at least one KEY=VALUE")
    try:
        values = dict(parse_assignment(a) for a in assignments)
    except OverrideError as exc:
        raise Invalid(str(exc)) from None
    until = _expiry(ctx, expires)
    name = _known(ctx, user, allow_unknown_user)
    runtime = ctx.runtime
    approver = approved_by or ctx.caller.name
    try:
        with runtime.state.transaction() as db:
            ids = add_overrides(
                db,
                name,
                values,
                expires=until,
                reason=reason,
                approved_by=approver,
                now=runtime.now(),
            )
    except OverrideError as exc:
        raise Invalid(str(exc)) from None
    runtime.events.append(
        Event(
            "override.set",
            name,
            "admin",
            {
                "values": converter.unstructure(values),
                "expires": utc_text(until),
                "reason": reason,
                "approved_by": approver,
                "by": ctx.caller.name,
                "ids": ids,
            },
        )
    )
    return {"ids": ids, "user": name, "expires": until}


def override_list(ctx: ServiceContext, user: str | None = None, all: bool = False) -> Any:
    now = ctx.runtime.now()
    items = [
        o
        for o in list_overrides(
            ctx.runtime.state.db, user=normalize_username(user) if user else None
        )
        if all or o.active(now)
    ]
    return [
        {
            **converter.unstructure(o),
            "value": converter.unstructure(o.value),
            "shown": f"{o.key}={o.value}",
            "active": o.active(now),
            "status": "removed" if o.removed_at else ("active" if o.active(now) else "expired"),
        }
        for o in items
    ]


def override_remove(
    ctx: ServiceContext,
    ids: list[str] | None = None,
    user: str | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    numbers = _ids(ids)
    if not numbers and not user:
        raise Invalid("give override IDs or --user")
    runtime = ctx.runtime
    with runtime.state.transaction() as db:
        removed = remove_overrides(
            db,
            ids=numbers or None,
            user=normalize_username(user) if user else None,
            key=key,
            now=runtime.now(),
        )
    if not removed:
        raise NotFound("no matching active override")
    for o in removed:
        runtime.events.append(
            Event(
                "override.removed",
                o.user,
                "admin",
                {"id": o.id, "key": o.key, "by": ctx.caller.name},
            )
        )
    return {"removed": [o.id for o in removed]}


def _ids(ids: list[str] | None) -> list[int]:
    try:
        return [int(i) for i in ids or []]
    except ValueError:
        raise Invalid(f"IDs are numbers, got {ids!r}") from None


def exempt_set(
    ctx: ServiceContext,
    expires: str,
    reason: str,
    user: str | None = None,
    container: str | None = None,
    idle: bool = True,
    runtime_cap: bool = False,
    allow_unknown_user: bool = False,
) -> dict[str, Any]:
    """Exempt a user's containers, or one container, from the idle timeout and/or the
    maximum runtime until ``expires``."""
    if bool(user) == bool(container):
        raise Invalid("give exactly one of --user and --container")
    if not (idle or runtime_cap):
        raise Invalid("exempt from something: --idle and/or --runtime")
    if not reason.strip():
        raise Invalid("--reason must say why (it is kept in the audit log)")
    until = _expiry(ctx, expires)
    runtime = ctx.runtime
    if container:
        matches = [
            w
            for w in detect(runtime)
            if w.kind == "container" and (w.name == container or w.id.startswith(container))
        ]
        if len(matches) != 1:
            raise NotFound(f"no single container {container!r}")
        target, owner = f"container:{matches[0].id}", matches[0].owner
    else:
        owner = _known(ctx, user or "", allow_unknown_user)
        target = f"user:{owner}"
    kinds = [k for k, on in (("exempt_idle", idle), ("exempt_runtime", runtime_cap)) if on]
    now = runtime.now()
    with runtime.state.transaction() as db:
        ids = [
            add_grant(db, kind, owner, target, until, reason, ctx.caller.name, now)
            for kind in kinds
        ]
    runtime.events.append(
        Event(
            "lifecycle.exempt",
            owner,
            "admin",
            {
                "target": target,
                "kinds": kinds,
                "expires": utc_text(until),
                "reason": reason,
                "by": ctx.caller.name,
                "ids": ids,
            },
        )
    )
    return {"ids": ids, "target": target, "expires": until}


def exempt_list(ctx: ServiceContext) -> Any:
    return active_grants(ctx.runtime.state.db, ctx.runtime.now())


def exempt_remove(ctx: ServiceContext, ids: list[str]) -> dict[str, Any]:
    numbers = _ids(ids)
    if not numbers:
        raise Invalid("give the IDs of the exemptions to end (ds01 admin exempt list)")
    runtime = ctx.runtime
    with runtime.state.transaction() as db:
        count = revoke_grants(db, numbers, runtime.now())
    if not count:
        raise NotFound("no matching active exemption")
    runtime.events.append(
        Event("lifecycle.exempt_removed", None, "admin", {"ids": numbers, "by": ctx.caller.name})
    )
    return {"removed": count}


OPERATIONS = (
    Operation(
        "admin.override.set",
        "POST",
        "/v1/admin/overrides",
        override_set,
        (
            Param("user", required=True),
            Param("assignments", "list", required=True),
            Param("expires", required=True),
            Param("reason", required=True),
            Param("approved_by"),
            Param("allow_unknown_user", "bool", default=False),
        ),
        admin=True,
    ),
    Operation(
        "admin.override.list",
        "GET",
        "/v1/admin/overrides",
        override_list,
        (Param("user"), Param("all", "bool", default=False)),
        admin=True,
    ),
    Operation(
        "admin.override.remove",
        "DELETE",
        "/v1/admin/overrides",
        override_remove,
        (Param("ids", "list"), Param("user"), Param("key")),
        admin=True,
    ),
    Operation(
        "admin.exempt.set",
        "POST",
        "/v1/admin/exemptions",
        exempt_set,
        (
            Param("expires", required=True),
            Param("reason", required=True),
            Param("user"),
            Param("container"),
            Param("idle", "bool", default=True),
            Param("runtime_cap", "bool", default=False),
            Param("allow_unknown_user", "bool", default=False),
        ),
        admin=True,
    ),
    Operation("admin.exempt.list", "GET", "/v1/admin/exemptions", exempt_list, admin=True),
    Operation(
        "admin.exempt.remove",
        "DELETE",
        "/v1/admin/exemptions",
        exempt_remove,
        (Param("ids", "list", required=True),),
        admin=True,
    ),
)
