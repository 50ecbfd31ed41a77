"""``gpu.health``: each GPU's health as the daemon last concluded it, for everyone to see.

GPU health is not private (it names no user or container), so every caller may ask. The answer
comes from the ``gpu_health`` table the daemon's ``gpu-health`` step writes every full cycle; it
is empty until that step first ran, and ``stale`` once the daemon has not written it for three
cycle intervals (ds01d stopped, or the GPUs unavailable since).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from ds01_core.domain.model import utc_text
from ds01_core.domain.state import gpu_health as table
from ds01_core.services.errors import Unavailable
from ds01_core.services.operations import Operation, ServiceContext

#: intervals without a write after which the answer is called stale
STALE_CYCLES = 3


def _text(moment: dt.datetime | None) -> str | None:
    return utc_text(moment) if moment is not None else None


def health(ctx: ServiceContext) -> dict[str, Any]:
    """Every GPU's state, reasons (code and words), since when, drained or not, last readings."""
    runtime = ctx.runtime
    try:
        stored = table.load(runtime.state.db)
    except (OSError, sqlite3.Error) as exc:
        raise Unavailable(f"cannot read the state store: {exc}") from None
    checked = max((s.updated_at for s in stored.values()), default=None)
    limit = STALE_CYCLES * float(runtime.config.lifecycle.interval)
    stale = checked is not None and (runtime.now() - checked).total_seconds() > limit
    gpus = []
    for entry in stored.values():
        h = entry.known.health
        gpus.append(
            {
                "index": h.index,
                "uuid": h.uuid,
                "state": h.state,
                "drained": h.drained,
                "since": _text(h.since),
                "reasons": table.reasons_json(h),
                "updated_at": _text(entry.updated_at),
                "telemetry": table.telemetry_json(h.telemetry) if h.telemetry else None,
            }
        )
    return {
        "checked_at": _text(checked),
        "stale": stale,
        "drain": list(runtime.config.gpu.health.drain),
        "gpus": gpus,
    }


OPERATIONS = (
    Operation(
        "gpu.health",
        "GET",
        "/v1/gpus/health",
        health,
        summary="Each GPU's health (ok, degraded, unhealthy) with the reasons, and its drain.",
    ),
)
