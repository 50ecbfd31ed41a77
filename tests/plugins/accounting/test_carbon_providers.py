"""Each carbon-intensity provider against a server on loopback answering in its documented
format: the value and forecast read (and converted: WattTime's lbs/MWh), the key sent as the
provider wants it, and every failure (401, 500, a hang past the timeout, a body that is not
JSON, a missing field) falling back to the last good value with one warning, or to the
configured value when there has never been one."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ds01_accounting.carbon import forecast, intensity_now, status
from ds01_core.domain.audit_log import EventLog
from tests.plugins.accounting.carbon_fixtures import Clock, carbon_runtime, secret
from tests.plugins.accounting.carbon_servers import (
    Answer,
    ProviderServer,
    electricitymaps_forecast,
    electricitymaps_latest,
    half_hour,
    hour,
    provider_server,
    uk_entry,
    watttime_forecast,
)

LB = 0.45359237  # g/kWh per lb/MWh


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with provider_server() as provider:
        yield provider


@pytest.fixture
def clock() -> Clock:
    return Clock()


def electricitymaps(server: ProviderServer, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "source": "electricitymaps",
        "base_url": server.url,
        "timeout": "1s",
        "electricitymaps": {"zone": "DE", "token_file": secret(tmp_path, "em.token", "em-key-1")},
        **extra,
    }


def watttime(server: ProviderServer, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "source": "watttime",
        "base_url": server.url,
        "timeout": "1s",
        "watttime": {
            "region": "CAISO_NORTH",
            "username": "ds01lab",
            "password_file": secret(tmp_path, "wt.password", "s3cret:pw"),
        },
        **extra,
    }


def uk(server: ProviderServer, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"source": "uk", "base_url": server.url, "timeout": "1s", **extra}


# -- the documented answers ---------------------------------------------------------------------


def serve_electricitymaps(server: ProviderServer, now: dt.datetime, value: float = 302) -> None:
    server.answers["/v3/carbon-intensity/latest"] = Answer(
        body=electricitymaps_latest(value, hour(now))
    )
    server.answers["/v3/carbon-intensity/forecast"] = Answer(
        body=electricitymaps_forecast([310, 290, 120, 180], hour(now, 1))
    )


def serve_watttime(server: ProviderServer, now: dt.datetime, first_lbs: float = 1000.0) -> None:
    start = now.replace(second=0) - dt.timedelta(minutes=now.minute % 5)
    server.answers["/login"] = Answer(body={"token": "wt-token-abc"})
    server.answers["/v3/forecast"] = Answer(
        body=watttime_forecast([first_lbs] + [800.0 + i for i in range(1, 288)], start)
    )


def serve_uk(server: ProviderServer, now: dt.datetime, actual: float | None = 263) -> None:
    start = half_hour(now)
    server.answers["/intensity"] = Answer(body={"data": [uk_entry(start, 266, actual)]})
    ahead = [uk_entry(start + dt.timedelta(minutes=30 * i), 200 + i, None) for i in range(48)]
    server.answers[f"/intensity/{start:%Y-%m-%dT%H:%MZ}/fw24h"] = Answer(body={"data": ahead})


def test_electricitymaps_latest_and_forecast_with_the_key_in_auth_token(
    server: ProviderServer, tmp_config: Callable[..., Path], tmp_path: Path, clock: Clock
) -> None:
    serve_electricitymaps(server, clock.now)
    runtime = carbon_runtime(tmp_config, electricitymaps(server, tmp_path), clock)
    now = intensity_now(runtime)
    assert now is not None
    assert (now.grams_per_kwh, now.source, now.at, now.stale) == (
        302.0,
        "electricitymaps:DE",
        hour(clock.now),
        False,
    )
    [latest, ahead] = server.requests
    assert latest.path == "/v3/carbon-intensity/latest"
    assert latest.query == {"zone": "DE", "emissionFactorType": "lifecycle"}
    assert latest.headers["auth-token"] == "em-key-1"
    assert (
        ahead.path == "/v3/carbon-intensity/forecast" and ahead.headers["auth-token"] == "em-key-1"
    )
    points = forecast(runtime)
    assert [(p.grams_per_kwh, p.at) for p in points] == [
        (v, hour(clock.now, i + 1)) for i, v in enumerate([310.0, 290.0, 120.0, 180.0])
    ]
    assert forecast(runtime, hours=2) == points[:2]


def test_electricitymaps_without_the_forecast_endpoint_keeps_the_current_value(
    server: ProviderServer, tmp_config: Callable[..., Path], tmp_path: Path, clock: Clock
) -> None:
    serve_electricitymaps(server, clock.now)
    server.answers["/v3/carbon-intensity/forecast"] = Answer(403, {"message": "not in your plan"})
    runtime = carbon_runtime(tmp_config, electricitymaps(server, tmp_path), clock)
    now = intensity_now(runtime)
    assert now is not None and (now.grams_per_kwh, now.stale) == (302.0, False)
    assert forecast(runtime) == []
    shown = status(runtime)
    assert shown["error"] is None
    assert (
        shown["forecast_error"]
        == "Electricity Maps forecast: HTTP 403 Forbidden (the key may not cover this endpoint)"
    )


def test_watttime_logs_in_with_basic_auth_and_converts_lbs_per_mwh(
    server: ProviderServer, tmp_config: Callable[..., Path], tmp_path: Path, clock: Clock
) -> None:
    serve_watttime(server, clock.now, first_lbs=1000.0)
    runtime = carbon_runtime(tmp_config, watttime(server, tmp_path), clock)
    now = intensity_now(runtime)
    assert now is not None
    assert now.grams_per_kwh == pytest.approx(453.59237)
    assert now.source == "watttime:CAISO_NORTH" and not now.stale
    login, data = server.requests
    assert login.path == "/login"
    # "ds01lab:s3cret:pw" in base64: the password's own colon survives
    assert login.headers["authorization"] == "Basic ZHMwMWxhYjpzM2NyZXQ6cHc="
    assert data.path == "/v3/forecast"
    assert data.headers["authorization"] == "Bearer wt-token-abc"
    assert data.query == {"region": "CAISO_NORTH", "signal_type": "co2_moer", "horizon_hours": "24"}
    points = forecast(runtime)
    assert points[0].grams_per_kwh == pytest.approx(801 * LB)
    assert points[0].at == now.at + dt.timedelta(minutes=5)
    assert all(p.at > clock.now for p in points)
    assert points[-1].at <= clock.now + dt.timedelta(hours=24)


def test_watttime_refuses_a_percentile_as_an_intensity(
    server: ProviderServer, tmp_config: Callable[..., Path], tmp_path: Path, clock: Clock
) -> None:
    serve_watttime(server, clock.now)
    body = server.answers["/v3/forecast"].body
    body["meta"]["units"] = "percentile"
    runtime = carbon_runtime(tmp_config, watttime(server, tmp_path, grams_per_kwh=250), clock)
    now = intensity_now(runtime)
    assert now is not None and (now.grams_per_kwh, now.source, now.stale) == (
        250.0,
        "fallback",
        True,
    )
    assert "meta.units is 'percentile', not an intensity" in status(runtime)["error"]


def test_uk_actual_then_forecast_without_a_key(
    server: ProviderServer, tmp_config: Callable[..., Path], tmp_path: Path, clock: Clock
) -> None:
    serve_uk(server, clock.now, actual=263)
    runtime = carbon_runtime(tmp_config, uk(server, tmp_path), clock)
    now = intensity_now(runtime)
    assert now is not None
    assert (now.grams_per_kwh, now.source, now.at) == (263.0, "uk", half_hour(clock.now))
    start = half_hour(clock.now)
    assert server.paths() == ["/intensity", f"/intensity/{start:%Y-%m-%dT%H:%MZ}/fw24h"]
    assert "authorization" not in server.requests[0].headers
    points = forecast(runtime)
    # the current half-hour is "now", not the forecast; the rest within 24 h
    assert points[0].at == start + dt.timedelta(minutes=30) and points[0].grams_per_kwh == 201
    assert len(points) == 47
    assert all(clock.now <= p.at <= clock.now + dt.timedelta(hours=24) for p in points)


def test_uk_uses_the_forecast_while_the_actual_is_not_known(
    server: ProviderServer, tmp_config: Callable[..., Path], tmp_path: Path, clock: Clock
) -> None:
    serve_uk(server, clock.now, actual=None)
    runtime = carbon_runtime(tmp_config, uk(server, tmp_path), clock)
    now = intensity_now(runtime)
    assert now is not None and now.grams_per_kwh == 266.0


# -- failures -----------------------------------------------------------------------------------

PROVIDERS = {
    "electricitymaps": (
        electricitymaps,
        serve_electricitymaps,
        "/v3/carbon-intensity/latest",
        "Electricity Maps latest",
    ),
    "watttime": (watttime, serve_watttime, "/v3/forecast", "WattTime forecast"),
    "uk": (uk, serve_uk, "/intensity", "Carbon Intensity API"),
}

FAILURES = {
    "401": (
        Answer(401, {"message": "Invalid token"}),
        "HTTP 401 Unauthorized (check the key or password file)",
    ),
    "500": (Answer(500, {"error": "internal"}), "HTTP 500 Internal Server Error"),
    "timeout": (Answer(body={}, sleep=3.0), "no answer within 1s"),
    "not-json": (Answer(raw=b"<html>502 Bad Gateway</html>"), "the answer is not JSON"),
    "missing-field": (Answer(body={"zone": "DE", "data": []}), "the answer has no"),
}


GOOD = {"electricitymaps": 302.0, "watttime": 1000.0 * LB, "uk": 263.0}


@pytest.mark.parametrize("failure", sorted(FAILURES))
@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_a_failure_with_no_good_value_yet_uses_the_configured_fallback(
    name: str,
    failure: str,
    server: ProviderServer,
    tmp_config: Callable[..., Path],
    tmp_path: Path,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    section, serve, path, what = PROVIDERS[name]
    serve(server, clock.now)
    answer, message = FAILURES[failure]
    server.answers[path] = answer
    runtime = carbon_runtime(tmp_config, section(server, tmp_path, grams_per_kwh=321), clock)
    with caplog.at_level(logging.WARNING, logger="ds01_accounting"):
        started = time.monotonic()
        now = intensity_now(runtime)
        took = time.monotonic() - started
    assert now is not None
    assert (now.grams_per_kwh, now.source, now.stale) == (321.0, "fallback", True)
    assert took < 2.5, f"a cycle waited {took:.1f}s for the provider (timeout 1s)"
    error = status(runtime)["error"]
    assert error.startswith(what) and message in error, error
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        len(warnings) == 1
        and message in warnings[0]
        and "using the configured 321 g/kWh" in warnings[0]
    )


@pytest.mark.parametrize("failure", sorted(FAILURES))
@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_a_failure_keeps_the_last_good_value_marked_stale_and_warns_once(
    name: str,
    failure: str,
    server: ProviderServer,
    tmp_config: Callable[..., Path],
    tmp_path: Path,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    section, serve, path, _what = PROVIDERS[name]
    serve(server, clock.now)
    runtime = carbon_runtime(
        tmp_config, section(server, tmp_path, grams_per_kwh=999, cache_ttl="15m"), clock
    )
    good = intensity_now(runtime)
    assert good is not None and good.grams_per_kwh == pytest.approx(GOOD[name])
    good_forecast = forecast(runtime)

    answer, message = FAILURES[failure]
    server.answers[path] = answer
    with caplog.at_level(logging.WARNING, logger="ds01_accounting"):
        for _ in range(2):  # two attempts, one TTL apart: one outage, one warning
            clock.advance(15 * 60)
            kept = intensity_now(runtime)
            assert kept is not None
            assert kept.grams_per_kwh == good.grams_per_kwh and kept.at == good.at
            assert kept.stale is True and kept.source == good.source
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert message in warnings[0] and "marked stale" in warnings[0]
    shown = status(runtime)
    assert shown["intensity"]["stale"] is True and message in shown["error"]
    assert shown["failing_since"] is not None
    assert all(p.stale for p in forecast(runtime, hours=48))
    assert len(good_forecast) > 0

    serve(server, clock.now)  # the provider answers again
    clock.advance(15 * 60)
    back = intensity_now(runtime)
    assert back is not None and back.stale is False and status(runtime)["error"] is None
    events = EventLog(runtime.config.paths.event_log_path).query(type_prefix="accounting.carbon")
    assert [e["event_type"] for e in events] == [
        "accounting.carbon_unavailable",
        "accounting.carbon_recovered",
    ]
    assert message in events[0]["details"]["error"]


def test_a_provider_that_is_down_and_an_unreadable_key_are_errors_not_exceptions(
    tmp_config: Callable[..., Path], tmp_path: Path, clock: Clock
) -> None:
    from tests.plugins.accounting.carbon_servers import free_port_closed

    down = f"http://127.0.0.1:{free_port_closed()}"
    runtime = carbon_runtime(tmp_config, {"source": "uk", "base_url": down, "timeout": "1s"}, clock)
    assert intensity_now(runtime) is None  # no fallback configured: no figure
    assert forecast(runtime) == []
    assert "Carbon Intensity API: cannot connect" in status(runtime)["error"]

    missing = {
        "source": "electricitymaps",
        "base_url": down,
        "grams_per_kwh": 200,
        "electricitymaps": {"zone": "FR", "token_file": str(tmp_path / "absent.token")},
    }
    other = carbon_runtime(tmp_config, missing, clock)
    now = intensity_now(other)
    assert now is not None and now.source == "fallback"
    assert status(other)["error"] == (
        f"cannot read electricitymaps.token_file {tmp_path / 'absent.token'}: No such file or directory"
    )


def test_the_cache_file_holds_no_secret(
    server: ProviderServer, tmp_config: Callable[..., Path], tmp_path: Path, clock: Clock
) -> None:
    serve_watttime(server, clock.now)
    runtime = carbon_runtime(tmp_config, watttime(server, tmp_path), clock)
    assert intensity_now(runtime) is not None
    text = (Path(runtime.config.paths.state_dir) / "carbon-intensity.json").read_text()
    assert "s3cret" not in text and "wt-token-abc" not in text
    assert json.loads(text)["now"]["source"] == "watttime:CAISO_NORTH"
