"""Who is asking: the caller every service operation acts for.

The API socket learns the uid from the kernel (``SO_PEERCRED``); the in-process CLI (root)
from its own process, honouring ``sudo`` so that ``sudo ds01 …`` acts for the user who typed
it. Nothing the client sends can change who the caller is.
"""

from __future__ import annotations

import os
import socket
import struct

import attrs

from ds01_core.users import normalize_username, unix_groups_of, username_for_uid


@attrs.frozen
class Caller:
    """A person (or root) on whose behalf an operation runs."""

    name: str
    uid: int
    admin: bool

    @classmethod
    def from_uid(cls, uid: int, admin_group: str) -> Caller | None:
        """The caller for ``uid`` (passwd/NSS, LDAP included), or None for a uid without an
        account: such a caller is refused, never guessed."""
        name = username_for_uid(uid)
        if name is None:
            return None
        return cls(name, uid, uid == 0 or admin_group in unix_groups_of(name))

    @classmethod
    def of_this_process(cls, admin_group: str) -> Caller:
        """The caller of an in-process command: ``SUDO_USER`` under sudo, else the real uid."""
        if os.geteuid() == 0 and os.environ.get("SUDO_USER"):
            name = normalize_username(os.environ["SUDO_USER"])
            uid = int(os.environ.get("SUDO_UID") or 0)
            return cls(name, uid, admin_group in unix_groups_of(name))
        uid = os.getuid()
        name = username_for_uid(uid) or f"uid:{uid}"
        return cls(name, uid, uid == 0 or admin_group in unix_groups_of(name))

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "uid": self.uid, "admin": self.admin}


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket, from the kernel."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid
