"""Leftovers: containers never started, or stopped, removed once they have been so long enough.

A container created but never started is removed after ``created_timeout``; a stopped one after
``container_hold_after_stop``.

Removal goes through Docker without force, so a container that came back to life in between
is never removed.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from ds01_core.cycle.limit_actions import SOURCE
from ds01_core.domain.model import Event, Workload
from ds01_core.domain.policy import Policy

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

#: The states of a container that may be a leftover.
LEFTOVER_STATES = ("created", "exited", "dead")


def remove_if_due(runtime: Runtime, w: Workload, policy: Policy, now: dt.datetime) -> list[Event]:
    """Remove ``w`` if it has been created-only or stopped for longer than its policy allows."""
    if w.status == "created":
        since, limit, event_type = w.created_at, policy.created_timeout, "created_removed"
    elif w.status in ("exited", "dead"):
        since, limit, event_type = w.finished_at, policy.hold_after_stop, "stopped_removed"
    else:
        return []
    age = None if since is None else (now - since).total_seconds()
    if limit is None or age is None or age < limit:
        return []
    runtime.docker.remove(w.id, force=False)
    return [
        Event(
            f"lifecycle.{event_type}",
            w.owner,
            SOURCE,
            {
                "container": w.name,
                "container_id": w.id,
                "origin": w.origin,
                "seconds": round(age),
                "limit": round(limit),
            },
        )
    ]
