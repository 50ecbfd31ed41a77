"""What a carbon-intensity source answers: :class:`Intensity`, and its JSON form.

One value type for every source (fixed, schedule, the HTTP providers), so that the usage
records, the reports and ``ds01 carbon status`` never need to know where a figure came from
beyond its ``source`` name.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from ds01_core.api import utc_text

#: grams per kWh in one pound per MWh (WattTime's unit): 453.59237 g / 1000 kWh
GRAMS_PER_KWH_PER_LB_PER_MWH = 0.45359237


@attrs.frozen
class Intensity:
    """Grams of CO₂-equivalent per kWh, where the figure came from, the moment it applies to
    (the provider's own time for its interval, or when it was read), and whether it is an
    old value kept because the source failed (or the configured fallback)."""

    grams_per_kwh: float
    source: str
    at: dt.datetime
    stale: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "grams_per_kwh": self.grams_per_kwh,
            "source": self.source,
            "at": utc_text(self.at),
            "stale": self.stale,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Intensity:
        """The inverse of :meth:`to_json` (the cache file); raises on a malformed entry."""
        return cls(
            grams_per_kwh=float(data["grams_per_kwh"]),
            source=str(data["source"]),
            at=parse_time(str(data["at"])),
            stale=bool(data.get("stale", False)),
        )


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 moment as the providers write it (``2018-01-20T12:00Z``,
    ``2019-05-21T00:00:00.000Z``, ``2026-04-01T00:00:00+00:00``), in UTC; naive means UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)
