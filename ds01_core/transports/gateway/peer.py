"""Who is at the other end of a gateway connection: the kernel's word, never the request's.

The calling person is a :class:`~ds01_core.services.caller.Caller`, the same type every other
transport uses; the gateway adds what only it needs — the client's pid (for the audit log) and
the caller's home directory (what they may mount).
"""

from __future__ import annotations

import pwd
import socket

import attrs

from ds01_core.domain.users import normalize_username
from ds01_core.services.caller import Caller, is_admin, peer_credentials


@attrs.frozen
class Peer:
    """The process that opened a connection."""

    pid: int
    uid: int
    #: None for a uid without an account (refused: nobody to attribute its containers to)
    caller: Caller | None
    home: str = ""

    @property
    def who(self) -> str:
        """The name the audit log gives this peer."""
        return self.caller.name if self.caller else f"uid:{self.uid}"


def peer_identity(sock: socket.socket, admin_group: str) -> Peer:
    """The peer of ``sock``, from ``SO_PEERCRED`` and the account database."""
    pid, uid, _gid = peer_credentials(sock)
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return Peer(pid, uid, None)
    caller = Caller(normalize_username(entry.pw_name), uid, is_admin(entry, admin_group))
    return Peer(pid, uid, caller, entry.pw_dir)
