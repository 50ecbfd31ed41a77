"""HIST-02 and GREEN-03, "ds01 — history": usage, demand, efficiency, energy and CO₂ over time.

GPU-hours, users, demand, efficiency, energy and CO₂ over the last week, month, year and all
time, read from VictoriaMetrics, the long-term store.

Every panel reads the aggregates the history rules record (``shipped/rules/ds01-history.yml``):
the hourly ones for a week and a month, the daily ones for a year and all time, so that a year
is 365 points per series. Each row's panels carry their own time range (``timeFrom``), whatever
the time picker says. Totals over a row's range are instant queries over ``$__range``; graphs
show means per ``$__interval`` (at least the row's resolution), in GPU-equivalents, so that a
value does not change with the zoom.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import stat, table, timeseries

from ds01_prometheus.dashboards.panels import (
    GPU_EQUIVALENTS,
    HISTORY_DATASOURCE,
    Item,
    Query,
    graph,
    listing,
    row,
    single,
)

UID = "ds01-history"
TITLE = "ds01 — history"
#: "all time": as far back as any store keeps (the shipped retention is two years)
ALL_TIME = "10y"
#: joules per kWh
KWH = "3.6e6"
CARBON_UNIT = "suffix:gCO₂/kWh"


@dataclass(frozen=True)
class Period:
    """One row: its title, its time range, which aggregates it reads and its smallest step."""

    title: str
    time_from: str
    suffix: str  # hourly / daily: the recorded series read
    hours: int  # hours one recorded sample covers
    interval: str  # the smallest $__interval (one recorded sample or more)


PERIODS = (
    Period("Last 7 days", "7d", "hourly", 1, "1h"),
    Period("Last 30 days", "30d", "hourly", 1, "1h"),
    Period("Last year", "1y", "daily", 24, "1d"),
    Period("All time", ALL_TIME, "daily", 24, "1w"),
)


def _over(period: Period, what: str) -> str:
    """The recorded series ``what`` summed over the row's range (GPU-hours, joules, grams)."""
    return f"sum_over_time(ds01:{what}:{period.suffix}[$__range])"


def _mean(period: Period, what: str) -> str:
    """The recorded GPU-hours ``what`` per step, as mean GPU-equivalents."""
    per = f" / {period.hours}" if period.hours != 1 else ""
    return f"avg_over_time(ds01:{what}:{period.suffix}[$__interval]){per}"


def _ranged(panel: stat.Panel | timeseries.Panel | table.Panel, period: Period) -> Item:
    return panel.time_from(period.time_from).interval(period.interval)


def _totals(p: Period) -> list[Item]:
    def total(title: str, unit: str, expr: str, description: str = "") -> Item:
        return _ranged(
            single(title, unit, [(expr, "")], description, 4, HISTORY_DATASOURCE, instant=True),
            p,
        )

    return [
        total("GPU-hours allocated", "h", f"sum({_over(p, 'user_gpu_hours')})"),
        total(
            "Users",
            "none",
            f"count(sum by (user) ({_over(p, 'user_gpu_hours')}) > 0)",
            "Users who held GPUs in the range.",
        ),
        total(
            "Efficiency",
            "percentunit",
            f"sum({_over(p, 'user_busy_gpu_hours')}) / sum({_over(p, 'user_measured_gpu_hours')})",
            "Busy GPU time / allocated GPU time, where the slot's utilisation is known (MIG slots "
            "without GPM are left out).",
        ),
        total(
            "Idle share",
            "percentunit",
            f"sum({_over(p, 'user_idle_gpu_hours')}) / sum({_over(p, 'user_gpu_hours')})",
            "Allocated GPU-hours spent idle.",
        ),
        total("GPU energy", "kwatth", f"sum({_over(p, 'gpu_energy_joules')}) / {KWH}"),
        total("CO₂", "masskg", f"sum({_over(p, 'user_co2_grams')}) / 1000"),
    ]


