"""The configuration as a caller may see it: their own limits and policy; for admins, all of it.

A user sees their own effective limits and lifecycle policy (with where each value comes from);
an admin also the whole file as loaded.
"""

from __future__ import annotations

from typing import Any

from ds01_core.domain.config import ORIGINS, unstructure
from ds01_core.domain.policy import explain_policy
from ds01_core.domain.user_limits import effective_limits
from ds01_core.services.errors import Invalid
from ds01_core.services.operations import Operation, Param, ServiceContext


def effective(ctx: ServiceContext) -> dict[str, Any]:
    """The whole configuration in effect (admins: plugin sections may hold credentials)."""
    return unstructure(ctx.runtime.config)


def limits(ctx: ServiceContext, user: str | None = None, origin: str | None = None) -> Any:
    """``user``'s effective limits (the caller's own unless an admin asks), each with its
    source; with ``origin``, the lifecycle policy their containers of that origin get."""
    if origin is not None and origin not in ORIGINS:
        raise Invalid(f"unknown origin {origin!r}: choose from {', '.join(ORIGINS)}")
    name = ctx.target_user(user, "another user's limits")
    runtime = ctx.runtime
    resolved = effective_limits(runtime, name)
    data: dict[str, Any] = {
        "user": resolved.user,
        "group": resolved.group,
        "group_explanations": list(runtime.hooks.explain_user_group(runtime, resolved.user)),
        "limits": {
            key: {"value": entry.value, "source": entry.source, "expires": entry.expires}
            for key, entry in resolved.values.items()
        },
    }
    if origin is not None:
        lifecycle = runtime.config.lifecycle
        data["origin"] = origin
        data["policy"] = {
            row.pop("key"): row for row in explain_policy(runtime.config, resolved, origin)
        }
        data["high_demand"] = {
            "factor": lifecycle.high_demand_factor,
            "share": lifecycle.high_demand_share,
        }
    return data


OPERATIONS = (
    Operation(
        "config.show",
        "GET",
        "/v1/config",
        effective,
        admin=True,
        summary="The configuration in effect.",
    ),
    Operation(
        "config.limits",
        "GET",
        "/v1/config/limits",
        limits,
        (Param("user"), Param("origin")),
        summary="Your effective limits and lifecycle policy, and where each comes from.",
    ),
)
