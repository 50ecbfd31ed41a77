"""The exporter's HTTP listener inside ``ds01d``: ``/metrics``, ``/-/healthy``, ``/alertmanager``.

A :class:`~ds01_core.api.DaemonService` (``daemon_services`` hook) running a threading HTTP
server on a thread of its own. ``/metrics`` renders the current snapshot (content negotiation
with prometheus_client's encoders: the text format or OpenMetrics; gzip when asked) and makes no
Docker, NVML or state-store call. TLS wraps each connection on its handler thread, so a slow
handshake never holds up other scrapes. Basic auth (when configured) guards ``/`` and
``/metrics``; ``/-/healthy`` answers anyone, and ``/alertmanager`` has its own bearer token
(the alert receiver checks it).
"""

from __future__ import annotations

import base64
import gzip
import hmac
import importlib
import logging
import socket
import ssl
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ds01_core.api import Runtime
from ds01_prometheus.collector import Exporter, exporter_of
from ds01_prometheus.config import PrometheusConfig

log = logging.getLogger(__name__)

ALERT_RECEIVER = "ds01_prometheus.alert_receiver"
#: the largest webhook body accepted (Alertmanager's groups are a few KiB)
MAX_BODY = 1024 * 1024
#: seconds a connection may stay silent (a TLS handshake included)
CONNECTION_TIMEOUT = 10.0
INDEX = (
    b"<!doctype html><html><head><title>ds01 exporter</title></head><body>"
    b'<h1>ds01 exporter</h1><p><a href="/metrics">Metrics</a></p></body></html>\n'
)


class ExporterError(Exception):
    """The listener cannot start (a TLS file or the password file cannot be read)."""