def _graphs(p: Period) -> list[Item]:
    def chart(title: str, unit: str, queries: list[Query], description: str = "") -> Item:
        return _ranged(graph(title, unit, queries, description, 12, HISTORY_DATASOURCE), p)

    return [
        chart(
            "Demand: allocated against capacity",
            GPU_EQUIVALENTS,
            [
                (f"sum({_mean(p, 'allocated_gpu_hours')})", "allocated (mean)"),
                (
                    f"sum(max_over_time(ds01:allocated_gpu_equivalents:max_{p.suffix}"
                    "[$__interval]))",
                    "allocated (peak)",
                ),
                (f"sum({_mean(p, 'capacity_gpu_hours')})", "capacity"),
            ],
            "GPU-equivalents; the peak is the most held at once.",
        ),
        chart(
            "GPU-equivalents per group",
            GPU_EQUIVALENTS,
            [(f"sum by (group) ({_mean(p, 'group_gpu_hours')})", "{{group}}")],
            "Mean GPU-equivalents each group held (no group: the empty name).",
        ),
        chart(
            "Efficiency per group",
            "percentunit",
            [
                (
                    f"sum by (group) (sum_over_time(ds01:group_busy_gpu_hours:{p.suffix}"
                    "[$__interval])) / sum by (group) (sum_over_time("
                    f"ds01:group_measured_gpu_hours:{p.suffix}[$__interval]))",
                    "{{group}}",
                )
            ],
        ),
        chart(
            "Active users and the longest queue",
            "none",
            [
                (f"sum(max_over_time(ds01:active_users:{p.suffix}[$__interval]))", "users"),
                (
                    f"sum(max_over_time(ds01:queue_tickets:max_{p.suffix}[$__interval]))",
                    "queue (tickets)",
                ),
            ],
        ),
        chart(
            "Utilisation per GPU",
            "percentunit",
            [
                (
                    f"avg by (gpu) (avg_over_time(ds01:gpu_utilization_ratio:{p.suffix}"
                    "[$__interval]))",
                    "GPU {{gpu}}",
                )
            ],
        ),
        chart(
            "Carbon intensity",
            CARBON_UNIT,
            [
                (
                    f"avg(avg_over_time(ds01:carbon_intensity_grams_per_kwh:{p.suffix}"
                    "[$__interval]))",
                    "grid",
                )
            ],
            "The grid's carbon intensity as the accounting plugin's provider gave it.",
        ),
    ]


def _tables(p: Period) -> list[Item]:
    def ranking(title: str, unit: str, expr: str) -> Item:
        return _ranged(listing(title, unit, [(expr, "")], "", 8, HISTORY_DATASOURCE), p)

    return [
        ranking(
            "GPU-hours per user", "h", f"sort_desc(sum by (user) ({_over(p, 'user_gpu_hours')}))"
        ),
        ranking(
            "GPU-hours per group",
            "h",
            f"sort_desc(sum by (group) ({_over(p, 'group_gpu_hours')}))",
        ),
        ranking(
            "Efficiency per user",
            "percentunit",
            f"sum by (user) ({_over(p, 'user_busy_gpu_hours')}) / sum by (user) "
            f"({_over(p, 'user_measured_gpu_hours')})",
        ),
        ranking(
            "Energy per user (kWh)",
            "kwatth",
            f"sort_desc(sum by (user) ({_over(p, 'user_energy_joules')}) / {KWH})",
        ),
        ranking(
            "Energy per GPU (kWh)",
            "kwatth",
            f"sum by (gpu) ({_over(p, 'gpu_energy_joules')}) / {KWH}",
        ),
        ranking(
            "CO₂ per user (kg)",
            "masskg",
            f"sort_desc(sum by (user) ({_over(p, 'user_co2_grams')}) / 1000)",
        ),
    ]


def items() -> list[Item]:
    """The rows, one per period, each with its totals, graphs and rankings."""
    found: list[Item] = []
    for period in PERIODS:
        found.append(row(period.title))
        found += _totals(period) + _graphs(period) + _tables(period)
    return found
