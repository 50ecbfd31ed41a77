"""Shared by the alert tests: the shipped files, real binaries, payloads, a runtime whose notify
plugin posts to a Teams-format webhook and e-mails root, and an HTTP server around
:func:`ds01_prometheus.alert_receiver.receive` (until the exporter's own server serves it)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ds01_core.framework.runtime import Runtime, load_runtime
from ds01_prometheus.alert_receiver import PATH, receive
from ds01_prometheus.alert_receiver_config import AlertReceiverConfig
from ds01_prometheus.server import ExporterService
from tests.conftest import unavailable
from tests.helpers.config import write_config
from tests.helpers.waiting import wait_until

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


# -- real Prometheus and Alertmanager ------------------------------------------------------------


def render_alertmanager(
    directory: Path, smtp_port: int, webhook_url: str, token_file: Path
) -> Path:
    """The shipped alertmanager.yml with this test's peers: the SMTP server on loopback (no
    STARTTLS), the admins' address, ds01's receiver at ``webhook_url`` with ``token_file``, and
    second-long group timings; routes, receivers and inhibitions stay as shipped."""
    config = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text())
    config["global"].update(
        smtp_smarthost=f"127.0.0.1:{smtp_port}",
        smtp_from="alertmanager@example.org",
        smtp_require_tls=False,
    )
    for route in (config["route"], *config["route"]["routes"]):
        for key in ("group_wait", "group_interval"):
            if key in route or route is config["route"]:
                route[key] = "1s"
    for receiver in config["receivers"]:
        for mail in receiver.get("email_configs", []):
            mail["to"] = ADMINS
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
            hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    shutil.copy(ALERTMANAGER / "ds01.tmpl", directory / "ds01.tmpl")
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def render_rules(directory: Path, fast_for: str = "2s", keep: Sequence[str] = ()) -> Path:
    """The shipped alert rules with every ``for:`` shortened to ``fast_for`` (the promtool tests
    hold the real ones), except the alerts named in ``keep``."""
    config = yaml.safe_load((RULES / "ds01-alerts.yml").read_text())
    for group in config["groups"]:
        for rule in group["rules"]:
            if rule["alert"] not in keep:
                rule["for"] = fast_for
    path = directory / "ds01-alerts.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Server:
    """A real server process (Prometheus, Alertmanager) on loopback, its output in a log."""

    def __init__(self, name: str, argv: Sequence[str], port: int, log: Path):
        self.name, self.port, self.log = name, port, log
        with log.open("wb") as out:
            self.process = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(self._ready, 30, f"{name} ready on 127.0.0.1:{port}", every=0.1)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data`` (Prometheus' HTTP API)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[frozenset[tuple[str, str]], float]:
        """An instant query's vector: ``{labels: value}``."""
        return {
            frozenset(r["metric"].items()): float(r["value"][1])
            for r in self.api("query", query=expr)["result"]
        }

    def alerts(self, state: str = "firing") -> list[dict[str, Any]]:
        """The alerts Prometheus holds in ``state`` (``firing`` or ``pending``), each with its
        ``labels``, ``annotations`` and ``activeAt``."""
        return [a for a in self.api("alerts")["alerts"] if a["state"] == state]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_alertmanager(config: Path, directory: Path) -> Server:
    port = free_port()
    (directory / "am-data").mkdir()
    argv = [
        binary("prometheus-alertmanager"),
        f"--config.file={config}",
        f"--storage.path={directory / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url=http://127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip (default 0.0.0.0:9094)
    ]
    return Server("alertmanager", argv, port, directory / "alertmanager.log")


def start_prometheus(
    directory: Path,
    rule_file: Path,
    target_port: int,
    alertmanager_port: int | None,
    port: int | None = None,
) -> Server:
    """Prometheus scraping job ``ds01`` at ``target_port`` and evaluating ``rule_file`` every
    second; alerts go to the Alertmanager at ``alertmanager_port`` (none: kept in Prometheus,
    see :meth:`Server.alerts`); on ``port``, or a free one in 194xx."""
    port = port or free_port()
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rule_file)],
        "scrape_configs": [
            {"job_name": "ds01", "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}
        ],
    }
    if alertmanager_port is not None:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    (directory / "prom-data").mkdir()
    argv = [
        binary("prometheus"),
        f"--config.file={path}",
        f"--storage.tsdb.path={directory / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url=http://127.0.0.1:{port}",
        # the first evaluation precedes service discovery of the Alertmanager; without this a
        # dropped notification is resent only after a minute
        "--rules.alert.resend-delay=1s",
    ]
    return Server("prometheus", argv, port, directory / "prometheus.log")


class Exposition:
    """A loopback /metrics endpoint serving exposition text with the catalogue's names (the
    stand-in for ds01d's exporter until the lead wires this test to ds01d); ``text`` is read
    on every scrape, so a test changes what Prometheus sees by assigning it."""

    def __init__(self, text: str):
        self.text = text
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = owner.text.replace("NOW", f"{time.time():.3f}").encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def exporter_listener(
    directory: Path, notify: Mapping[str, Any], token_file: Path
) -> Iterator[tuple[Runtime, str]]:
    """ds01d's exporter listener (the prometheus plugin's :class:`ExporterService`, the
    installed plugins loaded as ds01d loads them) with the alert receiver behind a token and
    the notify plugin configured by ``notify``; yields the runtime and the receiver's URL."""
    plugins = {
        "disabled": ["docker-detector", "gpu-process-detector", "cgroups", "diskquota", "ldap"],
        "prometheus": {"listen": "127.0.0.1:0", "alert_receiver": {"token_file": str(token_file)}},
        "notify": dict(notify),
    }
    runtime = load_runtime(str(write_config(directory, {"plugins": plugins}, "ds01d.yaml")))
    service = ExporterService(runtime, runtime.plugin_config("prometheus"))
    service.start()
    try:
        host, port = service.address
        yield runtime, f"http://{host}:{port}{PATH}"
    finally:
        service.stop()
        runtime.close()
