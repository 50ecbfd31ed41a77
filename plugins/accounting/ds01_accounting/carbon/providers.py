"""The HTTP providers, each in its own documented response format.

Electricity Maps (v3), WattTime (v3) and the GB Carbon Intensity API.

Each ``fetch_*`` asks for the current intensity and, where the provider has one, the
forecast, and returns a :class:`Reading` in grams CO₂-eq per kWh. Anything missing or of the
wrong type in an answer is a :class:`ProviderError` naming the field, so that a changed API
is reported as such rather than recorded as a number. A failed forecast costs only the
forecast (``Reading.forecast_error``): the current value is what the usage records need.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import attrs

from ds01_accounting.carbon.config import CarbonConfig
from ds01_accounting.carbon.http_json import ProviderError, basic_auth, get_json
from ds01_accounting.carbon.model import GRAMS_PER_KWH_PER_LB_PER_MWH, Intensity, parse_time


@attrs.frozen
class Reading:
    """One answer from a source: the value now, the forecast (maybe empty) and, when the
    forecast could not be had, why."""

    now: Intensity
    forecast: tuple[Intensity, ...] = ()
    forecast_error: str | None = None


def read_secret(path: str | None, field: str) -> str:
    """The first line of a key or password file (root-only; never in the configuration)."""
    if path is None:
        raise ProviderError(f"{field} is not set")
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.readline().strip()
    except OSError as exc:
        raise ProviderError(f"cannot read {field} {path}: {exc.strerror or exc}") from None
    if not value:
        raise ProviderError(f"{field} {path} is empty")
    return value


def _field(data: Any, path: str, what: str) -> Any:
    """``data`` followed along ``a.b[0].c``; a missing step is a ProviderError naming it."""
    current = data
    for part in path.replace("[", ".[").split("."):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(current, list) or len(current) <= index:
                raise ProviderError(f"{what}: the answer has no {path} (expected a list)")
            current = current[index]
        else:
            if not isinstance(current, dict) or part not in current:
                raise ProviderError(f"{what}: the answer has no {path}")
            current = current[part]
    return current


def _number(value: Any, path: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProviderError(f"{what}: {path} is {value!r}, not a number")
    if value < 0:
        raise ProviderError(f"{what}: {path} is negative ({value})")
    return float(value)


def _time(value: Any, path: str, what: str) -> dt.datetime:
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError:
            pass
    raise ProviderError(f"{what}: {path} is {value!r}, not a time")


def _forecast(
    fetch: Callable[[], tuple[Intensity, ...]],
) -> tuple[tuple[Intensity, ...], str | None]:
    try:
        return fetch(), None
    except ProviderError as exc:
        return (), str(exc)
    except Exception as exc:  # an answer of an unforeseen shape costs only the forecast
        return (), f"forecast: {type(exc).__name__}: {exc}"


# -- Electricity Maps ---------------------------------------------------------------------------


def fetch_electricitymaps(cfg: CarbonConfig, now: dt.datetime) -> Reading:
    """``/v3/carbon-intensity/latest?zone=…`` (``carbonIntensity``, ``datetime``) and, when
    enabled, ``/v3/carbon-intensity/forecast`` (``forecast[].carbonIntensity``/``datetime``),
    with the key in the ``auth-token`` header."""
    em = cfg.electricitymaps
    token = read_secret(em.token_file, "electricitymaps.token_file")
    headers = {"auth-token": token}
    params = {"zone": em.zone, "emissionFactorType": em.emission_factor_type}
    timeout = float(cfg.timeout)
    what = "Electricity Maps latest"
    data = get_json(
        f"{cfg.url()}/v3/carbon-intensity/latest",
        params=params,
        headers=headers,
        timeout=timeout,
        what=what,
    )
    value = _number(_field(data, "carbonIntensity", what), "carbonIntensity", what)
    at = _time(_field(data, "datetime", what), "datetime", what)
    current = Intensity(value, f"electricitymaps:{em.zone}", at)

    def ahead() -> tuple[Intensity, ...]:
        label = "Electricity Maps forecast"
        body = get_json(
            f"{cfg.url()}/v3/carbon-intensity/forecast",
            params=params,
            headers=headers,
            timeout=timeout,
            what=label,
        )
        points = body.get("forecast", body.get("data")) if isinstance(body, dict) else None
        if not isinstance(points, list):
            raise ProviderError(f"{label}: the answer has no forecast list")
        return tuple(
            Intensity(
                _number(
                    _field(p, "carbonIntensity", label), f"forecast[{i}].carbonIntensity", label
                ),
                current.source,
                _time(_field(p, "datetime", label), f"forecast[{i}].datetime", label),
            )
            for i, p in enumerate(points)
        )

    if not em.forecast:
        return Reading(current)
    points, error = _forecast(ahead)
    return Reading(current, points, error)


# -- WattTime -----------------------------------------------------------------------------------

_WATTTIME_UNITS = {
    "lbs_co2_per_mwh": GRAMS_PER_KWH_PER_LB_PER_MWH,
    "g_co2_per_kwh": 1.0,
    "kg_co2_per_mwh": 1.0,
}


def fetch_watttime(cfg: CarbonConfig, now: dt.datetime, hours: int = 24) -> Reading:
    """A bearer token from ``/login`` (HTTP basic auth), then ``/v3/forecast`` for the region:
    ``data[].point_time``/``value`` in ``meta.units`` (``lbs_co2_per_mwh`` for ``co2_moer``,
    converted to g/kWh). The point in force now is the current value; the rest is the
    forecast. (``/v3/signal-index`` answers a percentile, not an intensity, so it is not used.)"""
    wt = cfg.watttime
    password = read_secret(wt.password_file, "watttime.password_file")
    timeout = float(cfg.timeout)
    login = get_json(
        f"{cfg.url()}/login",
        headers={"Authorization": basic_auth(wt.username, password)},
        timeout=timeout,
        what="WattTime login",
    )
    token = _field(login, "token", "WattTime login")
    if not isinstance(token, str) or not token:
        raise ProviderError("WattTime login: token is not a string")
    what = "WattTime forecast"
    body = get_json(
        f"{cfg.url()}/v3/forecast",
        params={"region": wt.region, "signal_type": wt.signal_type, "horizon_hours": str(hours)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
        what=what,
    )
    units = _field(body, "meta.units", what)
    factor = _WATTTIME_UNITS.get(units) if isinstance(units, str) else None
    if factor is None:
        raise ProviderError(
            f"{what}: meta.units is {units!r}, not an intensity (expected lbs_co2_per_mwh)"
        )
    data = _field(body, "data", what)
    if not isinstance(data, list) or not data:
        raise ProviderError(f"{what}: data is empty")
    source = f"watttime:{wt.region}"
    points = [
        Intensity(
            _number(_field(p, "value", what), f"data[{i}].value", what) * factor,
            source,
            _time(_field(p, "point_time", what), f"data[{i}].point_time", what),
        )
        for i, p in enumerate(data)
    ]
    points.sort(key=lambda p: p.at)
    started = [p for p in points if p.at <= now]
    current = started[-1] if started else points[0]
    return Reading(current, tuple(p for p in points if p.at > current.at))


# -- GB Carbon Intensity API --------------------------------------------------------------------


def _uk_value(entry: Any, index: int, what: str) -> float:
    intensity = _field(entry, "intensity", what)
    if not isinstance(intensity, dict):
        raise ProviderError(f"{what}: data[{index}].intensity is not an object")
    actual = intensity.get("actual")
    if actual is not None:
        return _number(actual, f"data[{index}].intensity.actual", what)
    return _number(_field(intensity, "forecast", what), f"data[{index}].intensity.forecast", what)


def fetch_uk(cfg: CarbonConfig, now: dt.datetime) -> Reading:
    """``/intensity`` (``data[0].intensity.actual``, or ``forecast`` while the half-hour's
    actual is not yet known; ``data[0].from``) and ``/intensity/{from}/fw24h`` for the next
    24 hours (``data[].intensity.forecast``). No key."""
    timeout = float(cfg.timeout)
    what = "Carbon Intensity API"
    body = get_json(f"{cfg.url()}/intensity", timeout=timeout, what=what)
    entry = _field(body, "data[0]", what)
    current = Intensity(
        _uk_value(entry, 0, what), "uk", _time(_field(entry, "from", what), "data[0].from", what)
    )

    def ahead() -> tuple[Intensity, ...]:
        label = "Carbon Intensity API forecast"
        start = current.at.strftime("%Y-%m-%dT%H:%MZ")
        answer = get_json(f"{cfg.url()}/intensity/{start}/fw24h", timeout=timeout, what=label)
        data = _field(answer, "data", label)
        if not isinstance(data, list):
            raise ProviderError(f"{label}: data is not a list")
        return tuple(
            Intensity(
                _number(
                    _field(e, "intensity.forecast", label), f"data[{i}].intensity.forecast", label
                ),
                "uk",
                _time(_field(e, "from", label), f"data[{i}].from", label),
            )
            for i, e in enumerate(data)
        )

    points, error = _forecast(ahead)
    return Reading(current, tuple(p for p in points if p.at > current.at), error)


FETCHERS: dict[str, Callable[[CarbonConfig, dt.datetime], Reading]] = {
    "electricitymaps": fetch_electricitymaps,
    "watttime": fetch_watttime,
    "uk": fetch_uk,
}
