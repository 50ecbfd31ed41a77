"""Carbon intensity of the grid (grams CO₂-eq per kWh) from the configured source.

The interface the accounting cycle and the commands use (fixed; see docs/carbon.md):

- :func:`intensity_now` ``(runtime) -> Intensity | None``: the value in force now, or None
  when carbon is not configured (``source: none``) or nothing is known yet and no fallback is
  configured;
- :func:`forecast` ``(runtime, hours=24) -> list[Intensity]``: the values ahead, empty where
  the source has none;
- :class:`Intensity`: ``grams_per_kwh``, ``source``, ``at``, ``stale``.

Neither raises, and neither blocks a cycle for long: a provider is asked at most once per
``cache_ttl`` (by all processes together), each request bounded by ``timeout``; a failure
keeps the last good value, marked stale, or the configured ``grams_per_kwh`` when there has
never been one.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import attrs

from ds01_accounting.carbon.config import CarbonConfig
from ds01_accounting.carbon.model import Intensity

if TYPE_CHECKING:
    from ds01_core.api import Runtime

__all__ = ["CarbonConfig", "Intensity", "carbon_config", "forecast", "intensity_now", "status"]

log = logging.getLogger(__name__)


def carbon_config(runtime: Runtime) -> CarbonConfig | None:
    """``plugins.accounting.carbon``, or None when the plugin has no section."""
    section = runtime.plugin_config("accounting")
    cfg = getattr(section, "carbon", None)
    return cfg if isinstance(cfg, CarbonConfig) else None


def _fallback(cfg: CarbonConfig, now: dt.datetime) -> Intensity | None:
    if cfg.grams_per_kwh is None:
        return None
    return Intensity(cfg.grams_per_kwh, "fallback", now, stale=True)


def _now(runtime: Runtime, cfg: CarbonConfig) -> tuple[Intensity | None, dict[str, Any]]:
    """The value in force, and what ``carbon status`` says about how it was had."""
    from ds01_accounting.carbon.schedule_source import schedule_value

    now = runtime.now()
    if cfg.source == "none":
        return None, {}
    if cfg.source == "fixed":
        value = cfg.grams_per_kwh
        return (None if value is None else Intensity(value, "fixed", now)), {}
    if cfg.source == "schedule":
        value, error = schedule_value(runtime, cfg, now)
        if value is None:
            return _fallback(cfg, now), {"error": error}
        return Intensity(value, "schedule", now), {"error": error}
    from ds01_accounting.carbon.cache import current_entry

    entry = current_entry(runtime, cfg)
    info = {
        "fetched_at": entry.fetched_at,
        "attempted_at": entry.attempted_at,
        "error": entry.error,
        "failing_since": entry.failing_since,
        "forecast_error": entry.forecast_error,
    }
    if entry.now is None:
        return _fallback(cfg, now), info
    return attrs.evolve(entry.now, stale=entry.error is not None), info


def intensity_now(runtime: Runtime) -> Intensity | None:
    """The carbon intensity in force now (see the module docstring). Never raises."""
    try:
        cfg = carbon_config(runtime)
        return None if cfg is None else _now(runtime, cfg)[0]
    except Exception:
        log.exception("carbon intensity: unexpected failure")
        return None


def _ahead(runtime: Runtime, cfg: CarbonConfig, hours: int) -> list[Intensity]:
    now = runtime.now()
    end = now + dt.timedelta(hours=hours)
    if cfg.source == "schedule":
        from ds01_accounting.carbon.schedule_source import schedule_forecast

        return schedule_forecast(runtime, cfg, now, hours)
    if cfg.source in ("none", "fixed"):
        return []
    from ds01_accounting.carbon.cache import current_entry

    entry = current_entry(runtime, cfg)
    stale = entry.error is not None
    return [attrs.evolve(p, stale=stale) for p in entry.forecast if now <= p.at <= end]


def forecast(runtime: Runtime, hours: int = 24) -> list[Intensity]:
    """The values ahead within ``hours``, oldest first; empty where the source has none.
    Never raises."""
    try:
        cfg = carbon_config(runtime)
        return [] if cfg is None else _ahead(runtime, cfg, hours)
    except Exception:
        log.exception("carbon intensity forecast: unexpected failure")
        return []


def status(runtime: Runtime, hours: int = 24) -> dict[str, Any]:
    """What ``ds01 carbon status`` shows: the source, the value now with its age and whether it
    is stale, the last error, and the forecast."""
    from ds01_core.api import utc_text

    cfg = carbon_config(runtime)
    if cfg is None or cfg.source == "none":
        return {"source": "none", "intensity": None, "forecast": [], "error": None}
    current, info = _now(runtime, cfg)
    now = runtime.now()
    fetched = info.get("fetched_at")
    age_from = fetched or (current.at if current else None)
    result: dict[str, Any] = {
        "source": cfg.source,
        "intensity": None if current is None else current.to_json(),
        "age_seconds": None
        if age_from is None
        else max(0, round((now - age_from).total_seconds())),
        "ttl_seconds": float(cfg.cache_ttl)
        if cfg.source in ("electricitymaps", "watttime", "uk")
        else None,
        "forecast": [p.to_json() for p in _ahead(runtime, cfg, hours)],
        "error": info.get("error"),
        "forecast_error": info.get("forecast_error"),
    }
    for name in ("fetched_at", "attempted_at", "failing_since"):
        value = info.get(name)
        result[name] = None if value is None else utc_text(value)
    return result
