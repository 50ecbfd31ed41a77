"""The admin panel's overview, ``/admin``: health tiles, the GPU/MIG allocation map, the queue
and the alerts, refreshed by htmx from ``/admin/live`` every :data:`POLL_SECONDS` seconds.

Every number comes from an operation run as the admin (``admin.health``, ``gpu.status``,
``gpu.queue``, ``admin.doctor``, ``events.query``); a part that fails is shown as that part's
error, and the rest of the panel still works.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ds01_core.api import ServiceError, format_bytes
from ds01_web.admin.common import POLL_SECONDS, admin_page, age, iso, now_utc, sections, shown_time
from ds01_web.site import Visitor, render, site_of

#: how far back the panel lists Alertmanager's notifications
ALERTS_SINCE = "24h"


async def attempt(visitor: Visitor, operation: str, **params: Any) -> tuple[Any, str | None]:
    """``operation``'s answer, or None and the refusal's words (one part of the panel)."""
    try:
        return await visitor.call(operation, **params), None
    except ServiceError as exc:
        return None, f"{operation}: {exc.message}"


def allocation_map(status: dict[str, Any]) -> list[dict[str, Any]]:
    """``gpu.status`` as the map shows it: each GPU, its slots, who holds each and how long."""
    now = now_utc()
    gpus = []
    for gpu in status.get("gpus") or []:
        slots = []
        for slot in gpu["slots"]:
            holder = slot.get("allocation")
            slots.append(
                {
                    "id": slot["slot_id"],
                    "name": slot.get("profile")
                    or ("whole GPU" if slot["kind"] == "gpu" else "MIG"),
                    "weight": round(slot["weight"], 3),
                    "utilization": slot.get("utilization"),
                    "memory": _memory(slot.get("memory_used"), slot.get("memory_total")),
                    "processes": None if slot.get("processes") is None else len(slot["processes"]),
                    "holder": None
                    if holder is None
                    else {
                        "user": holder["user"],
                        "container": holder["container"],
                        "since": shown_time(holder["since"]),
                        "since_iso": iso(holder["since"]),
                        "held_for": age(holder["since"], now),
                        "stopped": holder.get("held_after_stop", False),
                    },
                }
            )
        gpus.append(
            {
                "index": gpu["index"],
                "model": gpu["model"],
                "mig": gpu["mig_enabled"],
                "utilization": gpu.get("utilization"),
                "memory": _memory(gpu.get("memory_used"), gpu.get("memory_total")),
                "health": gpu.get("health"),
                "held": sum(1 for s in slots if s["holder"]),
                "slots": slots,
            }
        )
    return gpus


def _memory(used: Any, total: Any) -> str | None:
    if not isinstance(total, int | float) or not total:
        return None
    return f"{format_bytes(int(used or 0))} of {format_bytes(int(total))}"


def metrics_links(where: dict[str, Any] | None) -> list[dict[str, str]]:
    """Where the metrics are (``admin.metrics``): the dashboards, and the exporter when it runs."""
    links: list[dict[str, str]] = []
    if not where:
        return links
    if where.get("dashboards_url"):
        links.append({"url": str(where["dashboards_url"]), "label": "Metrics dashboards"})
    exporter = where.get("exporter") or {}
    if exporter.get("url"):
        links.append(
            {"url": str(exporter["url"]), "label": "Prometheus exporter (ds01d, on the server)"}
        )
    return links


async def live_context(request: Request, visitor: Visitor) -> dict[str, Any]:
    """Everything the live part of the panel shows, each part with its own error."""
    site = site_of(request)
    health, health_error = await attempt(visitor, "admin.health")
    status, status_error = await attempt(visitor, "gpu.status")
    queue, queue_error = await attempt(visitor, "gpu.queue")
    doctor, doctor_error = await attempt(visitor, "admin.doctor")
    prometheus = site.runtime.plugin_config("prometheus") is not None
    alerts, alerts_error = (None, None)
    if prometheus:
        alerts, alerts_error = await attempt(
            visitor, "events.query", type="alert.received", since=ALERTS_SINCE, limit=20
        )
    now = now_utc()
    return {
        "poll": POLL_SECONDS,
        "checked": now.strftime("%H:%M:%S UTC"),
        "health": health,
        "health_error": health_error,
        "access": (status or {}).get("access") or {},
        "provider": (status or {}).get("description"),
        "gpus": allocation_map(status or {}),
        "status_error": status_error,
        "queue": [
            {
                **row,
                "waited": age(row["waiting_since"], now),
                "since": shown_time(row["waiting_since"]),
            }
            for row in queue or []
        ],
        "queue_error": queue_error,
        "gpu_problems": (health or {}).get("gpu_health", {}).get("gpus", []),
        "health_stale": (health or {}).get("gpu_health", {}).get("stale", False),
        "doctor": [f for f in (doctor or {}).get("findings", []) if not f["ok"]],
        "doctor_error": doctor_error,
        "prometheus": prometheus,
        "alerts": [
            {**e, "when": shown_time(e["timestamp"])}
            for e in reversed((alerts or {}).get("events", []))
        ],
        "alerts_error": alerts_error,
        "alerts_since": ALERTS_SINCE,
    }


@admin_page
async def overview(request: Request, visitor: Visitor) -> Response:
    context = await live_context(request, visitor)
    return render(
        request,
        "admin/panel.html",
        visitor,
        sections=sections("/admin"),
        metrics=metrics_links((await attempt(visitor, "admin.metrics"))[0]),
        **context,
    )


@admin_page
async def live(request: Request, visitor: Visitor) -> Response:
    """The panel's live part alone (htmx swaps it in every :data:`POLL_SECONDS` seconds)."""
    return render(request, "admin/live.html", visitor, **await live_context(request, visitor))


ROUTES = [
    Route("/admin", overview, methods=["GET"]),
    Route("/admin/live", live, methods=["GET"]),
]
