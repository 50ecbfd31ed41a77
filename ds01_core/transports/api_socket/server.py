"""Serving the service layer on a Unix socket: JSON over HTTP/1.1 under ``/v1/``.

The caller is the socket's peer as the kernel reports it (``SO_PEERCRED`` → passwd/NSS); a uid
without an account is refused, and nothing in a request can change who the caller is. Every
request is routed to one :class:`~ds01_core.services.operations.Operation` and answered with its
JSON result, a stream (chunked), or an error ``{"error": {"kind", "message"}}`` whose message
the CLI prints as it is. Refusals are logged as ``access.denied`` events.

Each connection is a thread, and operations may run at the same time: each thread has its own
state store connection (:class:`ThreadedRuntime`); a user may hold at most
``api.max_connections_per_user`` connections.
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ds01_core.domain.model import Event
from ds01_core.domain.state.store import StateStore
from ds01_core.framework.runtime import Runtime
from ds01_core.services.caller import Caller, peer_credentials
from ds01_core.services.catalogue import operation_table
from ds01_core.services.errors import Busy, Forbidden, Invalid, NotFound, ServiceError
from ds01_core.services.operations import (
    Operation,
    ServiceContext,
    invoke,
    parameters_from_json,
    to_json,
)
from ds01_core.transports.socket_service import ConnectionCounts, UnixServer, unix_server

log = logging.getLogger("ds01.api")

MAX_BODY = 1024 * 1024
IDLE_TIMEOUT = 300.0


class ThreadedRuntime(Runtime):
    """A runtime whose state store connection is per thread, for a server that runs
    operations on several threads at once (SQLite transactions stay on one connection)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._local = threading.local()

    @property
    def state(self) -> StateStore:
        store = getattr(self._local, "state", None)
        if store is None:
            store = self._local.state = StateStore(self.config.paths.state_db_path)
        return store

    def close_thread_state(self) -> None:
        store = getattr(self._local, "state", None)
        if store is not None:
            self._local.state = None
            store.close()


def _dumps(data: Any) -> bytes:
    return to_json(data).encode()


class ApiServer:
    """The API socket's listener, its current runtime, and its per-user connection counts."""

    def __init__(self, runtime: Runtime, socket_path: str | None = None):
        self.runtime = runtime
        self.socket_path = socket_path or runtime.config.api.socket
        self.server: UnixServer | None = None
        self.connections = ConnectionCounts()

    # -- lifecycle ----------------------------------------------------------------------------

    def bind(self, listening: socket.socket | None = None) -> None:
        """Listen on the configured path, or on ``listening`` (socket activation)."""
        self.server = unix_server(self.socket_path, _handler_for(self), listening)

    def serve(self) -> None:
        if self.server is None:
            self.bind()
        assert self.server is not None
        log.info("API on %s", self.socket_path)
        self.server.serve_forever(poll_interval=0.5)

    def stop_accepting(self) -> None:
        """Take no new connection; those being answered go on (see :meth:`shutdown`)."""
        if self.server is not None:
            self.server.shutdown()

    def shutdown(self) -> None:
        self.stop_accepting()
        if self.server is not None:
            self.server.server_close()

    def reload(self, runtime: Runtime) -> None:
        """Serve new requests with ``runtime``; requests under way finish with the old one."""
        self.runtime = runtime

    def event(self, event_type: str, user: str | None, details: dict[str, Any]) -> None:
        try:
            self.runtime.events.append(Event(event_type, user, "api", details))
        except OSError:
            log.exception("could not write %s to the event log", event_type)