def read_password(path: str) -> bytes:
    """The basic-auth password: the file's content without its final line break."""
    file = Path(path)
    try:
        mode = file.stat().st_mode
        data = file.read_bytes()
    except OSError as exc:
        raise ExporterError(f"basic_auth_password_file {path}: {exc.strerror or exc}") from None
    if mode & 0o077:
        log.warning("prometheus: %s is readable by others than its owner (chmod 600 it)", path)
    password = data.rstrip(b"\r\n")
    if not password:
        raise ExporterError(f"basic_auth_password_file {path} is empty")
    return password


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ExporterError(f"TLS certificate {cert} / key {key}: {exc}") from None
    return context


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    exporter: Exporter
    runtime: Runtime
    settings: PrometheusConfig
    credentials: tuple[bytes, bytes] | None = None
    tls: ssl.SSLContext | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is not worth a traceback in ds01d's log."""
        log.debug("prometheus: connection from %s failed", client_address, exc_info=True)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """On the connection's own thread: the TLS handshake, then the request."""
        request.settimeout(CONNECTION_TIMEOUT)
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                log.debug("prometheus: TLS handshake with %s failed: %s", client_address, exc)
                return
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "ds01-exporter"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("prometheus %s: " + format, self.address_string(), *args)

    # -- routing --------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/-/healthy":
            self._send(HTTPStatus.OK, b"OK\n", "text/plain; charset=utf-8")
        elif path in ("/", "/metrics"):
            if not self._authorised():
                return
            if path == "/metrics":
                self._metrics()
            else:
                self._send(HTTPStatus.OK, INDEX, "text/html; charset=utf-8")
        elif path == "/alertmanager":
            self._not_allowed("POST")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/alertmanager":
            self._alertmanager()
        elif path in ("/", "/metrics", "/-/healthy"):
            self._not_allowed("GET")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def _not_allowed(self, allowed: str) -> None:
        self._drain()
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"method not allowed\n",
            "text/plain; charset=utf-8",
            {"Allow": allowed},
        )

    def do_PUT(self) -> None:
        self._not_allowed("GET, POST")

    do_DELETE = do_PATCH = do_PUT

    # -- endpoints ------------------------------------------------------------------------

    def _metrics(self) -> None:
        started = time.perf_counter()
        body, content_type = self.server.exporter.render(self.headers.get("Accept", ""))
        headers = {}
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self.server.exporter.scrape_seconds = time.perf_counter() - started
        self._send(HTTPStatus.OK, body, content_type, headers)

    def _alertmanager(self) -> None:
        length = self._length()
        if length is None:
            self.close_connection = True
            self._send(HTTPStatus.BAD_REQUEST, b"bad Content-Length\n", "text/plain")
            return
        if length > MAX_BODY:
            self.close_connection = True
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"too large\n", "text/plain")
            return
        body = self.rfile.read(length) if length > 0 else b""
        try:
            receiver = importlib.import_module(ALERT_RECEIVER)
        except ModuleNotFoundError as exc:
            if exc.name != ALERT_RECEIVER:
                raise
            self._send(HTTPStatus.NOT_FOUND, b"no alert receiver here\n", "text/plain")
            return
        server = self.server
        try:
            status, text = receiver.receive(
                server.runtime,
                server.settings.alert_receiver,
                body,
                self.headers.get("Authorization"),
                self.client_address[0],
            )
        except Exception as exc:
            log.exception("prometheus: the alert receiver failed")
            status, text = 500, f"alert receiver failed: {exc}\n"
        self._send(HTTPStatus(status), text.encode(), "text/plain; charset=utf-8")

    # -- helpers --------------------------------------------------------------------------

    def _authorised(self) -> bool:
        expected = self.server.credentials
        if expected is None:
            return True
        given = _basic_credentials(self.headers.get("Authorization"))
        # both compared in constant time, whatever the first one says
        user_ok = hmac.compare_digest(given[0], expected[0])
        password_ok = hmac.compare_digest(given[1], expected[1])
        if user_ok and password_ok:
            return True
        self._send(
            HTTPStatus.UNAUTHORIZED,
            b"unauthorized\n",
            "text/plain; charset=utf-8",
            {"WWW-Authenticate": 'Basic realm="ds01", charset="UTF-8"'},
        )
        return False

    def _length(self) -> int | None:
        """The request body's length; None when the header is not a number."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        return length if length >= 0 else None

    def _drain(self) -> None:
        length = self._length()
        if length is not None and 0 < length <= MAX_BODY:
            self.rfile.read(length)
        elif length != 0:
            self.close_connection = True

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _basic_credentials(header: str | None) -> tuple[bytes, bytes]:
    """``Authorization: Basic …`` as (user, password); empty ones when absent or malformed."""
    if not header or not header.lower().startswith("basic "):
        return b"", b""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True)
    except ValueError:
        return b"", b""
    user, _, password = decoded.partition(b":")
    return user, password


class ExporterService:
    """The listener as a daemon service: bound in :meth:`start` (raising when it cannot be),
    served on a thread, shut down within a second by :meth:`stop`."""

    name = "prometheus-exporter"

    def __init__(self, runtime: Runtime, settings: PrometheusConfig) -> None:
        self.runtime = runtime
        self.settings = settings
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._prerender: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the port the kernel chose when ``listen`` said 0)."""
        if self._server is None:
            raise RuntimeError("not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        settings = self.settings
        host, port = settings.address()
        credentials = None
        if settings.basic_auth_username and settings.basic_auth_password_file:
            password = read_password(settings.basic_auth_password_file)
            credentials = (settings.basic_auth_username.encode(), password)
        tls = None
        if settings.tls_cert_file and settings.tls_key_file:
            tls = tls_context(settings.tls_cert_file, settings.tls_key_file)
        server_class = type(
            "_BoundServer",
            (_Server,),
            {"address_family": socket.AF_INET6 if ":" in host else socket.AF_INET},
        )
        server = server_class((host, port), _Handler)  # raises when it cannot bind
        server.exporter = exporter_of(self.runtime)
        server.runtime = self.runtime
        server.settings = settings
        server.credentials = credentials
        server.tls = tls
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.25},  # stop() waits at most this long
            name="ds01-prometheus",
            daemon=True,
        )
        self._thread.start()
        self._stopping.clear()
        self._prerender = threading.Thread(
            target=self._prerender_loop,
            args=(server.exporter,),
            name="ds01-prometheus-render",
            daemon=True,
        )
        self._prerender.start()
        scheme = "https" if tls else "http"
        shown = f"[{host}]" if ":" in host else host
        log.info("prometheus exporter on %s://%s:%d/metrics", scheme, shown, self.address[1])

    def _prerender_loop(self, exporter: Exporter) -> None:
        """Render each new snapshot once, before a scrape asks for it (idle between cycles)."""
        while True:
            exporter.updated.wait()
            if self._stopping.is_set():
                return
            exporter.updated.clear()
            try:
                exporter.prerender()
            except Exception:  # a scrape renders it itself then; say why once per snapshot
                log.exception("prometheus: pre-rendering the snapshot failed")

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        self._stopping.set()
        server.exporter.updated.set()  # wakes the pre-render thread, which sees the stop
        if self._prerender is not None:
            self._prerender.join(timeout=1.0)
            self._prerender = None
        if thread is not None and thread.is_alive():
            server.shutdown()
            thread.join(timeout=1.0)
        server.server_close()
