"""Who is asking: the caller every service operation acts for.

The API socket learns the uid from the kernel (``SO_PEERCRED``); the in-process CLI (root)
from its own process, honouring ``sudo`` so that ``sudo ds01 …`` acts for the user who typed
it. Nothing the client sends can change who the caller is.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct

import attrs

from ds01_core.domain.users import normalize_username


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
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return None
        return cls(entry.pw_name, uid, is_admin(entry, admin_group))

    @classmethod
    def of_this_process(cls, admin_group: str) -> Caller:
        """The caller of an in-process command: ``SUDO_USER`` under sudo, else the real uid."""
        if os.geteuid() == 0 and os.environ.get("SUDO_USER"):
            name = normalize_username(os.environ["SUDO_USER"])
            try:
                entry = pwd.getpwnam(name)
            except KeyError:  # sudo for a name passwd does not know: nobody's admin
                return cls(name, int(os.environ.get("SUDO_UID") or 0), False)
            return cls(name, entry.pw_uid, entry.pw_uid != 0 and is_admin(entry, admin_group))
        uid = os.getuid()
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return cls(f"uid:{uid}", uid, uid == 0)
        return cls(entry.pw_name, uid, is_admin(entry, admin_group))

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "uid": self.uid, "admin": self.admin}


def is_admin(entry: pwd.struct_passwd, admin_group: str) -> bool:
    """Root, or a member of ``admin_group`` (listed, or as primary group): one group looked
    up by name, never a scan of every group (slow with a large directory behind NSS)."""
    if entry.pw_uid == 0:
        return True
    try:
        group = grp.getgrnam(admin_group)
    except KeyError:
        return False
    return entry.pw_name in group.gr_mem or entry.pw_gid == group.gr_gid


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket, from the kernel."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid
