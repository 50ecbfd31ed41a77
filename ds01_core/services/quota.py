"""The caller's limits and what they use of them (``ds01 quota``)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.domain.images import image_owner, real_tags
from ds01_core.domain.model import EffectiveLimits, QuotaLine
from ds01_core.domain.state.allocations import Allocations
from ds01_core.domain.user_limits import effective_limits
from ds01_core.services.errors import Unavailable
from ds01_core.services.operations import Operation, Param, ServiceContext

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


def quota(ctx: ServiceContext, user: str | None = None) -> dict[str, Any]:
    """GPU-equivalents in use (per container) and left, the other limits, and every plugin's
    resource lines. ``user`` other than the caller: admins only."""
    name = ctx.target_user(user, "another user's quota")
    runtime = ctx.runtime
    limits = effective_limits(runtime, name, now=runtime.now())
    try:
        held = Allocations(runtime).live(user=name)
    except (OSError, sqlite3.Error) as exc:
        raise Unavailable(f"cannot read the state store: {exc}") from None
    in_use = sum(a.weight for a in held)
    quota_value = limits.get("max_gpu_equivalents")
    lines = [
        *runtime.hooks.quota_usage(runtime, name, limits),
        *_image_lines(runtime, name, limits),
    ]
    return {
        "user": name,
        "group": limits.group,
        "gpu_equivalents": {
            "in_use": round(in_use, 4),
            "limit": quota_value,
            "left": None if quota_value is None else round(max(0.0, quota_value - in_use), 4),
            "source": limits.values["max_gpu_equivalents"].source,
            "allocations": [
                {
                    "container": a.container_name or a.container,
                    "weight": round(a.weight, 4),
                    "slots": a.slot_uuids,
                    "held_after_stop": a.stopped_at is not None,
                }
                for a in held
            ],
        },
        "limits": {k: v.value for k, v in limits.values.items()},
        "resources": [attrs.asdict(line) for line in lines],
    }


def _image_lines(runtime: Runtime, user: str, limits: EffectiveLimits) -> list[QuotaLine]:
    """The user's images against ``max_images`` and ``max_image_storage`` (when either is set),
    counted as the gateway counts them before a build."""
    max_images, max_storage = limits.get("max_images"), limits.get("max_image_storage")
    if max_images is None and max_storage is None:
        return []
    try:
        rows = [r for r in runtime.docker.api.images() if image_owner(r) == user]
    except Exception as exc:  # the engine unreachable or refusing: the rest of quota still shows
        detail = f"Docker: {exc}"
        return [QuotaLine("images", None, max_images, "count", detail)]
    count = len([r for r in rows if real_tags(r)])
    size = sum(int(r.get("Size") or 0) for r in rows)
    return [
        QuotaLine(
            "images",
            count,
            max_images,
            "count",
            "tagged images you own (ds01 image list)",
            max_images is not None and count > max_images,
        ),
        QuotaLine(
            "image storage",
            size,
            max_storage,
            "bytes",
            "the size of all your images",
            max_storage is not None and size >= max_storage,
        ),
    ]


OPERATIONS = (
    Operation(
        "quota",
        "GET",
        "/v1/quota",
        quota,
        (Param("user"),),
        summary="Your limits and what you use of them.",
    ),
)
