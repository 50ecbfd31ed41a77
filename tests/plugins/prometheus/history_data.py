"""A year of one ds01 server's history, made up but self-consistent: hourly GPU-hours per user
(one user active only in the year's first half), the groups as the sums of their users, daily
aggregates as the sums of their hours, counters as the running sums of the hourly increases —
every series the history rules record, and the exporter's series they are recorded from, one
point an hour (a day for the daily ones), as VictoriaMetrics' ``/api/v1/import`` takes them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HOUR, DAY = 3600, 86400
#: the history: 364 days, so that every sample is inside a one-year retention
DAYS = 364
JOB = {"job": "ds01", "instance": "ds01.example.org:9101"}
#: user → group ("" for none)
USERS = {"ann": "ml", "ben": "ml", "cat": "vision", "dan": "vision", "eve": "", "old": "ml"}
#: ``old`` held GPUs only between these days before the end (not in the last month)
OLD_ACTIVE = range(200, 364)
GPUS = ("0", "1", "2", "3")
WATTS = 250.0


def _wave(index: int, period: float, phase: float) -> float:
    return 0.5 + 0.5 * math.sin(2 * math.pi * index / period + phase)


@dataclass
class History:
    """``series``: (labels incl. ``__name__``, values, timestamps in s), newest last."""

    end: int  # the newest hour (Unix seconds)
    series: list[tuple[dict[str, str], list[float], list[int]]] = field(default_factory=list)
    hourly: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def hours(self) -> list[int]:
        return [self.end - k * HOUR for k in range(DAYS * 24 - 1, -1, -1)]

    def days(self) -> list[int]:
        return [self.end - d * DAY for d in range(DAYS - 1, -1, -1)]

    def add(self, name: str, labels: dict[str, str], values: list[float], daily: bool) -> None:
        stamps = self.days() if daily else self.hours()
        assert len(values) == len(stamps)
        self.series.append(({"__name__": name, **JOB, **labels}, values, stamps))

    def jsonl(self) -> str:
        """The import body: one JSON line per series, timestamps in milliseconds."""
        return "\n".join(
            json.dumps(
                {
                    "metric": labels,
                    "values": [round(v, 9) for v in values],
                    "timestamps": [t * 1000 for t in stamps],
                }
            )
            for labels, values, stamps in self.series
        )

    def total(self, what: str, seconds: int, key: str = "") -> float:
        """The sum of the hourly recorded ``what`` (``ds01:<what>:hourly``) in the last
        ``seconds`` (as ``sum_over_time(…[range])`` at ``end`` sees it), for one label value or
        all of them."""
        count = min(seconds // HOUR, DAYS * 24)
        return sum(
            sum(values[-count:])
            for label, values in self.hourly[what].items()
            if not key or label == key
        )

    def active(self, seconds: int) -> int:
        count = min(seconds // HOUR, DAYS * 24)
        return sum(1 for v in self.hourly["user_gpu_hours"].values() if sum(v[-count:]) > 0)


def _daily(values: list[float]) -> list[float]:
    """Each day's sum of its 24 hours (the day ending at the hour of each daily point)."""
    return [sum(values[d * 24 : d * 24 + 24]) for d in range(DAYS)]


def _by_group(per_user: dict[str, list[float]]) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = {}
    for user, values in per_user.items():
        total = groups.setdefault(USERS[user], [0.0] * len(values))
        for i, v in enumerate(values):
            total[i] += v
    return groups


def _label(what: str, key: str) -> dict[str, str]:
    kind = what.split("_", 1)[0]
    if kind in ("user", "group", "gpu") and key:
        return {kind: key}
    return {}


