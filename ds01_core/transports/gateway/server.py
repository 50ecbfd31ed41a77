"""The Docker API gateway: one Unix socket every user's Docker client talks to.

Who is calling comes from the kernel (``SO_PEERCRED`` on the connection), never from the
request. Admins (root and the configured group) pass through untouched, their changes logged.
Everyone else gets the engine's API restricted to their own objects: each request is matched
against :mod:`~ds01_core.transports.gateway.routes` (no match: refused), checked by the handler for its
kind, and forwarded — with object references resolved to full ids, creates admitted through
:mod:`ds01_core.services.admission` (as ``ds01 container create`` is), starts of GPU containers
re-admitted — or refused with 403, an ``access.denied`` event and a message
the docker CLI prints as is.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import pwd
import re
import socket
import socketserver
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.domain.container_facts import OWNER_LABEL
from ds01_core.domain.model import Event
from ds01_core.domain.users import normalize_username
from ds01_core.services import admission
from ds01_core.services.caller import is_admin, peer_credentials
from ds01_core.transports.gateway import create as creating
from ds01_core.transports.gateway import schema
from ds01_core.transports.gateway.create_policy import (
    DEFAULT_SAFE_CAPS,
    CreateRules,
    Lookups,
    mount_sources,
    refusals,
)
from ds01_core.transports.gateway.http import (
    BUFFER,
    REASONS,
    Closed,
    Head,
    HttpError,
    Stream,
    frame,
    response,
    send_chunked,
    serialize,
)
from ds01_core.transports.gateway.ownership import (
    BUILTIN_NETWORKS,
    USABLE_BUILTIN_NETWORKS,
    Engine,
    EngineUnavailable,
    Owners,
)
from ds01_core.transports.gateway.relay import (
    RAW_STREAMS,
    answer_headers,
    has_body,
    pipe,
    read_whole,
    relay_filtered_lines,
    relay_persistent,
    relay_raw,
    send_request,
)
from ds01_core.transports.gateway.routes import MIN_USER_API, Route, api_version, classify
from ds01_core.transports.socket_service import ConnectionCounts, UnixServer, unix_server

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)

#: Build parameters a user may set, and the values of those that could reach the host.
BUILD_PARAMS = frozenset(
    [
        "dockerfile",
        "t",
        "extrahosts",
        "q",
        "nocache",
        "cachefrom",
        "pull",
        "rm",
        "forcerm",
        "memory",
        "memswap",
        "cpushares",
        "cpusetcpus",
        "cpusetmems",
        "cpuperiod",
        "cpuquota",
        "buildargs",
        "shmsize",
        "squash",
        "labels",
        "networkmode",
        "platform",
        "target",
        "outputs",
        "ulimits",
        "isolation",
        "version",
    ]
)
BUILD_NETWORKS = frozenset({"", "default", "bridge", "none"})
NETWORK_OPTIONS = frozenset({"com.docker.network.driver.mtu"})
#: how long a connection may sit without sending a request before it is closed
IDLE_TIMEOUT = 600.0
#: after a refusal, how long and how much of a client's unread upload is read and dropped
LINGER_SECONDS = 5.0
LINGER_BYTES = 256 * 1024 * 1024


class Refused(HttpError):
    """A policy refusal: 403 for the client, an ``access.denied`` event for the admin."""

    def __init__(self, message: str, status: int = 403):
        super().__init__(status, message)


@attrs.frozen
class Identity:
    uid: int
    pid: int
    user: str
    admin: bool
    home: str


def peer_identity(sock: socket.socket, admin_group: str) -> tuple[int, int, Identity | None]:
    """(pid, uid, identity) of the process at the other end; identity None for a uid without
    an account (refused: there is nobody to attribute its containers to)."""
    pid, uid, _gid = peer_credentials(sock)
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return pid, uid, None
    admin = is_admin(entry, admin_group)
    return pid, uid, Identity(uid, pid, normalize_username(entry.pw_name), admin, entry.pw_dir)


class Gateway:
    """The policy and the plumbing; :meth:`serve` runs it on the configured socket."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        socket_path: str | None = None,
        upstream: str | None = None,
        identify: Callable[[socket.socket, str], tuple[int, int, Identity | None]] = (
            peer_identity
        ),
    ):
        self.runtime = runtime
        config = runtime.config.gateway
        self.socket_path = (socket_path or config.socket).removeprefix("unix://")
        self.upstream = (upstream or config.upstream).removeprefix("unix://")
        self.engine = Engine(self.upstream)
        self.owners = Owners(self.engine, runtime.config.detection.home_roots)
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

    # -- serving ------------------------------------------------------------------------------

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

    def handle_connection(self, sock: socket.socket) -> None:
        pid, uid, ident = self.identify(sock, self.runtime.config.gateway.admin_group)
        limit = self.runtime.config.gateway.max_connections_per_user
        admitted, held = self.connections.admit(uid, bool(ident and ident.admin), limit)
        if not admitted:  # one user's connections (each a thread here) must not crowd others out
            who = ident.user if ident else f"uid:{uid}"
            self.event(
                "access.denied",
                who,
                {"endpoint": "connect", "reason": "too many connections", "pid": pid},
            )
            self._error(
                sock,
                429,
                f"you have {held} connections open to the gateway (the limit is {limit}); close some",
            )
            return
        try:
            self._serve_connection(sock, pid, uid, ident)
        finally:
            self.connections.leave(uid)

    def _serve_connection(
        self, sock: socket.socket, pid: int, uid: int, ident: Identity | None
    ) -> None:
        client = Stream(sock)
        head: Head | None = None
        try:
            while True:
                sock.settimeout(IDLE_TIMEOUT)  # waiting for a request: an idle client goes
                head = client.read_head(request=True)
                sock.settimeout(None)  # answers may stream for hours (logs -f, events)
                if head is None:
                    return
                if not self.serve_one(ident, uid, pid, client, head):
                    return
        except Refused as refused:
            who = ident.user if ident else f"uid:{uid}"
            endpoint = f"{head.method} {head.target[:300]}" if head else "?"
            log.info("refused %s %s: %s", who, endpoint, refused.message)
            self.event(
                "access.denied",
                who,
                {"endpoint": endpoint, "reason": refused.message, "pid": pid},
            )
            self._error(sock, refused.status, refused.message)
        except HttpError as exc:
            self._error(sock, exc.status, exc.message)
        except EngineUnavailable as exc:
            self._error(sock, 502, f"{exc} (is dockerd running?)")
        except (Closed, OSError):
            return
        except Exception:
            log.exception("gateway error")
            self._error(sock, 500, "internal error in the ds01 gateway; see its log")
        finally:
            if client.upstream is not None:
                client.upstream.sock.close()

    @staticmethod
    def _error(sock: socket.socket, status: int, message: str) -> None:
        body = json.dumps({"message": f"ds01: {message}"}).encode() + b"\n"
        with contextlib.suppress(OSError):
            sock.sendall(response(status, REASONS.get(status, "Error"), body, keep_alive=False))
            _linger(sock)

    def serve_one(
        self, ident: Identity | None, uid: int, pid: int, client: Stream, head: Head
    ) -> bool:
        if (head.get("expect") or "").lower() == "100-continue":
            client.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if ident is None:
            raise Refused(f"uid {uid} has no account on this host")
        framing = head.body_framing()
        if ident.admin:
            if self.runtime.config.gateway.log_admin_requests and head.method not in (
                "GET",
                "HEAD",
            ):
                self.event(
                    "access.admin",
                    ident.user,
                    {"endpoint": f"{head.method} {head.target[:300]}", "pid": pid},
                )
            hijack = "upgrade" in head.tokens("connection") or _hijackable(head.target)
            return self.forward(client, head, head.target, framing, hijack=hijack, stream=True)
        route = classify(head.method, head.target)
        version = api_version(route)
        if version is not None and version < MIN_USER_API:
            raise Refused(
                f"API version {route.version[2:]} is older than 1.24, which the ds01 gateway "
                "accepts; update your Docker client"
            )
        content_type = (head.get("content-type") or "").split(";")[0].strip().lower()
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            raise Refused(
                "form-encoded requests are not accepted (the engine reads their fields as parameters)"
            )
        handler = getattr(self, "on_" + route.kind.replace(".", "_"))
        return handler(ident, client, head, route, framing)

    # -- forwarding ---------------------------------------------------------------------------

    def forward(
        self,
        client: Stream,
        head: Head,
        target: str,
        framing: tuple[str, int],
        *,
        body: bytes | None = None,
        hijack: bool = False,
        stream: bool = False,
        buffered: Callable[[int, bytes], bytes] | None = None,
        passes: Callable[[int, bytes], bool] | None = None,
        lines: Callable[[bytes], bool] | None = None,
    ) -> bool:
        """Send the checked request on and the answer back; whether the client connection can
        take another request.

        Short calls reuse one engine connection per client connection (a new one per call
        would cost more than the rest of the gateway's work on an inspect); streams, hijacks
        and admins' calls get their own, closed by the engine at the end of the answer.
        """
        keep = head.keep_alive()
        persistent = not (stream or hijack or lines is not None)
        replayable = body is not None or framing[0] == "none"
        upstream = client.upstream if persistent else None
        client.upstream = None

        def ask(upstream: Stream) -> Head | None:
            send_request(
                upstream.sock,
                client,
                head,
                target,
                framing,
                body=body,
                hijack=hijack,
                persistent=persistent,
            )
            return upstream.read_head(request=False)

        answer = None
        if upstream is not None:  # a kept connection the engine may have closed meanwhile
            try:
                answer = ask(upstream)
            except (OSError, Closed):
                answer = None
            if answer is None:
                upstream.sock.close()
                upstream = None
                if not replayable:
                    raise HttpError(502, "the engine closed the connection; try again")
        if upstream is None:
            upstream = Stream(self._connect())
            answer = ask(upstream)
        reusable = False
        try:
            if answer is None:
                raise HttpError(502, "the engine closed the connection without answering")
            content_type = (answer.get("content-type") or "").split(";")[0]
            if hijack and (
                answer.status == 101
                or (
                    answer.status == 200
                    and content_type in RAW_STREAMS
                    and answer.get("content-length") is None
                    and "chunked" not in answer.tokens("transfer-encoding")
                )
            ):
                client.sock.sendall(serialize(answer.first, answer.headers))
                pipe(client, upstream)
                return False
            if buffered is not None and has_body(head.method, answer.status):
                chunked = "chunked" in answer.tokens("transfer-encoding")
                if passes is not None and chunked:
                    pieces = upstream.chunks()
                    first = next(pieces, b"")
                    if passes(answer.status, first):  # judged from the first chunk: relay as is
                        client.sock.sendall(
                            serialize(answer.first, answer_headers(answer, keep))
                            + (frame(first) if first else b"")
                        )
                        send_chunked(client.sock, pieces)
                        reusable = persistent and "close" not in answer.tokens("connection")
                        return keep
                    whole = first + b"".join(pieces)
                else:
                    whole = read_whole(upstream, answer)
                data = buffered(answer.status, whole)
                reusable = (
                    persistent
                    and "close" not in answer.tokens("connection")
                    and (
                        answer.get("content-length") is not None
                        or "chunked" in answer.tokens("transfer-encoding")
                    )
                )
                headers = [
                    (k, v)
                    for k, v in answer_headers(answer, keep, content_length=str(len(data)))
                    if k.lower() != "transfer-encoding"
                ]
                client.sock.sendall(serialize(answer.first, headers) + data)
                return keep
            if lines is not None and has_body(head.method, answer.status):
                return relay_filtered_lines(client.sock, upstream, answer, keep, lines)
            if persistent:
                keep, reusable = relay_persistent(client.sock, upstream, head.method, answer, keep)
                return keep
            return relay_raw(client.sock, upstream, head.method, answer, keep)
        finally:
            if reusable and not upstream.buffer:
                client.upstream = upstream
            else:
                upstream.sock.close()

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.upstream)
        except OSError as exc:
            sock.close()
            raise EngineUnavailable(f"the Docker engine at {self.upstream}: {exc}") from None
        return sock

    # -- helpers for handlers -----------------------------------------------------------------

    @staticmethod
    def no_body(client: Stream, framing: tuple[str, int]) -> None:
        """Endpoints that take no body get none: old API versions read a HostConfig from
        ``start``'s body, and a body nobody checks is a body nobody should send."""
        kind, size = framing
        if (kind == "length" and size) or (kind == "chunked" and client.read_body(framing, 0)):
            raise Refused("this endpoint takes no request body", 400)

    def json_body(self, client: Stream, framing: tuple[str, int], shape: Any) -> dict[str, Any]:
        raw = client.read_body(framing, int(self.runtime.config.gateway.max_request_body))
        try:
            body = schema.loads(raw)
            schema.check(body, shape)
        except schema.SchemaError as exc:
            raise Refused(str(exc), 400) from None
        if not isinstance(body, dict):
            raise Refused("the request body must be a JSON object", 400)
        return body

    def own_container(self, ident: Identity, ref: str) -> str:
        """The full id of the caller's container ``ref`` (name, id or id prefix); 403 for
        another user's, 404 for none."""
        inspect = self.engine.inspect_container(ref)
        if inspect is None:
            raise HttpError(404, f"No such container: {ref}")
        if self.owners.of_inspect(inspect) != ident.user:
            raise Refused(f"container {ref} belongs to another user; you may only use your own")
        return str(inspect["Id"])

    def _owns_container(self, ident: Identity, ref: str) -> bool:
        inspect = self.engine.inspect_container(ref)
        return inspect is not None and self.owners.of_inspect(inspect) == ident.user

    def _network_usable(self, ident: Identity, ref: str) -> bool:
        if ref in USABLE_BUILTIN_NETWORKS:
            return True
        network = self.engine.inspect("networks", ref)
        return network is not None and self.owners.of_labelled(network) == ident.user

    def _volume_usable(self, ident: Identity, name: str) -> bool:
        volume = self.engine.inspect("volumes", name)
        return volume is None or self.owners.of_labelled(volume) == ident.user

    def rules_for(self, ident: Identity) -> CreateRules:
        config = self.runtime.config
        roots = config.detection.home_roots
        return CreateRules(
            home=ident.home,
            workspace_roots=tuple(
                r.replace("{user}", ident.user) for r in config.gateway.workspace_roots
            ),
            read_only_paths=tuple(config.gateway.read_only_paths),
            safe_caps=DEFAULT_SAFE_CAPS
            | {c.upper().removeprefix("CAP_") for c in config.gateway.extra_capabilities},
            runtimes=tuple(config.gateway.runtimes),
            other_homes_root=roots[0] if roots else "/home",
        )

    def nvidia_runtime(self) -> bool:
        checked, answer = self._nvidia
        if time.monotonic() - checked > 60:
            status, info = self.engine.call("GET", "/info")
            answer = status == 200 and "nvidia" in ((info or {}).get("Runtimes") or {})
            self._nvidia = (time.monotonic(), answer)
        return answer

    # -- handlers, one per route kind ---------------------------------------------------------

    def on_open(
        self, ident: Identity, client: Stream, head: Head, route: Route, framing: tuple[str, int]
    ) -> bool:
        streams = route.op in ("get", "push") or route.path in ("/images/load", "/images/get")
        return self.forward(client, head, route.target(), framing, stream=streams)

    def on_admin(
        self, ident: Identity, client: Stream, head: Head, route: Route, framing: tuple[str, int]
    ) -> bool:
        raise Refused(
            f"{head.method} {route.path} is for admins only (it acts on everyone's objects)"
        )

    def on_buildkit(
        self, ident: Identity, client: Stream, head: Head, route: Route, framing: tuple[str, int]
    ) -> bool:
        raise Refused(
            "BuildKit sessions are not available through the ds01 gateway; build with the "
            "classic builder: DOCKER_BUILDKIT=0 docker build ..."
        )

    def on_container_list(self, ident, client, head, route, framing) -> bool:
        self.no_body(client, framing)

        def mine(status: int, data: bytes) -> bytes:
            if status != 200:
                return data
            return json_array_filter(data, lambda row: self.owners.of_summary(row) == ident.user)

        return self.forward(client, head, route.target(), framing, buffered=mine)

    def on_container_inspect(self, ident, client, head, route, framing) -> bool:
        self.no_body(client, framing)

        def known_mine(status: int, first: bytes) -> bool:
            """An owner from a label never changes: the id at the start of the answer is
            enough, and the answer can flow on without waiting for its end."""
            return status == 200 and self.owners.cached(_inspected_id(first)) == ident.user

        def mine(status: int, data: bytes) -> bytes:
            if status != 200:
                return data
            known = self.owners.cached(_inspected_id(data))
            if known == ident.user:
                return data
            if known is not None or self.owners.of_inspect(engine_json(data, dict)) != ident.user:
                raise Refused(
                    f"container {route.ref} belongs to another user; you may only use your own"
                )
            return data

        return self.forward(client, head, route.target(), framing, buffered=mine, passes=known_mine)

    def on_container_op(self, ident, client, head, route, framing) -> bool:
        self.no_body(client, framing)
        cid = self.own_container(ident, str(route.ref))
        if route.op in ("start", "restart"):
            self._readmit(ident, cid)
        streams = route.op in ("logs", "stats", "export")
        return self.forward(client, head, route.with_ref(cid), framing, stream=streams)

    def _readmit(self, ident: Identity, cid: str) -> None:
        """GPUs released while the container was stopped are taken back before it runs, or
        the start is refused (the same rule as ``ds01 container start``)."""
        inspect = self.engine.inspect_container(cid)
        if inspect is None:
            raise HttpError(404, f"No such container: {cid}")
        try:
            self.in_runtime(admission.readmit, ident.user, inspect)
        except admission.AdmissionRefused as refused:
            raise Refused(str(refused)) from None

    def on_container_attach(self, ident, client, head, route, framing) -> bool:
        self.no_body(client, framing)
        cid = self.own_container(ident, str(route.ref))
        return self.forward(client, head, route.with_ref(cid), framing, hijack=True)

    def on_container_archive(self, ident, client, head, route, framing) -> bool:
        if head.method != "PUT":
            self.no_body(client, framing)
        cid = self.own_container(ident, str(route.ref))
        streams = head.method == "GET"
        return self.forward(client, head, route.with_ref(cid), framing, stream=streams)

    def on_container_update(self, ident, client, head, route, framing) -> bool:
        body = self.json_body(client, framing, schema.CONTAINER_UPDATE)
        limits = sorted(
            k for k, v in body.items() if k != "RestartPolicy" and v not in (None, 0, "", [], {})
        )
        if limits:
            raise Refused(
                f"resource limits ({', '.join(limits)}) are set by ds01; only the restart policy may be updated"
            )
        cid = self.own_container(ident, str(route.ref))
        return self.forward(
            client, head, route.with_ref(cid), framing, body=json.dumps(body).encode()
        )

    def on_container_exec(self, ident, client, head, route, framing) -> bool:
        body = self.json_body(client, framing, schema.EXEC_CREATE)
        if body.get("Privileged"):
            raise Refused("privileged exec is not allowed")
        cid = self.own_container(ident, str(route.ref))
        return self.forward(
            client, head, route.with_ref(cid), framing, body=json.dumps(body).encode()
        )

    def on_container_delete(self, ident, client, head, route, framing) -> bool:
        self.no_body(client, framing)
        if (route.param("link") or "").lower() in ("1", "true"):
            raise Refused("removing links is not allowed through the gateway")
        cid = self.own_container(ident, str(route.ref))
        keep = self.forward(client, head, route.with_ref(cid), framing)
        if (
            self.engine.inspect_container(cid) is None
        ):  # GPUs are released at once, not a cycle later
            self.in_runtime(creating.release_container, cid, "container removed")
        return keep

    def on_exec_start(self, ident, client, head, route, framing) -> bool:
        body = self.json_body(client, framing, schema.EXEC_START)
        self._own_exec(ident, str(route.ref))
        return self.forward(
            client,
            head,
            route.target(),
            framing,
            body=json.dumps(body).encode(),
            hijack=not body.get("Detach"),
        )

    def on_exec_op(self, ident, client, head, route, framing) -> bool:
        self.no_body(client, framing)
        self._own_exec(ident, str(route.ref))
        return self.forward(client, head, route.target(), framing)

    def _own_exec(self, ident: Identity, exec_id: str) -> None:
        status, info = self.engine.call("GET", f"/exec/{exec_id}/json")
        if status != 200 or not isinstance(info, dict):
            raise HttpError(404, f"No such exec instance: {exec_id}")
        self.own_container(ident, str(info.get("ContainerID", "")))

    def on_commit(self, ident, client, head, route, framing) -> bool:
        shape = {
            k: v
            for k, v in schema.CONTAINER_CREATE.items()
            if k not in ("HostConfig", "NetworkingConfig")
        }
        body = self.json_body(client, framing, shape)
        cid = self.own_container(ident, route.param("container") or "")
        query = tuple((k, cid if k == "container" else v) for k, v in route.query)
        return self.forward(
            client, head, route.target(query=query), framing, body=json.dumps(body).encode()
        )

    def on_events(self, ident, client, head, route, framing) -> bool:
        self.no_body(client, framing)
        return self.forward(
            client,
            head,
            route.target(),
            framing,
            lines=lambda line: self._event_visible(ident, line),
        )

    def _event_visible(self, ident: Identity, line: bytes) -> bool:
        try:
            event = json.loads(line)
        except ValueError:
            return False
        if not isinstance(event, dict):
            return False
        kind = event.get("Type")
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        if kind == "image":
            return True
        if kind == "container":
            return self.owners.of_container_id(str(actor.get("ID", "")), attributes) == ident.user
        if kind in ("volume", "network"):
            name = str(attributes.get("name") or actor.get("ID") or "")
            if kind == "network" and name in BUILTIN_NETWORKS:
                container = attributes.get("container")
                return bool(container) and self.owners.of_container_id(str(container)) == ident.user
            found = self.engine.inspect(f"{kind}s", str(actor.get("ID") or name))
            return found is not None and self.owners.of_labelled(found) == ident.user
        return False

    def on_image_pull(self, ident, client, head, route, framing) -> bool:
        source = route.param("fromSrc")
        if source not in (None, "", "-"):
            raise Refused(
                "importing an image from a URL is not allowed; download it and use `docker import FILE`"
            )
        return self.forward(client, head, route.target(), framing, stream=True)

    def on_image_delete(self, ident, client, head, route, framing) -> bool:
        self.no_body(client, framing)
        if (route.param("force") or "").lower() in ("1", "true"):
            raise Refused(
                "forced image removal is for admins; remove your containers using it first"
            )
        return self.forward(client, head, route.target(), framing)

    def on_build(self, ident, client, head, route, framing) -> bool:
        unknown = sorted({k for k, _ in route.query} - BUILD_PARAMS)
        if unknown:
            raise Refused(
                f"build parameters {', '.join(unknown)} are not allowed through the gateway"
            )
        network = route.param("networkmode") or ""
        if network not in BUILD_NETWORKS:
            raise Refused(
                f"building with network {network!r} is not allowed (default, bridge or none)"
            )
        if (route.param("version") or "1") != "1":
            return self.on_buildkit(ident, client, head, route, framing)
        return self.forward(client, head, route.target(), framing, stream=True)

    def on_volume_list(self, ident, client, head, route, framing) -> bool:
        self.no_body(client, framing)

        def mine(status: int, data: bytes) -> bytes:
            if status != 200:
                return data
            listing = engine_json(data, dict)
            listing["Volumes"] = [
                v for v in listing.get("Volumes") or [] if self.owners.of_labelled(v) == ident.user
            ]
            return json.dumps(listing).encode()

        return self.forward(client, head, route.target(), framing, buffered=mine)

    def on_volume_create(self, ident, client, head, route, framing) -> bool:
        body = self.json_body(client, framing, schema.VOLUME_CREATE)
        if body.get("Driver") not in (None, "", "local"):
            raise Refused(f"volume driver {body['Driver']!r} is not allowed (local only)")
        if body.get("DriverOpts") or body.get("ClusterVolumeSpec"):
            raise Refused("volume driver options are not allowed (they can mount host paths)")
        name = body.get("Name")
        if name and not self._volume_usable(ident, str(name)):
            raise Refused(f"volume {name!r} belongs to another user")
        body["Labels"] = {**creating.own_labels(body.get("Labels")), OWNER_LABEL: ident.user}
        return self.forward(client, head, route.target(), framing, body=json.dumps(body).encode())

    def on_volume_op(self, ident, client, head, route, framing) -> bool:
        self.no_body(client, framing)
        if head.method == "PUT":
            return self.on_admin(ident, client, head, route, framing)
        volume = self.engine.inspect("volumes", str(route.ref))
        if volume is None:
            raise HttpError(404, f"no such volume: {route.ref}")
        if self.owners.of_labelled(volume) != ident.user:
            raise Refused(f"volume {route.ref} belongs to another user")
        return self.forward(client, head, route.target(), framing)

    def on_network_list(self, ident, client, head, route, framing) -> bool:
        self.no_body(client, framing)

        def mine(status: int, data: bytes) -> bytes:
            if status != 200:
                return data
            rows = engine_json(data, list)
            return json.dumps(
                [
                    n
                    for n in rows
                    if n.get("Name") in BUILTIN_NETWORKS or self.owners.of_labelled(n) == ident.user
                ]
            ).encode()

        return self.forward(client, head, route.target(), framing, buffered=mine)

    def on_network_create(self, ident, client, head, route, framing) -> bool:
        body = self.json_body(client, framing, schema.NETWORK_CREATE)
        if body.get("Driver") not in (None, "", "bridge"):
            raise Refused(f"network driver {body['Driver']!r} is not allowed (bridge only)")
        for key in ("Ingress", "ConfigOnly", "ConfigFrom"):
            if body.get(key):
                raise Refused(f"{key} networks are for admins")
        if body.get("Scope") not in (None, "", "local"):
            raise Refused("only local networks may be created")
        options = set(body.get("Options") or {}) - NETWORK_OPTIONS
        if options:
            raise Refused(f"network options {sorted(options)} are not allowed")
        ipam = body.get("IPAM") or {}
        if (
            ipam.get("Config")
            or ipam.get("Options")
            or ipam.get("Driver") not in (None, "", "default")
        ):
            raise Refused(
                "choosing subnets (IPAM) is for admins: a subnet can hide part of the host's network"
            )
        name = str(body.get("Name") or "")
        if name in BUILTIN_NETWORKS or self.engine.inspect("networks", name) is not None:
            raise HttpError(409, f"network with name {name} already exists")
        body["Labels"] = {**creating.own_labels(body.get("Labels")), OWNER_LABEL: ident.user}
        return self.forward(client, head, route.target(), framing, body=json.dumps(body).encode())

    def on_network_op(self, ident, client, head, route, framing) -> bool:
        self.no_body(client, framing)
        network = self.engine.inspect("networks", str(route.ref))
        if network is None:
            raise HttpError(404, f"network {route.ref} not found")
        builtin = network.get("Name") in BUILTIN_NETWORKS
        if (
            not (builtin and head.method == "GET")
            and self.owners.of_labelled(network) != ident.user
        ):
            raise Refused(f"network {route.ref} belongs to another user")
        if builtin and head.method == "GET":
            network["Containers"] = {
                cid: entry
                for cid, entry in (network.get("Containers") or {}).items()
                if self.owners.of_container_id(cid) == ident.user
            }
            data = json.dumps(network).encode()
            client.sock.sendall(response(200, "OK", data, keep_alive=head.keep_alive()))
            return head.keep_alive()
        return self.forward(client, head, route.with_ref(str(network["Id"])), framing)

    def on_network_connect(self, ident, client, head, route, framing) -> bool:
        body = self.json_body(client, framing, schema.NETWORK_CONNECT)
        if not self._network_usable(ident, str(route.ref)):
            raise Refused(f"network {route.ref} belongs to another user")
        body["Container"] = self.own_container(ident, str(body.get("Container") or ""))
        return self.forward(client, head, route.target(), framing, body=json.dumps(body).encode())

    def on_container_create(self, ident, client, head, route, framing) -> bool:
        body = self.json_body(client, framing, schema.CONTAINER_CREATE)
        name = route.param("name")
        lookups = Lookups(
            own_container=lambda ref: self._owns_container(ident, ref),
            usable_network=lambda ref: self._network_usable(ident, ref),
            usable_volume=lambda ref: self._volume_usable(ident, ref),
        )
        problems = refusals(
            body, self.rules_for(ident), lookups
        ) + creating.unsupported_device_requests(body)
        if problems:
            raise Refused("; ".join(problems))
        self._create_named_volumes(ident, body)
        request = creating.admission_request(ident.user, name, body, self.nvidia_runtime())

        def create(prepared: admission.Prepared, created: Callable[[str], None]) -> bool:
            def bind(status: int, data: bytes) -> bytes:
                if status == 201:  # bound before the client hears of it (a start follows)
                    created(str(engine_json(data, dict).get("Id")))
                return data

            return self.forward(
                client,
                head,
                route.target(),
                framing,
                body=json.dumps(prepared.body).encode(),
                buffered=bind,
            )

        try:
            return admission.admit(request, create, run=self.in_runtime)
        except admission.AdmissionRefused as refused:
            raise Refused(str(refused)) from None

    def _create_named_volumes(self, ident: Identity, body: dict[str, Any]) -> None:
        """Named volumes the engine would create on the fly get the owner's label first."""
        host = body.get("HostConfig") or {}
        names = [source for kind, source, _ in mount_sources(host) if kind == "volume"]
        for name in names:
            if self.engine.inspect("volumes", name) is None:
                self.engine.call(
                    "POST", "/volumes/create", {"Name": name, "Labels": {OWNER_LABEL: ident.user}}
                )


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


