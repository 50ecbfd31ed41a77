"""``ds01 usage --by container``: each container's GPU time, efficiency, energy and CO₂."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import TYPE_CHECKING

from ds01_accounting.sums import Sums
from ds01_accounting.usage import usage_rows

if TYPE_CHECKING:
    from ds01_core.api import Runtime


def per_container(
    runtime: Runtime,
    since: dt.datetime,
    until: dt.datetime,
    *,
    users: Collection[str] | None = None,
    groups: Collection[str] | None = None,
) -> tuple[list[Sums], Sums]:
    """Sums by ``user/container`` over the window (a container allocated twice is one line),
    from the allocations' own records clipped to the window, and the total."""
    sums: dict[str, Sums] = {}
    total = Sums("total")
    for row in usage_rows(runtime, since, until, users=users, groups=groups):
        part = Sums(
            f"{row.user}/{row.container}",
            1,
            row.gpu_eq_seconds,
            row.busy_gpu_eq_seconds or 0.0,
            row.known_gpu_eq_seconds,
            row.idle_gpu_eq_seconds,
            row.energy_joules,
            row.co2_grams,
        )
        sums.setdefault(part.key, Sums(part.key)).add(part)
        total.add(part)
    return sorted(sums.values(), key=lambda s: s.key), total
