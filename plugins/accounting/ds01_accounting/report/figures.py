"""The report's numbers, from usage rows and the GPU queue's waits, and nothing else.

Every figure is a sum or a count over :class:`~ds01_accounting.usage.UsageRow` (each already
clipped to the window), so a report agrees with ``ds01 usage`` for the same window. GPU-hours
are GPU-equivalent-hours (a MIG slice counts as its share of a GPU). Efficiency is busy GPU time
over the GPU time whose utilisation is known; rows with no utilisation reading (no GPM on a MIG
slice) are left out of it rather than counted as idle or busy.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ds01_accounting.report.period import Period
from ds01_accounting.report.queue_waits import QueueWaits
from ds01_core.api import utc_text

if TYPE_CHECKING:
    from ds01_accounting.usage import UsageRow

NO_GROUP = "(no group)"
HOUR = 3600.0
JOULES_PER_KWH = 3.6e6


@attrs.frozen
class Totals:
    """GPU time, its use and its energy, for everyone or for one user or group."""

    name: str
    gpu_hours: float
    busy_gpu_hours: float | None
    known_gpu_hours: float
    idle_gpu_hours: float
    energy_kwh: float | None
    co2_kg: float | None
    allocations: int
    users: int
    #: the user's group (users only; their latest allocation's), or None
    group: str | None = None
    #: this entry's part of all GPU-hours, 0..1
    share: float = 0.0

    @property
    def efficiency(self) -> float | None:
        """Busy over known GPU time; None when no utilisation was known."""
        if self.busy_gpu_hours is None or self.known_gpu_hours <= 0:
            return None
        return self.busy_gpu_hours / self.known_gpu_hours

    def to_json(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "efficiency": self.efficiency}


@attrs.frozen
class Peak:
    """The most GPU-equivalents allocated at once, and when that was first reached."""

    gpu_equivalents: float = 0.0
    at: dt.datetime | None = None


@attrs.frozen
class ReportFigures:
    period: Period
    generated_at: dt.datetime
    total: Totals
    users: tuple[Totals, ...]  # by GPU-hours, most first
    groups: tuple[Totals, ...]
    peak: Peak
    queue: QueueWaits
    top_n: int

    @property
    def active_users(self) -> int:
        return len(self.users)

    @property
    def top(self) -> tuple[Totals, ...]:
        return self.users[: self.top_n]

    def to_json(self) -> dict[str, Any]:
        """The figures as JSON data (times as ``2026-11-30T12:00:00Z``): what the operation
        returns, what ``--format json`` prints and what every renderer reads."""
        queue = attrs.asdict(self.queue)
        longest = self.queue.max_queued_at
        queue["max_queued_at"] = utc_text(longest) if longest else None
        return {
            "period": {
                "kind": self.period.kind,
                "label": self.period.label,
                "since": utc_text(self.period.since),
                "until": utc_text(self.period.until),
            },
            "generated_at": utc_text(self.generated_at),
            "active_users": self.active_users,
            "total": self.total.to_json(),
            "peak": {
                "gpu_equivalents": self.peak.gpu_equivalents,
                "at": utc_text(self.peak.at) if self.peak.at else None,
            },
            "queue": queue,
            "top_n": self.top_n,
            "top": [u.name for u in self.top],
            "users": [u.to_json() for u in self.users],
            "groups": [g.to_json() for g in self.groups],
        }


def _optional_sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def totals(
    name: str, rows: Sequence[UsageRow], everything: float, group: str | None = None
) -> Totals:
    """Sums over ``rows``; ``everything`` (all GPU-seconds) gives the share."""
    seconds = sum(r.gpu_eq_seconds for r in rows)
    busy = _optional_sum(r.busy_gpu_eq_seconds for r in rows)
    energy = _optional_sum(r.energy_joules for r in rows)
    co2 = _optional_sum(r.co2_grams for r in rows)
    return Totals(
        name=name,
        gpu_hours=seconds / HOUR,
        busy_gpu_hours=None if busy is None else busy / HOUR,
        known_gpu_hours=sum(
            r.known_gpu_eq_seconds for r in rows if r.busy_gpu_eq_seconds is not None
        )
        / HOUR,
        idle_gpu_hours=sum(r.idle_gpu_eq_seconds for r in rows) / HOUR,
        energy_kwh=None if energy is None else energy / JOULES_PER_KWH,
        co2_kg=None if co2 is None else co2 / 1000.0,
        allocations=len(rows),
        users=len({r.user for r in rows}),
        group=group,
        share=seconds / everything if everything > 0 else 0.0,
    )


def peak_demand(rows: Iterable[UsageRow], since: dt.datetime, until: dt.datetime) -> Peak:
    """The largest sum of GPU-equivalents held at one moment (each row's interval clipped to
    the window; an open allocation runs to ``until``). An allocation that ends exactly when
    another starts does not overlap it."""
    edges: list[tuple[dt.datetime, int, float]] = []
    for row in rows:
        start = max(row.started_at, since)
        end = min(row.ended_at or until, until)
        if end > start and row.gpu_equivalents > 0:
            edges.append((start, 1, row.gpu_equivalents))
            edges.append((end, 0, -row.gpu_equivalents))  # 0 sorts ends before starts
    best, when, held = 0.0, None, 0.0
    for moment, _kind, change in sorted(edges, key=lambda e: (e[0], e[1])):
        held += change
        if held > best + 1e-9:
            best, when = held, moment
    return Peak(round(best, 6), when)


def compute(
    rows: Sequence[UsageRow],
    period: Period,
    queue: QueueWaits,
    *,
    top_n: int,
    generated_at: dt.datetime,
) -> ReportFigures:
    """Everything the report shows, for ``rows`` (usage inside ``period``)."""
    used = [r for r in rows if r.gpu_eq_seconds > 0]
    everything = sum(r.gpu_eq_seconds for r in used)
    by_user: dict[str, list[UsageRow]] = defaultdict(list)
    by_group: dict[str, list[UsageRow]] = defaultdict(list)
    for row in used:
        by_user[row.user].append(row)
        by_group[row.group or NO_GROUP].append(row)
    users = [
        totals(name, mine, everything, max(mine, key=lambda r: r.started_at).group)
        for name, mine in by_user.items()
    ]
    groups = [totals(name, theirs, everything) for name, theirs in by_group.items()]
    order = lambda t: (-t.gpu_hours, t.name)  # noqa: E731
    return ReportFigures(
        period=period,
        generated_at=generated_at,
        total=totals("all", used, everything),
        users=tuple(sorted(users, key=order)),
        groups=tuple(sorted(groups, key=order)),
        peak=peak_demand(used, period.since, period.until),
        queue=queue,
        top_n=top_n,
    )
