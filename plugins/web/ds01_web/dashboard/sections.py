"""The dashboard's sections as template contexts: GPU quota, container cards, the waiting GPU
request, this week's usage, recent activity. Each is built from operations run as the visitor
and renders on its own (the page, and the fragment its polling fetches)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from ds01_web.dashboard import words
from ds01_web.dashboard.data import Answer, fetch, slot_table
from ds01_web.site import Visitor

#: how often each section polls (seconds; the issue asks 10 to 30): about 16 requests a
#: minute per open dashboard, which count against the per-user rate limit (100/min)
POLL = {"containers": 10, "quota": 30, "queue": 15, "week": 30, "activity": 30}
ACTIVITY = 10


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def quota(visitor: Visitor) -> dict[str, Any]:
    answer = await fetch(visitor, "quota")
    if not answer.ok:
        return {"error": answer.error}
    gpu = answer.value["gpu_equivalents"]
    limit, used = gpu.get("limit"), float(gpu.get("in_use") or 0.0)
    limits = answer.value.get("limits") or {}
    return {
        "error": None,
        "used": used,
        "limit": limit,
        "used_text": words.number(used),
        "limit_text": "no limit" if limit is None else words.number(limit),
        "left_text": None if gpu.get("left") is None else words.number(gpu["left"]),
        "high": None if limit is None else float(limit) * 0.8,
        "source": gpu.get("source"),
        "max_containers": limits.get("max_containers_per_user"),
        "per_container": limits.get("max_gpu_slots_per_container"),
    }


def _card(item: dict[str, Any], slots: dict[str, dict[str, Any]], now: dt.datetime) -> Any:
    state, css = words.state_words(str(item.get("status") or ""))
    gpus = []
    for uuid, slot_id in zip(
        item.get("gpu_slots") or [], item.get("gpu_slot_ids") or [], strict=False
    ):
        slot = slots.get(uuid) or {}
        util = slot.get("utilization")
        gpus.append(
            {
                "id": slot_id,
                "what": f"MIG {slot['profile']}" if slot.get("profile") else "full GPU",
                "mig": slot.get("kind") == "mig",
                "model": slot.get("gpu_model") or slot.get("model"),
                "utilization": util,
                "util_text": "unknown" if util is None else f"{util:.0f} %",
            }
        )
    running = item.get("status") == "running"
    since = item.get("started_at") if running else item.get("finished_at")
    return {
        "name": item["name"],
        "image": item.get("image") or "-",
        "status": item.get("status"),
        "state": state,
        "state_class": css,
        "running": running,
        "gpus": gpus,
        "created": words.ago(item.get("created_at"), now),
        "since": words.ago(since, now) if since else None,
        "idle": words.duration(item.get("idle_seconds"))
        if running and item.get("idle_seconds") is not None
        else None,
    }


async def containers(visitor: Visitor) -> dict[str, Any]:
    listed = await fetch(visitor, "containers.list", all=True)
    if not listed.ok:
        return {"error": listed.error, "cards": []}
    status = (
        await fetch(visitor, "gpu.status") if any(c["gpu_slots"] for c in listed.value) else None
    )
    slots = slot_table(status.value) if status is not None and status.ok else {}
    now = _now()
    return {
        "error": None,
        "gpu_error": None if status is None or status.ok else status.error,
        "cards": [_card(item, slots, now) for item in listed.value],
    }


async def queue(visitor: Visitor) -> dict[str, Any]:
    answer = await fetch(visitor, "gpu.queue")
    if not answer.ok:
        return {"error": answer.error, "mine": [], "length": 0}
    now = _now()
    mine = [
        {
            "position": row["position"],
            "container": row.get("container") or "-",
            "request": words.describe_request(row.get("request") or {}),
            "waiting": words.ago(row.get("waiting_since"), now).removesuffix(" ago"),
            "estimate": _estimate(row),
        }
        for row in answer.value
        if row.get("mine")
    ]
    return {"error": None, "mine": mine, "length": len(answer.value)}


def _estimate(row: dict[str, Any]) -> str:
    seconds = row.get("estimated_wait_seconds")
    if not isinstance(seconds, (int, float)):
        return "no estimate yet (too few requests served lately)"
    return "about " + words.duration(seconds)


async def week(visitor: Visitor) -> dict[str, Any]:
    if not visitor.site.has_operation("accounting.usage"):
        return {"recorded": False, "error": None}
    answer = await fetch(visitor, "accounting.usage", period="week")
    if not answer.ok:
        return {"recorded": True, "error": answer.error}
    total = answer.value["total"]
    return {
        "recorded": True,
        "error": None,
        "since": words.clock(answer.value.get("since")),
        "gpu_hours": words.number(total.get("gpu_hours")),
        "efficiency": words.percent(total.get("efficiency")),
        "idle_hours": words.number(total.get("idle_gpu_hours")),
    }


async def activity(visitor: Visitor) -> dict[str, Any]:
    answer = await fetch(visitor, "events.query", limit=ACTIVITY)
    if not answer.ok:
        return {"error": answer.error, "events": []}
    now = _now()
    events = [
        {
            "when": words.ago(event.get("timestamp"), now),
            "at": words.clock(event.get("timestamp")),
            "text": words.event_sentence(event),
        }
        for event in reversed(answer.value.get("events") or [])
    ]
    return {"error": None, "events": events}


SECTIONS: dict[str, Callable[[Visitor], Awaitable[dict[str, Any]]]] = {
    "quota": quota,
    "containers": containers,
    "queue": queue,
    "week": week,
    "activity": activity,
}

__all__ = ["POLL", "SECTIONS", "Answer"]
