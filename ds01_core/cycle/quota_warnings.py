"""Quota warnings: a user told once when their GPU or memory use nears their quota.

"Nears" is past ``quota_warn_at`` of the quota; the warning re-arms when the use drops below it
again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ds01_core.cycle.activity import memory_bytes
from ds01_core.cycle.limit_actions import SOURCE
from ds01_core.cycle.notices import tell_user
from ds01_core.domain.model import Allocation, EffectiveLimits, Event, Notice, Workload
from ds01_core.domain.state.notices_sent import Subject, first_notice, forget
from ds01_core.domain.units import format_bytes

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


def warn_near_quota(
    runtime: Runtime,
    user: str,
    limits: EffectiveLimits,
    containers: Sequence[Workload],
    allocations: Sequence[Allocation],
    now: dt.datetime,
) -> list[Event]:
    """Compare ``user``'s live GPU allocations and their running containers' memory with
    their quotas; a ``lifecycle.quota_warning`` event per warning sent."""
    share = runtime.config.lifecycle.quota_warn_at
    gpu = sum(a.weight for a in allocations)
    memory = sum(
        memory_bytes(w.pids[0]) or 0 for w in containers if w.status == "running" and w.pids
    )
    events = []
    for resource, used, limit, unit in (
        ("gpu", gpu, limits.get("max_gpu_equivalents"), "GPU-equivalents"),
        ("memory", memory, limits.get("memory_max"), "bytes"),
    ):
        if not limit:
            continue
        subject = Subject.user(user)
        with runtime.state.transaction() as db:
            if used < share * limit:
                forget(db, subject, "quota", resource)
                continue
            new = first_notice(db, subject, "quota", resource, now)
        if new:
            events.append(_tell(runtime, user, resource, used, float(limit), unit))
    return events


def _tell(
    runtime: Runtime, user: str, resource: str, used: float, limit: float, unit: str
) -> Event:
    def show(x: float) -> str:
        return format_bytes(int(x)) if unit == "bytes" else f"{x:.2f} {unit}"

    tell_user(
        runtime,
        Notice(
            user,
            f"{resource} quota nearly used",
            f"You use {show(used)} of your {show(limit)} {resource} quota "
            f"({used / limit:.0%}). New requests beyond it will be refused.",
            "warning",
            None,
            "lifecycle.quota_warning",
        ),
    )
    return Event(
        "lifecycle.quota_warning",
        user,
        SOURCE,
        {"resource": resource, "used": used, "limit": limit},
    )
