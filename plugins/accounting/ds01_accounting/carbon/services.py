"""The carbon service operations behind ``ds01 carbon status`` and ``ds01 carbon report``.

``accounting.carbon_status`` is for every user; ``accounting.carbon_report`` shows a user
their own CO₂ and an admin everyone's.

The rules live here, not in the CLI: root runs them in-process, every other user through
``ds01-api``, whose caller comes from the kernel; the provider is asked by the server (root),
which alone can read the key files and write the cache.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from ds01_core.api import Invalid, Operation, Param, ServiceContext, Unavailable, utc_text


def carbon_status(ctx: ServiceContext, hours: int = 24) -> dict[str, Any]:
    """The intensity now (source, age, stale or not, the last error) and the next ``hours``."""
    from ds01_accounting.carbon import status

    if not 1 <= hours <= 72:
        raise Invalid(f"--hours must be between 1 and 72, got {hours}")
    return status(ctx.runtime, hours)


def _usage_rows(
    ctx: ServiceContext, since: dt.datetime, until: dt.datetime, user: str | None
) -> list[Any]:
    from ds01_accounting.usage import usage_rows

    try:
        return list(usage_rows(ctx.runtime, since, until, users=None if user is None else [user]))
    except (OSError, sqlite3.Error) as exc:
        raise Unavailable(f"cannot read the usage records: {exc}") from None


def carbon_report(
    ctx: ServiceContext,
    since: str | None = None,
    until: str | None = None,
    period: str | None = None,
    by: str = "user",
    user: str | None = None,
) -> dict[str, Any]:
    """Energy and CO₂ per user or group in a window (``ds01 usage``'s windows: ``--period``
    or ``--since``/``--until``, default this month): the caller's own for plain users,
    everyone's (or one ``user``'s) for admins."""
    from ds01_accounting.carbon.report import aggregate
    from ds01_accounting.periods import PERIODS, window

    if by not in ("user", "group"):
        raise Invalid(f"--by must be user or group, got {by!r}")
    if period is not None and period not in PERIODS:
        raise Invalid(f"--period must be one of {', '.join(PERIODS)}, got {period!r}")
    runtime = ctx.runtime
    section = runtime.plugin_config("accounting")
    terms = getattr(section, "term_starts", None) or ()
    try:
        start, end = window(
            runtime.now(), since=since, until=until, period=period, term_starts=terms
        )
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    who = ctx.target_user(user, "another user's CO₂") if user or not ctx.caller.admin else None
    lines, total = aggregate(_usage_rows(ctx, start, end, who), by)
    return {
        "since": utc_text(start),
        "until": utc_text(end),
        "by": by,
        "user": who,
        "rows": lines,
        "total": total,
    }


OPERATIONS = (
    Operation(
        "accounting.carbon_status",
        "GET",
        "/v1/accounting/carbon/status",
        carbon_status,
        (Param("hours", "int", default=24),),
        summary="The grid's carbon intensity now and the forecast.",
    ),
    Operation(
        "accounting.carbon_report",
        "GET",
        "/v1/accounting/carbon/report",
        carbon_report,
        (
            Param("since"),
            Param("until"),
            Param("period"),
            Param("by", default="user"),
            Param("user"),
        ),
        summary="Energy and CO₂ per user or group (your own; everyone's for admins).",
    ),
)