def _handler_for(api: ApiServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(RequestHandler):
        server_api = api

    return Handler


class RequestHandler(http.server.BaseHTTPRequestHandler):
    """One connection: identify the peer once, then answer requests until it closes."""

    protocol_version = "HTTP/1.1"
    server_version = "ds01-api"
    timeout = IDLE_TIMEOUT
    server_api: ApiServer
    caller: Caller | None
    uid: int

    # -- connection ---------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        api = self.server_api
        self.pid, self.uid, _gid = peer_credentials(self.connection)
        self.caller = Caller.from_uid(self.uid, api.runtime.config.gateway.admin_group)
        limit = api.runtime.config.api.max_connections_per_user
        admin = bool(self.caller and self.caller.admin)
        self.admitted, held = api.connections.admit(self.uid, admin, limit)
        self.refusal: ServiceError | None = None
        if self.caller is None:
            self.refusal = Forbidden(f"uid {self.uid} has no account on this host")
        elif not self.admitted:
            self.refusal = Busy(
                f"you have {held} connections open to the ds01 service (the limit is {limit}); "
                "close some"
            )

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.admitted:
                self.server_api.connections.leave(self.uid)
            runtime = self.server_api.runtime
            if isinstance(runtime, ThreadedRuntime):
                runtime.close_thread_state()

    def address_string(self) -> str:
        return f"pid {getattr(self, 'pid', '?')} uid {getattr(self, 'uid', '?')}"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.address_string(), *args)

    # -- requests -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        api = self.server_api
        runtime = api.runtime
        who = self.caller.name if self.caller else f"uid:{self.uid}"
        try:
            if self.refusal is not None:
                raise self.refusal
            assert self.caller is not None
            split = urlsplit(self.path)
            table = operation_table(runtime)
            found = table.route(method, split.path)
            if found is None:
                raise NotFound(f"no API endpoint {method} {split.path}")
            op, path_params = found
            params: dict[str, Any] = dict(parse_qs(split.query, keep_blank_values=True))
            params.update(self._body())
            params.update(path_params)
            result = invoke(ServiceContext(runtime, self.caller), op, params)
        except ServiceError as exc:
            if isinstance(exc, Forbidden) or self.refusal is exc:
                api.event(
                    "access.denied",
                    who,
                    {"endpoint": f"{method} {urlsplit(self.path).path}", "reason": exc.message},
                )
            self._send_json(exc.status, {"error": {"kind": exc.kind, "message": exc.message}})
            if self.refusal is not None:
                self.close_connection = True
            return
        except Exception as exc:  # a bug: logged in full, the caller told in one line
            log.exception("%s %s failed for %s", method, self.path, who)
            self._send_json(
                500,
                {
                    "error": {
                        "kind": "internal",
                        "message": f"internal error in the ds01 service ({type(exc).__name__}); "
                        "it is logged: tell an admin",
                    }
                },
            )
            return
        if op.stream:
            self._send_stream(op, result)
        else:
            self._send_json(200, result)

    def _body(self) -> dict[str, Any]:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise Invalid("chunked request bodies are not accepted; send Content-Length")
        length = self.headers.get("Content-Length")
        if not length:
            return {}
        try:
            size = int(length)
        except ValueError:
            self.close_connection = True
            raise Invalid("bad Content-Length") from None
        if not 0 <= size <= MAX_BODY:
            self.close_connection = True
            raise Invalid(f"request body over {MAX_BODY} bytes")
        return parameters_from_json(self.rfile.read(size))

    # -- answers ------------------------------------------------------------------------------

    def _send_json(self, status: int, data: Any) -> None:
        payload = _dumps(data)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_stream(self, op: Operation, items: Iterable[Any]) -> None:
        """A chunked answer: raw bytes, or JSON Lines (an empty line is a heartbeat). The
        stream ends when the items do or when the caller goes away."""
        self.send_response(200)
        kind = "application/octet-stream" if op.stream == "bytes" else "application/x-ndjson"
        self.send_header("Content-Type", kind)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        iterator = iter(items)
        try:
            for item in iterator:
                if op.stream == "bytes":
                    chunk = bytes(item)
                else:
                    chunk = b"\n" if item is None else _dumps(item) + b"\n"
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:  # the answer has started: all that can be done is to end it
            log.exception("stream %s failed", op.name)
            self.close_connection = True
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
