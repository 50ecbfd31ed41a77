"""Running one of ds01's socket servers (``ds01-gateway``, ``ds01-api``) as a program.

Both start the same way and must behave alike under systemd: a failure to start is one line and
the exit code of its kind (:mod:`ds01_core.framework.startup`); the listening socket is systemd's when it passed one
(socket activation), else bound here; SIGHUP re-reads the configuration on a thread of its own
(a refused file is logged, and the last good one kept); SIGTERM and SIGINT stop accepting, let
the requests being answered finish (at most :data:`DRAIN_SECONDS`), then exit. Under socket
activation a connection that arrives meanwhile waits in systemd's queue for the next process.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from ds01_core.domain.config import ConfigError
from ds01_core.framework.manager import PluginStartupError
from ds01_core.framework.runtime import Runtime
from ds01_core.framework.startup import EXIT_UNAVAILABLE, StartupError, starting
from ds01_core.transports.systemd_sockets import SocketActivationError, inherited_unix_socket

#: How long a stopping server lets the connections it is answering finish. Idle keep-alive
#: connections and long streams (``docker logs -f``, ``ds01 events -f``) end after it.
DRAIN_SECONDS = 5.0


class SocketServer(Protocol):
    socket_path: str

    def bind(self, listening: socket.socket | None = None) -> Any: ...
    def serve(self) -> None: ...
    def stop_accepting(self) -> None: ...
    def shutdown(self) -> None: ...
    def reload(self, runtime: Runtime) -> None: ...
    def event(self, event_type: str, user: str | None, details: dict[str, Any]) -> None: ...


class UnixServer(socketserver.ThreadingUnixStreamServer):
    """A thread per connection; threads do not keep a stopping process alive (it first lets
    the requests being answered finish, see :func:`finish_requests`)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def unix_server(
    path: str,
    handler: type[socketserver.BaseRequestHandler],
    listening: socket.socket | None = None,
) -> UnixServer:
    """A server on ``listening`` (systemd's socket: its file and mode are left to systemd), or
    on ``path`` bound here, mode 0666 — anyone may connect, who they are comes from
    ``SO_PEERCRED``. A stale socket file is replaced; one a live server answers is refused."""
    if listening is not None:
        server = UnixServer(path, handler, bind_and_activate=False)
        server.socket.close()
        server.socket = listening
        return server
    where = Path(path)
    where.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(where.parent, 0o755)
    if where.is_socket() or where.exists():
        if _answers(where):
            raise OSError(f"another server is listening on {where}")
        where.unlink()
    umask = os.umask(0o077)
    try:
        server = UnixServer(path, handler)
    finally:
        os.umask(umask)
    os.chmod(where, 0o666)
    return server


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


class ConnectionCounts:
    """Connections each uid holds, so that one user's connections (each a thread) cannot
    crowd the others out; root and admins are never refused."""

    def __init__(self) -> None:
        self._held: dict[int, int] = {}
        self._lock = threading.Lock()

    def admit(self, uid: int, admin: bool, limit: int) -> tuple[bool, int]:
        """(admitted, connections held before this one); an admitted one must :meth:`leave`."""
        with self._lock:
            held = self._held.get(uid, 0)
            admitted = uid == 0 or admin or held < limit
            if admitted:
                self._held[uid] = held + 1
        return admitted, held

    def leave(self, uid: int) -> None:
        with self._lock:
            left = self._held.get(uid, 1) - 1
            if left > 0:
                self._held[uid] = left
            else:
                self._held.pop(uid, None)


def start_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def listen(server: SocketServer) -> socket.socket | None:
    """Bind ``server`` to systemd's socket, or to one of its own; the socket systemd passed, if
    any. A socket it cannot listen on is a :class:`StartupError` of its kind."""
    try:
        listening = inherited_unix_socket(server.socket_path)
    except SocketActivationError as exc:
        raise StartupError(str(exc), EXIT_UNAVAILABLE) from exc
    try:
        server.bind(listening)
    except OSError as exc:
        raise StartupError(_cannot_listen(server.socket_path, exc), EXIT_UNAVAILABLE) from exc
    return listening


def _cannot_listen(path: str, exc: OSError) -> str:
    """Why ``path`` cannot be listened on, and what to do about it."""
    if exc.errno is None:  # refused here: a live server answers on it
        return f"{exc} (stop that server first, or choose another socket)"
    where = f" ({exc.filename})" if exc.filename and exc.filename != path else ""
    todo = (
        "run it as root, or as the user its systemd unit names"
        if isinstance(exc, PermissionError)
        else "check the socket's path and its directory"
    )
    return f"cannot listen on {path}: {exc.strerror}{where} ({todo})"


def serve_until_stopped(
    program: str, server: SocketServer, load: Callable[[], Runtime], started: str
) -> None:
    """Listen (systemd's socket, or one bound here), handle signals, log ``started``, serve.

    A socket that cannot be listened on ends the process: :func:`~ds01_core.framework.startup.fail`.
    """
    log = logging.getLogger(f"ds01.{program}")
    with starting(program):
        listening = listen(server)

    def reload(_signum: int, _frame: FrameType | None) -> None:
        def work() -> None:
            try:
                server.reload(load())
                log.info("configuration reloaded")
            except (ConfigError, PluginStartupError) as exc:
                log.error("configuration refused, keeping the last good one:\n%s", exc)
                server.event("config.reload_refused", None, {"error": str(exc)})

        threading.Thread(target=work, daemon=True).start()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.stop_accepting, daemon=True).start()

    signal.signal(signal.SIGHUP, reload)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.event(
        started, None, {"socket": server.socket_path, "socket_activated": listening is not None}
    )
    server.serve()
    finish_requests(DRAIN_SECONDS)
    server.shutdown()


def finish_requests(grace: float) -> None:
    """Wait (at most ``grace`` seconds) for the threads answering connections, so that a stop
    never cuts a request in half: its client would see an empty answer."""
    deadline = time.monotonic() + grace
    for thread in threading.enumerate():
        if thread.name.endswith("(process_request_thread)"):
            thread.join(max(0.0, deadline - time.monotonic()))
