"""Listening sockets handed over by systemd (socket activation, the ``sd_listen_fds`` protocol).

Why: users' sockets (the gateway's ``docker.sock``, the API's ``api.sock``) are owned by
systemd's ``.socket`` units, so they exist while the service behind them restarts, and a client
that connects meanwhile waits in the listen queue instead of failing. A program started that
way finds its sockets here; started any other way it gets ``None`` and binds the path itself.

The protocol (see ``sd_listen_fds(3)``): ``LISTEN_PID`` is the pid the sockets are meant for
(it must be ours: a child we start must not take them), ``LISTEN_FDS`` how many there are,
starting at fd 3, and ``LISTEN_FDNAMES`` their ``FileDescriptorName=``s, colon-separated.
The variables are read once and removed, and the descriptors made close-on-exec, so nothing
this process starts inherits them.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import MutableMapping

import attrs

#: the first descriptor systemd passes (SD_LISTEN_FDS_START)
LISTEN_FDS_START = 3
_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class SocketActivationError(RuntimeError):
    """systemd passed sockets, but not the one the configuration names."""


@attrs.frozen
class ListenFd:
    """One descriptor passed by systemd, with its ``FileDescriptorName=`` ("" when unnamed)."""

    fd: int
    name: str


def listen_fds(environ: MutableMapping[str, str] | None = None) -> list[ListenFd]:
    """The descriptors systemd passed to this process (empty when it passed none, or passed
    them to another pid); removes the ``LISTEN_*`` variables and marks the descriptors
    close-on-exec."""
    env = os.environ if environ is None else environ
    values = {name: env.pop(name, None) for name in _VARIABLES}
    pid, count = values["LISTEN_PID"], values["LISTEN_FDS"]
    if not pid or not count:
        return []
    try:
        if int(pid) != os.getpid():
            return []
        n = int(count)
    except ValueError:
        return []
    names = (values["LISTEN_FDNAMES"] or "").split(":")
    fds = []
    for index in range(max(n, 0)):
        fd = LISTEN_FDS_START + index
        try:
            os.set_inheritable(fd, False)
        except OSError:  # not open: LISTEN_FDS promised more than we got
            continue
        fds.append(ListenFd(fd, names[index] if index < len(names) else ""))
    return fds


_passed: list[ListenFd] | None = None


def inherited_unix_socket(path: str) -> socket.socket | None:
    """The listening ``AF_UNIX`` stream socket systemd passed us that is bound to ``path``.

    ``None`` when systemd passed no sockets: the caller binds ``path`` itself. Raises
    :class:`SocketActivationError` when sockets were passed but none is bound to ``path`` (the
    ``.socket`` unit's ``ListenStream=`` and the configuration disagree): serving elsewhere
    would leave systemd's socket accepting connections nobody answers.
    """
    global _passed
    if _passed is None:
        _passed = listen_fds()
    if not _passed:
        return None
    seen = []
    for passed in _passed:
        found = _unix_listener(passed.fd)
        if found is None:
            seen.append(f"fd {passed.fd} (not a listening Unix stream socket)")
            continue
        sock, bound = found
        if _same_path(bound, path):
            _passed.remove(passed)
            return sock
        sock.detach()  # not ours to close: it stays available for another caller
        seen.append(f"{bound or 'an unnamed socket'}")
    raise SocketActivationError(
        f"systemd passed {len(_passed)} socket(s) ({', '.join(seen)}) but none bound to {path}; "
        f"make the .socket unit's ListenStream= and the configured socket path the same"
    )


def _unix_listener(fd: int) -> tuple[socket.socket, str] | None:
    """fd as a socket object and the path it is bound to, if it is a listening Unix stream
    socket; None otherwise (the fd is left open)."""
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        bound = sock.getsockname()
    except OSError:
        sock.detach()
        return None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM or not listening:
        sock.detach()
        return None
    return sock, bound if isinstance(bound, str) else ""


def _same_path(bound: str, path: str) -> bool:
    if not bound:
        return False
    if os.path.normpath(bound) == os.path.normpath(path):
        return True
    try:  # /var/run/ds01/... and /run/ds01/... name the same file
        return os.path.samefile(bound, path)
    except OSError:
        return False
