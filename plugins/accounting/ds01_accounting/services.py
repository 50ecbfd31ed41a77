"""The ``accounting.usage`` operation: GPU usage sums, and who may see whose.

The rule lives here, not in the CLI: a plain user sees their own usage only (``--user`` of
another, ``--group`` and ``--all`` are refused as Forbidden); admins see anyone's. The CLI (in
process for root, through ``ds01-api`` for everyone else) only renders what this returns.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ds01_accounting.by_container import per_container
from ds01_accounting.config import AccountingConfig
from ds01_accounting.periods import PERIODS, window
from ds01_accounting.sums import BY, aggregate
from ds01_core.api import (
    Forbidden,
    Invalid,
    Operation,
    Param,
    ServiceContext,
    Unavailable,
    normalize_username,
    utc_text,
)


def _config(ctx: ServiceContext) -> AccountingConfig:
    cfg = ctx.runtime.plugin_config("accounting")
    return cfg if isinstance(cfg, AccountingConfig) else AccountingConfig()


def _scope(
    ctx: ServiceContext, user: str | None, group: str | None, everyone: bool
) -> tuple[list[str] | None, list[str] | None, str]:
    """``(users, groups, what)``: whose rows the caller asked for and may see."""
    if sum(bool(x) for x in (user, group, everyone)) > 1:
        raise Invalid("give at most one of --user, --group and --all")
    admin = ctx.caller.admin
    if (group or everyone) and not admin:
        what = f"group {group}'s usage" if group else "everyone's usage"
        raise Forbidden(
            f"only admins may see {what}; you are {ctx.caller.name} and see your own "
            "(ds01 usage without --group/--all)"
        )
    if everyone:
        return None, None, "all users"
    if group:
        return None, [group], f"group {group}"
    name = normalize_username(user) if user else ctx.caller.name
    if name != ctx.caller.name and not admin:
        raise Forbidden(
            f"only admins may see another user's usage; you are {ctx.caller.name} "
            "(ds01 usage without --user shows yours)"
        )
    return [name], None, f"user {name}"


def usage(
    ctx: ServiceContext,
    user: str | None = None,
    group: str | None = None,
    all: bool = False,
    since: str | None = None,
    until: str | None = None,
    period: str | None = None,
    by: str | None = None,
) -> dict[str, Any]:
    """GPU-hours, efficiency, idle GPU-hours, energy and CO2 in a window, summed ``by`` user
    (the default), group, container, day, week or month, with the total."""
    if period is not None and period not in PERIODS:
        raise Invalid(f"--period: expected one of {', '.join(PERIODS)}, got {period!r}")
    by = by or "user"
    if by not in BY:
        raise Invalid(f"--by: expected one of {', '.join(BY)}, got {by!r}")
    users, groups, what = _scope(ctx, user, group, all)
    runtime = ctx.runtime
    try:
        start, end = window(
            runtime.now(),
            since=since,
            until=until,
            period=period,
            term_starts=_config(ctx).term_starts,
        )
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    try:
        if by == "container":
            rows, total = per_container(runtime, start, end, users=users, groups=groups)
        else:
            rows, total = aggregate(runtime, start, end, by, users=users, groups=groups)
    except sqlite3.Error as exc:
        raise Unavailable(f"cannot read the usage records: {exc}") from None
    return {
        "scope": what,
        "since": utc_text(start),
        "until": utc_text(end),
        "period": period,
        "by": by,
        "rows": [row.to_json() for row in rows],
        "total": total.to_json(),
    }


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "accounting.usage",
        "GET",
        "/v1/accounting/usage",
        usage,
        (
            Param("user"),
            Param("group"),
            Param("all", "bool", default=False),
            Param("since"),
            Param("until"),
            Param("period"),
            Param("by"),
        ),
        summary="GPU-hours, efficiency, idle time, energy and CO2: yours, or (admins) anyone's.",
    ),
)
