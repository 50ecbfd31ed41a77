"""The Docker API gateway's server: one Unix socket every user's Docker client talks to.

This module is the plumbing: it accepts a connection, learns who is calling from the kernel
(``SO_PEERCRED``, see :mod:`.peer`), reads its requests one by one and hands each to the policy
— or, for admins (root and the configured group), forwards it untouched, logged. A user's
request is matched against :mod:`.routes` (no match: refused) and judged by the handler for its
kind (:mod:`.handlers`), which forwards it (:mod:`.forwarding`) — with object references
resolved to full ids, creates admitted through :mod:`ds01_core.services.admission` (as
``ds01 container create`` is), starts of GPU containers re-admitted — or refuses it: 403, an
``access.denied`` event, and a message the docker CLI prints as is.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import socket
import socketserver
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ds01_core.domain.model import Event
from ds01_core.services.caller import Caller
from ds01_core.transports.gateway import outcomes
from ds01_core.transports.gateway.call import Call, Refused
from ds01_core.transports.gateway.forwarding import Forwarder
from ds01_core.transports.gateway.handlers import HANDLERS
from ds01_core.transports.gateway.http import (
    BUFFER,
    REASONS,
    Closed,
    Head,
    HttpError,
    Stream,
    response,
)
from ds01_core.transports.gateway.ownership import Engine, EngineUnavailable, Owners
from ds01_core.transports.gateway.peer import Peer, peer_identity
from ds01_core.transports.gateway.routes import MIN_USER_API, api_version, classify
from ds01_core.transports.socket_service import ConnectionCounts, UnixServer, unix_server

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)

#: how long a connection may sit without sending a request before it is closed
IDLE_TIMEOUT = 600.0
#: after a refusal, how long and how much of a client's unread upload is read and dropped
LINGER_SECONDS = 5.0
LINGER_BYTES = 256 * 1024 * 1024
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class Gateway:
    """The gateway on its socket: :meth:`bind`, then :meth:`serve` until :meth:`shutdown`."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        socket_path: str | None = None,
        upstream: str | None = None,
        identify: Callable[[socket.socket, str], Peer] = peer_identity,
    ):
        self.runtime = runtime
        config = runtime.config.gateway
        self.socket_path = (socket_path or config.socket).removeprefix("unix://")
        self.upstream = (upstream or config.upstream).removeprefix("unix://")
        self.engine = Engine(self.upstream)
        self.owners = Owners(self.engine, runtime.config.detection.home_roots)
        self.forwarder = Forwarder(self.upstream)
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ds01-gw-rt")
        self._nvidia: tuple[float, bool] = (0.0, False)
        self.server: UnixServer | None = None
        self.identify = identify
        self.connections = ConnectionCounts()

    # -- the runtime (state store, plugins) lives in one thread -------------------------------

    def in_runtime(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._worker.submit(fn, self.runtime, *args).result()

    def reload(self, runtime: Runtime) -> None:
        """Use a new configuration for the requests that start from now on."""
        old = self.runtime
        self.runtime = runtime
        self.owners = Owners(self.engine, runtime.config.detection.home_roots)
        self._worker.submit(old.close)

    def event(self, event_type: str, user: str | None, details: dict[str, Any]) -> None:
        try:
            self.runtime.events.append(Event(event_type, user, "gateway", details))
        except OSError:
            log.exception("could not write %s to the event log", event_type)

    def nvidia_runtime(self) -> bool:
        """Whether the engine has the ``nvidia`` runtime (asked at most once a minute)."""
        checked, answer = self._nvidia
        if time.monotonic() - checked > 60:
            status, info = self.engine.call("GET", "/info")
            answer = status == 200 and "nvidia" in ((info or {}).get("Runtimes") or {})
            self._nvidia = (time.monotonic(), answer)
        return answer

    # -- the socket server --------------------------------------------------------------------

    def bind(self, listening: socket.socket | None = None) -> UnixServer:
        """Listen on the socket path; or, given the listening socket systemd passed
        (``ds01-gateway.socket``), serve that one and leave its file and mode to systemd."""
        gateway = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                gateway.handle_connection(self.request)

        self.server = unix_server(self.socket_path, Handler, listening)
        return self.server

    def serve(self) -> None:
        server = self.server or self.bind()
        log.info("gateway on %s, forwarding to %s", self.socket_path, self.upstream)
        server.serve_forever(poll_interval=0.5)

    def stop_accepting(self) -> None:
        """Take no new connection; those being answered go on (see :meth:`shutdown`)."""
        if self.server is not None:
            self.server.shutdown()

    def shutdown(self) -> None:
        self.stop_accepting()
        if self.server is not None:
            self.server.server_close()
        self._worker.shutdown(wait=True)

    # -- one connection -----------------------------------------------------------------------

    def handle_connection(self, sock: socket.socket) -> None:
        peer = self.identify(sock, self.runtime.config.gateway.admin_group)
        limit = self.runtime.config.gateway.max_connections_per_user
        admin = peer.caller is not None and peer.caller.admin
        admitted, held = self.connections.admit(peer.uid, admin, limit)
        if not admitted:  # one user's connections (each a thread here) must not crowd others out
            outcomes.denied("connections open to the gateway", 429)
            self.event(
                "access.denied",
                peer.who,
                {"endpoint": "connect", "reason": "too many connections", "pid": peer.pid},
            )
            _error(
                sock,
                429,
                f"you have {held} connections open to the gateway (the limit is {limit}); close some",
            )
            return
        try:
            self._serve_connection(sock, peer)
        finally:
            self.connections.leave(peer.uid)

    def _serve_connection(self, sock: socket.socket, peer: Peer) -> None:
        """Requests one after the other until the client or an answer ends the connection;
        an error answers the request that caused it and ends the connection."""
        client = Stream(sock)
        head: Head | None = None
        answering = False  # a request is being answered (counted when it ends)
        try:
            while True:
                sock.settimeout(IDLE_TIMEOUT)  # waiting for a request: an idle client goes
                head = client.read_head(request=True)
                sock.settimeout(None)  # answers may stream for hours (logs -f, events)
                if head is None:
                    return
                answering = True
                keep = self.serve_one(peer, client, head)
                answering = False
                outcomes.allowed()
                if not keep:
                    return
        except Refused as refused:
            outcomes.denied(refused.message, refused.status)
            endpoint = f"{head.method} {head.target[:300]}" if head else "?"
            log.info("refused %s %s: %s", peer.who, endpoint, refused.message)
            self.event(
                "access.denied",
                peer.who,
                {"endpoint": endpoint, "reason": refused.message, "pid": peer.pid},
            )
            _error(sock, refused.status, refused.message, refused.as_engine)
        except HttpError as exc:
            if exc.status == 403:  # not an endpoint the gateway allows
                outcomes.denied(exc.message, exc.status)
            else:
                outcomes.error()
            _error(sock, exc.status, exc.message, exc.as_engine)
        except EngineUnavailable as exc:
            outcomes.error()
            _error(sock, 502, f"{exc} (is dockerd running?)")
        except (Closed, OSError):
            if answering:
                outcomes.error()
            return
        except Exception:
            outcomes.error()
            log.exception("gateway error")
            _error(sock, 500, "internal error in the ds01 gateway; see its log")
        finally:
            if client.upstream is not None:
                client.upstream.sock.close()

    def serve_one(self, peer: Peer, client: Stream, head: Head) -> bool:
        """Answer one request; whether the connection can take another."""
        if (head.get("expect") or "").lower() == "100-continue":
            client.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if peer.caller is None:
            raise Refused(f"uid {peer.uid} has no account on this host")
        framing = head.body_framing()
        if peer.caller.admin:
            return self._pass_through(peer.caller, peer.pid, client, head, framing)
        route = classify(head.method, head.target)
        version = api_version(route)
        if version is not None and version < MIN_USER_API:
            raise Refused(
                f"API version {route.version[2:]} is older than 1.24, which the ds01 gateway "
                "accepts; update your Docker client"
            )
        content_type = (head.get("content-type") or "").split(";")[0].strip().lower()
        if content_type in _FORMS:
            raise Refused(
                "form-encoded requests are not accepted (the engine reads their fields as parameters)"
            )
        call = Call(self, peer.caller, peer.home, client, head, route, framing)
        return HANDLERS[route.kind](call)

    def _pass_through(
        self, admin: Caller, pid: int, client: Stream, head: Head, framing: tuple[str, int]
    ) -> bool:
        """An admin's request, forwarded as it came; changes logged if so configured."""
        if self.runtime.config.gateway.log_admin_requests and head.method not in ("GET", "HEAD"):
            self.event(
                "access.admin",
                admin.name,
                {"endpoint": f"{head.method} {head.target[:300]}", "pid": pid},
            )
        hijack = "upgrade" in head.tokens("connection") or _hijackable(head.target)
        return self.forwarder.forward(
            client, head, head.target, framing, hijack=hijack, stream=True
        )


def _error(sock: socket.socket, status: int, message: str, as_engine: bool = False) -> None:
    """The error answer, as JSON the docker CLI prints, and the end of the connection."""
    body = json.dumps({"message": message if as_engine else f"ds01: {message}"}).encode() + b"\n"
    with contextlib.suppress(OSError):
        sock.sendall(response(status, REASONS.get(status, "Error"), body, keep_alive=False))
        _linger(sock)


def _linger(sock: socket.socket) -> None:
    """Read and drop what the client is still sending before closing, so that a client in the
    middle of an upload (``docker cp`` of a tar, a build context) reads the refusal instead of
    failing with a broken pipe (the "lingering close" of HTTP servers); bounded in time and
    size."""
    sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + LINGER_SECONDS
    drained = 0
    while drained < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        data = sock.recv(BUFFER)
        if not data:
            return
        drained += len(data)


def _hijackable(target: str) -> bool:
    path = target.split("?", 1)[0]
    return path.endswith("/attach") or (path.endswith("/start") and "/exec/" in path)
