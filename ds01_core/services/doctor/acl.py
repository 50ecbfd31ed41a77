"""Permissions as the kernel checks them: mode bits, POSIX access ACLs, the path to a socket.

The doctor asks "who could connect to this socket?" the way the kernel answers it: search
permission on every directory above it, write permission on it, through the owner, the group,
the other bits, or a named ACL entry (under the ACL's mask).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import attrs

#: a uid and group set that match no owner, group or ACL entry: "every other user"
NOBODY = -1

_ACL_XATTR = "system.posix_acl_access"
_ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK = 0x02, 0x04, 0x08, 0x10


@attrs.frozen
class Acl:
    """The named entries of a POSIX access ACL (the owner and other entries mirror the mode)."""

    users: dict[int, int]
    groups: dict[int, int]
    group_obj: int
    mask: int | None


def read_acl(path: str) -> Acl | None:
    """The file's access ACL, or None when it has none beyond its mode bits."""
    try:
        raw = os.getxattr(path, _ACL_XATTR)
    except OSError:  # ENODATA: no ACL; ENOTSUP: the filesystem has none
        return None
    users: dict[int, int] = {}
    groups: dict[int, int] = {}
    group_obj, mask = 0, None
    for offset in range(4, len(raw) - 7, 8):
        tag, perm, ident = struct.unpack_from("<HHI", raw, offset)
        if tag == _ACL_USER:
            users[ident] = perm
        elif tag == _ACL_GROUP:
            groups[ident] = perm
        elif tag == _ACL_GROUP_OBJ:
            group_obj = perm
        elif tag == _ACL_MASK:
            mask = perm
    if not users and not groups:
        return None
    return Acl(users, groups, group_obj, mask)


def permitted(st: os.stat_result, acl: Acl | None, uid: int, gids: set[int], want: int) -> bool:
    """POSIX access check (owner, named user, groups, other) for ``want`` (4 r, 2 w, 1 x)."""
    mode = st.st_mode
    if uid == 0:
        return True
    if uid == st.st_uid:
        return (mode >> 6) & want == want
    if acl is not None:
        mask = 7 if acl.mask is None else acl.mask
        if uid in acl.users:
            return acl.users[uid] & mask & want == want
        perms = [acl.group_obj] if st.st_gid in gids else []
        perms += [perm for gid, perm in acl.groups.items() if gid in gids]
        if perms:
            return any(perm & mask & want == want for perm in perms)
    elif st.st_gid in gids:
        return (mode >> 3) & want == want
    return mode & want == want


def can_connect(path: str, uid: int, gids: set[int]) -> bool:
    """Whether a process with ``uid`` and ``gids`` could connect to the socket at ``path``:
    search permission on every directory above it, write permission on it."""
    real = Path(os.path.realpath(path))
    try:
        for directory in reversed(real.parents):
            if not permitted(os.stat(directory), read_acl(str(directory)), uid, gids, 1):
                return False
        return permitted(os.stat(real), read_acl(str(real)), uid, gids, 2)
    except OSError:
        return False
