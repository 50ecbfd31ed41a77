"""Shared by the alert tests: the shipped files, real binaries, payloads, a runtime whose notify
plugin posts to a Teams-format webhook and e-mails root, and an HTTP server around
:func:`ds01_prometheus.alert_receiver.receive` (until the exporter's own server serves it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from ds01_prometheus.alert_receiver import PATH, receive
from ds01_prometheus.alert_receiver_config import AlertReceiverConfig

from ds01_core.framework.runtime import Runtime
from tests.conftest import unavailable

#: the shipped files, as installed with the plugin (package data)
SHIPPED = Path(str(resources.files("ds01_prometheus") / "shipped"))
RULES = SHIPPED / "rules"
ALERTMANAGER = SHIPPED / "alertmanager"
ADMINS = "admins@example.org"


def binary(name: str) -> str:
    """A Debian monitoring binary (scripts/ci/setup-monitoring.sh): skipped locally without
    it, a failure under CI=true."""
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed (bash scripts/ci/setup-monitoring.sh)")
        raise AssertionError("unreachable")
    return found


def run(argv: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def free_port() -> int:
    """A free loopback port (the alert tests' own range, 194xx, when one is free)."""
    for port in range(19400 + os.getpid() % 50, 19500):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alert(
    name: str,
    *,
    status: str = "firing",
    severity: str = "critical",
    summary: str = "",
    runbook: str = "",
    starts_at: str = "2026-11-30T12:00:00.123456789Z",
    ends_at: str = "0001-01-01T00:00:00Z",
    **labels: str,
) -> dict[str, Any]:
    """One alert as Alertmanager's webhook sends it."""
    return {
        "status": status,
        "labels": {"alertname": name, "severity": severity, **labels},
        "annotations": {"summary": summary, "runbook": runbook},
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": "0123456789abcdef",
    }


def payload(alerts: list[dict[str, Any]], status: str | None = None) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) around ``alerts``."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{topic="gpu-health"}',
        "truncatedAlerts": 0,
        "status": status or ("firing" if firing else "resolved"),
        "receiver": "ds01",
        "groupLabels": {"topic": "gpu-health"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": alerts,
    }


def notify_section(webhook_url: str, smtp_port: int, user: str = "root") -> dict[str, Any]:
    """``plugins.notify``: e-mail (``user`` → :data:`ADMINS`) and one Teams-format webhook;
    terminals and container files off, no rate limit."""
    return {
        "channels": {
            "terminal": {"enabled": False},
            "container_file": {"enabled": False},
            "email": {
                "enabled": True,
                "host": "127.0.0.1",
                "port": smtp_port,
                "sender": "ds01@example.org",
                "addresses": {user: ADMINS},
            },
            "webhooks": [{"name": "teams", "url": webhook_url, "format": "teams"}],
        },
        "rate_limit": {"max": 0},
    }


def events(runtime: Runtime, prefix: str) -> list[Mapping[str, Any]]:
    return runtime.events.query(type_prefix=prefix)


class ReceiverServer:
    """A minimal HTTP server handing ``POST /alertmanager`` to :func:`receive`, as the
    exporter's listener does: the raw body, the Authorization header, the peer's address."""

    def __init__(self, runtime: Runtime, settings: AlertReceiverConfig, port: int = 0):
        lock = threading.Lock()  # one runtime: requests take turns, as in ds01d

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != PATH:
                    status, text = 404, "not found"
                else:
                    with lock:
                        status, text = receive(
                            runtime,
                            settings,
                            body,
                            self.headers.get("Authorization"),
                            self.client_address[0],
                        )
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def receiver_server(runtime: Runtime, settings: AlertReceiverConfig) -> Iterator[ReceiverServer]:
    server = ReceiverServer(runtime, settings)
    try:
        yield server
    finally:
        server.close()