_ID_PREFIX = b'{"Id":"'


def _inspected_id(data: bytes) -> str:
    """The id at the start of an engine inspect answer (its first field), or ""."""
    if data.startswith(_ID_PREFIX) and data[71:72] == b'"':
        return data[7:71].decode("ascii", "replace")
    return ""


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def json_array_filter(data: bytes, keep: Callable[[dict[str, Any]], bool]) -> bytes:
    """The engine's JSON array with only the objects ``keep`` accepts, each passed on as the
    engine's own text (decoding is needed to judge a row; encoding it again is not)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(502, "the engine's answer could not be checked; try again") from None
    end = _SPACE.match(text, 0).end()
    if text[end : end + 1] != "[":
        raise HttpError(502, "the engine's answer could not be checked; try again")
    position = _SPACE.match(text, end + 1).end()
    kept: list[str] = []
    while text[position : position + 1] != "]":
        try:
            row, stop = _DECODER.raw_decode(text, position)
        except ValueError:
            raise HttpError(502, "the engine's answer could not be checked; try again") from None
        if not isinstance(row, dict):
            raise HttpError(502, "the engine's answer could not be checked; try again")
        if keep(row):
            kept.append(text[position:stop])
        position = _SPACE.match(text, stop).end()
        if text[position : position + 1] == ",":
            position = _SPACE.match(text, position + 1).end()
        elif text[position : position + 1] != "]":
            raise HttpError(502, "the engine's answer could not be checked; try again")
    return ("[" + ",".join(kept) + "]\n").encode("utf-8")


def engine_json(data: bytes, shape: type) -> Any:
    """An engine answer the policy reads; anything but the expected shape is a 502, not a
    guess (and never a crash)."""
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if not isinstance(value, shape):
        raise HttpError(502, "the engine's answer could not be checked; try again")
    if shape is list and not all(isinstance(item, dict) for item in value):
        raise HttpError(502, "the engine's answer could not be checked; try again")
    return value


def _hijackable(target: str) -> bool:
    path = target.split("?", 1)[0]
    return path.endswith("/attach") or (path.endswith("/start") and "/exec/" in path)
