"""The cgroups plugin's service operation (admins only): compare every user's cgroup with
the configuration.

Admin-only: the report names every user's limits and containers. The CLI renders what it
returns, in-process for root and through the API socket for everyone else.
"""

from __future__ import annotations

from typing import Any

from ds01_core.api import Operation, Param, ServiceContext, Unavailable


def check(ctx: ServiceContext, users: list[str] | None = None) -> list[dict[str, Any]]:
    """One report per user with limits or workloads (or per user in ``users``): each limit
    file (or systemd unit) that differs, and the containers outside the user's cgroup.
    Read-only."""
    from ds01_cgroups.check import check_users
    from ds01_cgroups.detect import DetectionError

    try:
        reports = check_users(ctx.runtime, users or ())
    except DetectionError as exc:
        raise Unavailable(str(exc)) from None
    return [r.to_json() for r in reports]


OPERATIONS = (
    Operation(
        "cgroups.check",
        "GET",
        "/v1/cgroups/check",
        check,
        (Param("users", "list"),),
        admin=True,
        summary="Does every user's cgroup on disk match the configuration?",
    ),
)
