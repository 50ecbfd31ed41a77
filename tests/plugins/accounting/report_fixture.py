"""The fixture month for the report tests: October 2026 (UTC), six allocations and the GPU
queue's events, with the figures worked out by hand beside them.

Hand figures (GPU-equivalent-seconds unless said):

- ds01ta/physics: train 1.0 x 10h = 36000 (busy 27000, known 36000, idle 3600, 10 kWh, 2 kg);
  eval 0.5 x 4h = 7200 (MIG, utilisation unknown; 0.5 kWh, 0.1 kg)
- ds01tb/physics: sim 2.0 x 12h = 86400 (busy 43200, known 86400, idle 21600, 15 kWh, 3 kg)
- ds01tc/bio: bio1 from 30 September 20:00 to 1 October 04:00: 1.0 x 4h inside = 14400 (busy
  7200, known 14400, no energy); open from 31 October 18:00, still running: 1.0 x 6h = 21600
  (busy 21600, known 21600, 2 kWh, 0.4 kg)
- ds01td (no group): x 0.25 x 30m = 450 (busy 0, known 450, idle 450)

Total 166050 s = 46.125 GPU-h; busy 99000 of known 158850; idle 25650 s = 7.125 h; 27.5 kWh;
5.5 kg; 4 active users. Peak: 2.75 GPU-eq at 5 October 15:00 (eval 0.5 + sim 2.0 + x 0.25).
Queue: 4 requests queued in October (one queued on 30 September is not October's), 3 served
after 600 s, 5400 s and 1800 s (the last one served on 1 November), 1 never: median 1800,
longest 5400 (ds01tb, queued 7 October 10:00).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

UTC = dt.UTC
SINCE = dt.datetime(2026, 10, 1, tzinfo=UTC)
UNTIL = dt.datetime(2026, 11, 1, tzinfo=UTC)


def t(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


#: each allocation as it really ran (start, end or None), and what it measured inside October
ALLOCATIONS: list[dict[str, Any]] = [
    dict(user="ds01ta", group="physics", container="train", weight=1.0,
         start=t(10, 1, 0), end=t(10, 1, 10), seconds=36000.0, busy=27000.0, known=36000.0,
         idle=3600.0, energy=3.6e7, co2=2000.0),
    dict(user="ds01ta", group="physics", container="eval", weight=0.5,
         start=t(10, 5, 12), end=t(10, 5, 16), seconds=7200.0, busy=None, known=0.0,
         idle=0.0, energy=1.8e6, co2=100.0),
    dict(user="ds01tb", group="physics", container="sim", weight=2.0,
         start=t(10, 5, 14), end=t(10, 6, 2), seconds=86400.0, busy=43200.0, known=86400.0,
         idle=21600.0, energy=5.4e7, co2=3000.0),
    dict(user="ds01tc", group="bio", container="bio1", weight=1.0,
         start=t(9, 30, 20), end=t(10, 1, 4), seconds=14400.0, busy=7200.0, known=14400.0,
         idle=0.0, energy=None, co2=None),
    dict(user="ds01tc", group="bio", container="open", weight=1.0,
         start=t(10, 31, 18), end=None, seconds=21600.0, busy=21600.0, known=21600.0,
         idle=0.0, energy=7.2e6, co2=400.0),
    dict(user="ds01td", group=None, container="x", weight=0.25,
         start=t(10, 5, 15), end=t(10, 5, 15, 30), seconds=450.0, busy=0.0, known=450.0,
         idle=450.0, energy=None, co2=None),
]  # fmt: skip


def queue_events() -> list[dict[str, Any]]:
    """Audit-log records (as the log holds them) of the GPU queue around October."""

    def event(kind: str, user: str, container: str, moment: dt.datetime) -> dict[str, Any]:
        return {
            "timestamp": moment.isoformat().replace("+00:00", "Z"),
            "event_type": kind,
            "user": user,
            "source": "allocation",
            "details": {"container": container},
            "schema_version": 1,
        }

    return [
        event("gpu.queued", "ds01tb", "early", t(9, 30, 23)),
        event("gpu.allocated", "ds01tb", "early", t(10, 1, 0, 30)),
        event("gpu.queued", "ds01ta", "train2", t(10, 3, 9)),
        event("gpu.allocated", "ds01tb", "train2", t(10, 3, 9, 5)),  # another user's: no match
        event("gpu.allocated", "ds01ta", "train2", t(10, 3, 9, 10)),
        event("gpu.queued", "ds01tb", "sim2", t(10, 7, 10)),
        event("gpu.allocated", "ds01tb", "sim2", t(10, 7, 11, 30)),
        event("gpu.queued", "ds01tc", "q", t(10, 8, 8)),
        event("gpu.allocated", "ds01ta", "train2", t(10, 20, 12)),  # not queued
        event("gpu.queued", "ds01ta", "late", t(10, 31, 23, 50)),
        event("gpu.allocated", "ds01ta", "late", t(11, 1, 0, 20)),
    ]


HAND = {
    "gpu_hours": 46.125,
    "busy_gpu_hours": 99000 / 3600,
    "known_gpu_hours": 158850 / 3600,
    "efficiency": 99000 / 158850,
    "idle_gpu_hours": 7.125,
    "energy_kwh": 27.5,
    "co2_kg": 5.5,
    "allocations": 6,
    "active_users": 4,
    "users": {"ds01tb": 24.0, "ds01ta": 12.0, "ds01tc": 10.0, "ds01td": 0.125},
    "groups": {"physics": 36.0, "bio": 10.0, "(no group)": 0.125},
    "peak": (2.75, "2026-10-05T15:00:00Z"),
    "queue": {"requests": 4, "served": 3, "not_served": 1, "median_seconds": 1800.0,
              "max_seconds": 5400.0, "max_user": "ds01tb",
              "max_queued_at": "2026-10-07T10:00:00Z"},
}  # fmt: skip
