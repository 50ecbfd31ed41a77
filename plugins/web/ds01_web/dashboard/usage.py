"""``/usage``: the visitor's GPU-hours and efficiency per day (week, month) or per week (year),
as a Chart.js chart declared in ``data-chart`` with the same figures in a table."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ds01_web.dashboard import words
from ds01_web.dashboard.data import fetch
from ds01_web.site import Visitor, page, render

#: period -> (its name in words, the step of the chart's bars)
PERIODS = {
    "week": ("This week", "day"),
    "month": ("This month", "day"),
    "year": ("This year", "week"),
}


def steps(since: dt.datetime, until: dt.datetime, by: str) -> list[str]:
    """Every day (or Monday-started week) key from ``since`` to ``until``, as the accounting
    plugin writes them (``2026-11-30``): a chart shows the days without use too."""
    day = since.astimezone(dt.UTC).date()
    if by == "week":
        day -= dt.timedelta(days=day.weekday())
    step = dt.timedelta(days=7 if by == "week" else 1)
    keys: list[str] = []
    while day <= until.astimezone(dt.UTC).date() and len(keys) < 400:
        keys.append(day.isoformat())
        day += step
    return keys


def series(answer: dict[str, Any], by: str) -> list[dict[str, Any]]:
    """One row per step: its key, GPU-hours, efficiency (None: not measured), idle GPU-hours."""
    found = {row["key"]: row for row in answer.get("rows") or []}
    since = words.parse_moment(answer.get("since"))
    until = words.parse_moment(answer.get("until"))
    keys = steps(since, until, by) if since and until else sorted(found)
    keys += sorted(k for k in found if k not in keys)
    rows = []
    for key in keys:
        row = found.get(key) or {}
        efficiency = row.get("efficiency")
        rows.append(
            {
                "key": key,
                "gpu_hours": round(float(row.get("gpu_hours") or 0.0), 3),
                "efficiency": None if efficiency is None else round(efficiency * 100, 1),
                "idle_hours": round(float(row.get("idle_gpu_hours") or 0.0), 3),
            }
        )
    return rows


def chart(rows: list[dict[str, Any]], by: str) -> dict[str, Any]:
    """The Chart.js configuration: GPU-hours as bars, efficiency (%) as a line on its own axis."""
    return {
        "type": "bar",
        "data": {
            "labels": [r["key"] for r in rows],
            "datasets": [
                # Chart.js draws a lower "order" on top: the line over the bars
                {
                    "label": "GPU-hours",
                    "data": [r["gpu_hours"] for r in rows],
                    "yAxisID": "y",
                    "order": 1,
                },
                {
                    "type": "line",
                    "label": "Efficiency (%)",
                    "data": [r["efficiency"] for r in rows],
                    "yAxisID": "y1",
                    "spanGaps": True,
                    "order": 0,
                    "pointRadius": 4,
                },
            ],
        },
        "options": {
            "scales": {
                "y": {"beginAtZero": True, "title": {"display": True, "text": "GPU-hours"}},
                "y1": {
                    "position": "right",
                    "min": 0,
                    "max": 100,
                    "grid": {"drawOnChartArea": False},
                    "title": {"display": True, "text": "Efficiency (%)"},
                },
                "x": {
                    "title": {"display": True, "text": "week starting" if by == "week" else "day"}
                },
            }
        },
    }


@page
async def usage(request: Request, visitor: Visitor) -> Response:
    period = request.query_params.get("period", "week")
    if period not in PERIODS:
        period = "week"
    label, by = PERIODS[period]
    tabs = [{"period": p, "label": PERIODS[p][0], "current": p == period} for p in PERIODS]
    context: dict[str, Any] = {"tabs": tabs, "period": period, "label": label, "by": by}
    if not visitor.site.has_operation("accounting.usage"):
        return render(request, "user/usage.html", visitor, title="Usage", recorded=False, **context)
    answer = await fetch(visitor, "accounting.usage", period=period, by=by)
    if not answer.ok:
        return render(
            request,
            "user/usage.html",
            visitor,
            title="Usage",
            recorded=True,
            problem=answer.error,
            **context,
        )
    rows = series(answer.value, by)
    total = answer.value["total"]
    return render(
        request,
        "user/usage.html",
        visitor,
        title="Usage",
        charts=True,
        recorded=True,
        problem=None,
        rows=rows,
        config=chart(rows, by),
        since=words.clock(answer.value.get("since")),
        total={
            "gpu_hours": words.number(total.get("gpu_hours")),
            "efficiency": words.percent(total.get("efficiency")),
            "idle_hours": words.number(total.get("idle_gpu_hours")),
            "energy": words.number(total.get("energy_kwh"), 3),
        },
        **context,
    )


ROUTES: list[BaseRoute] = [Route("/usage", usage, methods=["GET"])]