def build(end: int) -> History:
    """The year up to the hour ``end``."""
    hist = History(end)
    n = DAYS * 24
    held: dict[str, list[float]] = {}
    for u, user in enumerate(USERS):
        values = []
        for i in range(n):
            day_before_end = (n - 1 - i) // 24
            active = day_before_end in OLD_ACTIVE if user == "old" else True
            daytime = _wave(i, 24, u) > 0.3
            values.append(round((1 + u % 3) * _wave(i, 24 * 7, u) * daytime, 3) if active else 0.0)
        held[user] = values
    rec: dict[str, dict[str, list[float]]] = {
        "user_gpu_hours": held,
        "user_idle_gpu_hours": {u: [0.25 * x for x in v] for u, v in held.items()},
        "user_busy_gpu_hours": {u: [0.5 * x for x in v] for u, v in held.items()},
        "user_measured_gpu_hours": {u: [0.9 * x for x in v] for u, v in held.items()},
        "user_energy_joules": {u: [x * WATTS * HOUR for x in v] for u, v in held.items()},
    }
    intensity = [200 + 100 * _wave(i, 24, 0) for i in range(n)]
    rec["user_co2_grams"] = {
        u: [j / 3.6e6 * c for j, c in zip(v, intensity, strict=True)]
        for u, v in rec["user_energy_joules"].items()
    }
    for what in ("gpu_hours", "idle_gpu_hours", "busy_gpu_hours", "measured_gpu_hours",
                 "energy_joules", "co2_grams"):  # fmt: skip
        rec[f"group_{what}"] = _by_group(rec[f"user_{what}"])
    allocated = [sum(v[i] for v in held.values()) for i in range(n)]
    rec["allocated_gpu_hours"] = {"": allocated}
    rec["capacity_gpu_hours"] = {"": [8.0] * n}
    rec["active_users"] = {"": [float(sum(v[i] > 0 for v in held.values())) for i in range(n)]}
    rec["gpu_utilization_ratio"] = {
        g: [0.2 + 0.6 * _wave(i, 24, int(g)) for i in range(n)] for g in GPUS
    }
    rec["gpu_energy_joules"] = {g: [a / 4 * WATTS * HOUR for a in allocated] for g in GPUS}
    rec["carbon_intensity_grams_per_kwh"] = {"": intensity}
    peaks = {"allocated_gpu_equivalents": [1.25 * a for a in allocated],
             "queue_tickets": [float(i % 5 == 0) * 2 for i in range(n)]}  # fmt: skip
    hist.hourly = rec
    for what, by_key in rec.items():
        for key, values in by_key.items():
            hist.add(f"ds01:{what}:hourly", _label(what, key), values, daily=False)
            if what in ("gpu_utilization_ratio", "carbon_intensity_grams_per_kwh"):
                daily = [s / 24 for s in _daily(values)]  # means, not sums
            elif what == "active_users":
                daily = [float(sum(sum(v[d * 24 : d * 24 + 24]) > 0 for v in held.values()))
                         for d in range(DAYS)]  # fmt: skip
            else:
                daily = _daily(values)
            hist.add(f"ds01:{what}:daily", _label(what, key), daily, daily=True)
    for what, values in peaks.items():
        hist.add(f"ds01:{what}:max_hourly", {}, values, daily=False)
        daily = [max(values[d * 24 : d * 24 + 24]) for d in range(DAYS)]
        hist.add(f"ds01:{what}:max_daily", {}, daily, daily=True)
    _raw(hist, held, rec)
    return hist


def _running(values: list[float]) -> list[float]:
    out, total = [], 0.0
    for v in values:
        total += v
        out.append(total)
    return out


def _raw(hist: History, held: dict[str, list[float]], rec: dict[str, Any]) -> None:
    """The exporter's own series the rules read, one point an hour."""
    n = DAYS * 24
    for user, group in USERS.items():
        hist.add("ds01_user_gpu_equivalents", {"user": user}, held[user], daily=False)
        idle = rec["user_idle_gpu_hours"][user]
        hist.add("ds01_user_idle_gpu_equivalents", {"user": user}, idle, daily=False)
        hist.add("ds01_user_group_info", {"user": user, "group": group}, [1.0] * n, daily=False)
        for metric, what in (("ds01_user_energy_joules_total", "user_energy_joules"),
                             ("ds01_user_co2_grams_total", "user_co2_grams")):  # fmt: skip
            hist.add(metric, {"user": user}, _running(rec[what][user]), daily=False)
    for gpu in GPUS:
        util = rec["gpu_utilization_ratio"][gpu]
        hist.add("ds01_gpu_utilization_ratio", {"gpu": gpu}, util, daily=False)
        energy = _running(rec["gpu_energy_joules"][gpu])
        hist.add("ds01_gpu_energy_joules_total", {"gpu": gpu}, energy, daily=False)
    hist.add("ds01_gpu_capacity_gpu_equivalents", {}, [8.0] * n, daily=False)
    allocated = rec["allocated_gpu_hours"][""]
    hist.add("ds01_gpu_allocated_gpu_equivalents", {}, allocated, daily=False)
    intensity = rec["carbon_intensity_grams_per_kwh"][""]
    hist.add("ds01_carbon_intensity_grams_per_kwh", {}, intensity, daily=False)
    hist.add("up", {}, [1.0] * n, daily=False)


def recorded_names(rules: Path) -> set[str]:
    """Every series the history rules record."""
    return {
        rule["record"]
        for group in yaml.safe_load(rules.read_text())["groups"]
        for rule in group["rules"]
    }


def imported_names(hist: History) -> set[str]:
    return {labels["__name__"] for labels, _, _ in hist.series}


def series_count(hist: History) -> int:
    return len(hist.series)


def chunks(hist: History, size: int = 40) -> Iterator[str]:
    """The import body in parts of ``size`` series (a few MB each)."""
    lines = hist.jsonl().split("\n")
    for start in range(0, len(lines), size):
        yield "\n".join(lines[start : start + size])
