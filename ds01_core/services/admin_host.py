"""Admin operations on the host: bare-metal GPU grants, legacy label migration, the doctor."""

from __future__ import annotations

from typing import Any

from ds01_core.services.bare_metal_grants import (
    BareMetalError,
    grant,
    list_grants,
    members_without_grant,
    revoke,
)
from ds01_core.services.errors import Conflict, Invalid
from ds01_core.services.label_migration import migrate
from ds01_core.services.operations import Operation, Param, ServiceContext


def bare_metal_grant(
    ctx: ServiceContext, user: str, seconds: float | None = None, reason: str = ""
) -> dict[str, Any]:
    """Let ``user`` use the GPUs outside containers for a while (group membership + grant)."""
    if seconds is not None and seconds <= 0:
        raise Invalid("the duration must be positive")
    try:
        given = grant(ctx.runtime, user, seconds, reason, ctx.caller.name)
    except BareMetalError as exc:
        raise Conflict(str(exc)) from None
    return {**given.to_json(), "group": ctx.runtime.config.bare_metal.group}


def bare_metal_revoke(ctx: ServiceContext, user: str) -> dict[str, Any]:
    try:
        done = revoke(ctx.runtime, user, ctx.caller.name)
    except BareMetalError as exc:
        raise Conflict(str(exc)) from None
    return {
        "user": done.user,
        "group": done.group,
        "grants": done.grants,
        "membership_removed": done.membership_removed,
    }


def bare_metal_list(ctx: ServiceContext) -> dict[str, Any]:
    runtime = ctx.runtime
    return {
        "group": runtime.config.bare_metal.group,
        "grants": [g.to_json() for g in list_grants(runtime)],
        "members_without_grant": members_without_grant(runtime),
    }


def labels_migrate(
    ctx: ServiceContext, dry_run: bool = False, recreate_stopped: bool = False
) -> dict[str, Any]:
    """Report (``dry_run``) or record every legacy ``aime.mlc.*`` container's ``ds01.*``
    labels; admins only, dry run included: it lists every user's containers."""
    found = migrate(ctx.runtime, dry_run=dry_run, recreate_stopped=recreate_stopped)
    return {"dry_run": dry_run, "containers": [c.to_json() for c in found]}


def doctor(ctx: ServiceContext) -> dict[str, Any]:
    """What still lets a non-admin reach the real engine or the GPUs, as seen by the service."""
    # lazy: the doctor's nine modules (~7 ms) load for an admin's check, not for every client
    from ds01_core.services import doctor as checks

    findings = checks.run_doctor(ctx.runtime, checks.DEFAULT_HOST)
    problems = [f for f in findings if not f.ok]
    return {
        "ok": not problems,
        "problems": len(problems),
        "findings": [f.to_json() for f in findings],
    }


OPERATIONS = (
    Operation(
        "admin.bare_metal.grant",
        "POST",
        "/v1/admin/bare-metal/grants",
        bare_metal_grant,
        (Param("user", required=True), Param("seconds", "float"), Param("reason", default="")),
        admin=True,
    ),
    Operation(
        "admin.bare_metal.revoke",
        "DELETE",
        "/v1/admin/bare-metal/grants/{user}",
        bare_metal_revoke,
        (Param("user", required=True),),
        admin=True,
    ),
    Operation(
        "admin.bare_metal.list",
        "GET",
        "/v1/admin/bare-metal/grants",
        bare_metal_list,
        admin=True,
    ),
    Operation(
        "admin.labels.migrate",
        "POST",
        "/v1/admin/labels/migrate",
        labels_migrate,
        (Param("dry_run", "bool", default=False), Param("recreate_stopped", "bool", default=False)),
        admin=True,
    ),
    Operation("admin.doctor", "GET", "/v1/admin/doctor", doctor, admin=True),
)
