"""Carbon-intensity providers on loopback: an HTTP server answering each provider's documented
format, with the failures a real one has (401, 500, a hang past the client's timeout, a body
that is not JSON, a field missing), and a record of every request it got.

The bodies follow the providers' documentation: Electricity Maps v3 (``/v3/carbon-intensity/
latest`` and ``/forecast``, ``auth-token`` header), WattTime v3 (``/login`` with basic auth
answering ``{"token"}``, ``/v3/forecast`` with ``data[].point_time/value`` and
``meta.units = lbs_co2_per_mwh``) and the GB Carbon Intensity API (``/intensity``,
``/intensity/{from}/fw24h``: ``data[].from/to/intensity.forecast/actual/index``).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


def iso(moment: dt.datetime, style: str = "ms") -> str:
    """A time as each provider writes it: ``ms`` (Electricity Maps), ``offset`` (WattTime),
    ``minute`` (GB Carbon Intensity API)."""
    moment = moment.astimezone(dt.UTC)
    if style == "ms":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if style == "offset":
        return moment.replace(microsecond=0).isoformat()
    return moment.strftime("%Y-%m-%dT%H:%MZ")


@attrs.define
class Answer:
    """What the server answers on one path: a status and a JSON body (or raw bytes), maybe
    after a sleep."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    sleep: float = 0.0


@attrs.frozen
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class ProviderServer:
    """``answers[path]`` is served for ``GET path`` (query ignored); anything else is a 404."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[Request] = []
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                split = urllib.parse.urlsplit(self.path)
                owner.requests.append(
                    Request(
                        split.path,
                        dict(urllib.parse.parse_qsl(split.query)),
                        {k.lower(): v for k, v in self.headers.items()},
                    )
                )
                answer = owner.answers.get(split.path, Answer(404, {"error": "not found"}))
                if answer.sleep:
                    time.sleep(answer.sleep)
                body = answer.raw if answer.raw is not None else json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _bind(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A server on a free loopback port in carbon's range (199xx), else any free port."""
    for port in range(19900, 20000):
        try:
            return ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            continue
    return ThreadingHTTPServer(("127.0.0.1", 0), handler)


@contextmanager
def provider_server() -> Iterator[ProviderServer]:
    provider = ProviderServer()
    server = _bind(provider.handler())
    server.daemon_threads = True
    provider.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()


def free_port_closed() -> int:
    """A loopback port nothing listens on (a provider that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- each provider's documented answers ---------------------------------------------------------


def hour(now: dt.datetime, offset: int = 0) -> dt.datetime:
    return now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=offset)


def electricitymaps_latest(value: float, at: dt.datetime, zone: str = "DE") -> dict[str, Any]:
    return {
        "zone": zone,
        "carbonIntensity": value,
        "datetime": iso(at),
        "updatedAt": iso(at + dt.timedelta(minutes=42)),
        "createdAt": iso(at - dt.timedelta(days=3)),
        "emissionFactorType": "lifecycle",
        "isEstimated": True,
        "estimationMethod": "TIME_SLICER_AVERAGE",
    }


def electricitymaps_forecast(
    values: list[float], start: dt.datetime, zone: str = "DE"
) -> dict[str, Any]:
    return {
        "zone": zone,
        "forecast": [
            {"carbonIntensity": v, "datetime": iso(start + dt.timedelta(hours=i))}
            for i, v in enumerate(values)
        ],
        "updatedAt": iso(start - dt.timedelta(minutes=17)),
    }


def watttime_forecast(
    values_lbs: list[float], start: dt.datetime, region: str = "CAISO_NORTH"
) -> dict[str, Any]:
    """Five-minute points from ``start`` in lbs CO₂/MWh, as ``/v3/forecast`` answers."""
    return {
        "data": [
            {"point_time": iso(start + dt.timedelta(minutes=5 * i), "offset"), "value": v}
            for i, v in enumerate(values_lbs)
        ],
        "meta": {
            "data_point_period_seconds": 300,
            "region": region,
            "warnings": [],
            "signal_type": "co2_moer",
            "model": {"date": "2023-03-01"},
            "units": "lbs_co2_per_mwh",
            "generated_at_period_seconds": 300,
            "generated_at": iso(start, "offset"),
        },
    }


def uk_entry(start: dt.datetime, forecast: float, actual: float | None) -> dict[str, Any]:
    return {
        "from": iso(start, "minute"),
        "to": iso(start + dt.timedelta(minutes=30), "minute"),
        "intensity": {"forecast": forecast, "actual": actual, "index": "moderate"},
    }


def half_hour(now: dt.datetime) -> dt.datetime:
    return now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0)
