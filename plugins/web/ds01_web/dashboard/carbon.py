"""``/carbon``: the visitor's energy and CO₂ this week, this month and in all, and the grid's
carbon intensity now with the forecast as a chart (and a table), from the accounting plugin."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ds01_web.dashboard import words
from ds01_web.dashboard.data import fetch
from ds01_web.site import Visitor, page, render

WINDOWS = (("week", "This week"), ("month", "This month"), ("all", "All time"))
FORECAST_HOURS = 24


def forecast_chart(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The forecast as a Chart.js line: g CO₂-eq/kWh at each coming hour (UTC)."""
    return {
        "type": "line",
        "data": {
            "labels": [words.clock(p.get("at")).removesuffix(" UTC")[-5:] for p in points],
            "datasets": [
                {
                    "label": "g CO₂-eq/kWh",
                    "data": [p.get("grams_per_kwh") for p in points],
                    "tension": 0,
                    "pointRadius": 2,
                }
            ],
        },
        "options": {
            "scales": {
                "y": {"beginAtZero": True, "title": {"display": True, "text": "g CO₂-eq/kWh"}},
                "x": {"title": {"display": True, "text": "hour (UTC)"}},
            },
            "plugins": {"legend": {"display": False}},
        },
    }


async def _mine(visitor: Visitor) -> list[dict[str, Any]]:
    rows = []
    for period, label in WINDOWS:
        answer = await fetch(visitor, "accounting.carbon_report", period=period)
        total = (answer.value or {}).get("total") or {}
        rows.append(
            {
                "label": label,
                "error": answer.error,
                "energy": words.number(total.get("energy_kwh"), 3),
                "co2": words.number(total.get("co2_kg"), 3),
                "intensity": words.number(total.get("grams_per_kwh"), 0),
                "unknown": words.number(total.get("energy_without_intensity_kwh"), 3),
                "has_unknown": bool(total.get("energy_without_intensity_kwh")),
            }
        )
    return rows


def _grid(status: dict[str, Any]) -> dict[str, Any]:
    now = status.get("intensity") or {}
    points = [p for p in status.get("forecast") or [] if p.get("grams_per_kwh") is not None]
    lowest = min(points, key=lambda p: p["grams_per_kwh"]) if points else None
    return {
        "configured": status.get("source") not in (None, "none"),
        "source": status.get("source"),
        "now": None if not now else words.number(now.get("grams_per_kwh"), 0),
        "stale": bool(now.get("stale")),
        "age": words.duration(status.get("age_seconds"))
        if status.get("age_seconds") is not None
        else None,
        "error": status.get("error"),
        "forecast_error": status.get("forecast_error"),
        "points": [
            {"at": words.clock(p.get("at")), "value": words.number(p.get("grams_per_kwh"), 0)}
            for p in points
        ],
        "lowest": None
        if lowest is None
        else {
            "at": words.clock(lowest.get("at")),
            "value": words.number(lowest["grams_per_kwh"], 0),
        },
        "config": forecast_chart(points) if points else None,
    }


@page
async def carbon(request: Request, visitor: Visitor) -> Response:
    if not visitor.site.has_operation("accounting.carbon_status"):
        return render(request, "user/carbon.html", visitor, title="Carbon", installed=False)
    status = await fetch(visitor, "accounting.carbon_status", hours=FORECAST_HOURS)
    grid = _grid(status.value) if status.ok else None
    return render(
        request,
        "user/carbon.html",
        visitor,
        title="Carbon",
        installed=True,
        charts=bool(grid and grid["config"]),
        mine=await _mine(visitor),
        grid=grid,
        grid_problem=status.error,
        hours=FORECAST_HOURS,
    )


ROUTES: list[BaseRoute] = [Route("/carbon", carbon, methods=["GET"])]
