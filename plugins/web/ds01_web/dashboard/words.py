"""How the user pages say things: durations, ages, sizes, GPU requests and audit events in
plain words (pure functions of an operation's JSON, so they are tested without a browser)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ds01_core.api import format_bytes, format_duration

#: the states a container card shows, with the class that colours them (the word says it)
STATES = {
    "running": ("running", "status-ok"),
    "exited": ("exited", "status-warn"),
    "created": ("created, not started", "status-warn"),
    "paused": ("paused", "status-warn"),
    "restarting": ("restarting", "status-warn"),
    "dead": ("dead", "status-err"),
    "removing": ("being removed", "status-warn"),
}

#: audit event types as a sentence about "you" ({c}: the container, {s}: slots or profile)
EVENT_WORDS = {
    "container.created": "You created container {c}",
    "container.created_by_ds01": "You created container {c}",
    "container.started": "Container {c} started",
    "container.stopped": "Container {c} stopped",
    "container.removed": "Container {c} was removed",
    "container.paused": "Container {c} was paused",
    "container.unpaused": "Container {c} was unpaused",
    "container.renamed": "Container {c} was renamed",
    "gpu.allocated": "GPU {s} allocated to {c}",
    "gpu.released": "GPU {s} released from {c}",
    "gpu.queued": "Your GPU request for {c} joined the queue",
    "gpu.rejected": "A GPU request for {c} was refused",
    "gpu.over_quota": "Your containers went over your GPU quota",
    "lifecycle.keepalive": "You kept {c} from idle stops for a while",
    "lifecycle.quota_warning": "A warning about your quota",
    "lifecycle.exempt": "An admin exempted you from a lifecycle limit",
    "access.denied": "Something you tried was refused",
    "web.request": "You used the web dashboard",
    "web.token_create": "You made an API token",
    "web.token_revoke": "You revoked an API token",
    "slurm.job.started": "Slurm job started in {c}",
    "slurm.job.idle_warning": "Your Slurm job was warned for idleness",
    "slurm.job.idle_cancelled": "Your Slurm job was cancelled for idleness",
    "slurm.job.refused": "Slurm job refused by your ds01 limits",
}


def parse_moment(value: Any) -> dt.datetime | None:
    """An ISO time from an operation's JSON (``…Z`` or with an offset), None if it is not one."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def ago(value: Any, now: dt.datetime) -> str:
    """``3m 12s ago`` (``-`` when unknown)."""
    moment = parse_moment(value)
    if moment is None:
        return "-"
    return format_duration(max(0.0, (now - moment).total_seconds())) + " ago"


def clock(value: Any) -> str:
    """A moment as ``2026-12-01 09:30 UTC`` (``-`` when unknown)."""
    moment = parse_moment(value)
    return "-" if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return "-"
    return format_duration(float(seconds))


def size(nbytes: Any) -> str:
    return format_bytes(int(nbytes)) if isinstance(nbytes, (int, float)) else "-"


def number(value: Any, digits: int = 2) -> str:
    """``1.5``, ``2`` (no trailing zeros), ``-`` for None."""
    if not isinstance(value, (int, float)):
        return "-"
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def percent(fraction: Any) -> str:
    """An efficiency (0…1) as ``42 %``; ``not measured`` for None."""
    return "not measured" if not isinstance(fraction, (int, float)) else f"{fraction * 100:.0f} %"


def state_words(status: str) -> tuple[str, str]:
    return STATES.get(status, (status or "unknown", "status-warn"))


def describe_request(request: dict[str, Any]) -> str:
    """A waiting GPU request in words: ``2 GPUs``, ``MIG 3g.40gb``, ``a full GPU``."""
    if request.get("mig_profile"):
        return f"a MIG slot {request['mig_profile']}"
    if request.get("full_gpu"):
        return "a full GPU"
    count = request.get("count") or 1
    return f"{count} GPU{'s' if count != 1 else ''}"


def event_sentence(event: dict[str, Any]) -> str:
    """One audit event as a sentence about the user."""
    kind = str(event.get("event_type") or "")
    details = event.get("details") or {}
    container = details.get("container") or details.get("container_name") or details.get("name")
    slots = details.get("slots") or details.get("slot_ids") or details.get("profile")
    if isinstance(slots, list):
        slots = ", ".join(str(s) for s in slots)
    template = EVENT_WORDS.get(kind)
    if template is None:
        words = kind.replace("_", " ").replace(".", ": ", 1).replace(".", " ")
        template = (words[:1].upper() + words[1:]) if words else "Something happened"
        if container:
            template += " ({c})"
    text = template.format(c=container or "a container", s=slots or "")
    text = text.replace("GPU  ", "GPU ")
    if kind == "web.request" and details.get("endpoint"):
        text += f": {details['endpoint']}"
    if kind == "access.denied" and details.get("reason"):
        text += f": {details['reason']}"
    return text
