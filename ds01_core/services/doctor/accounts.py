"""Who is who for the doctor: users, groups, admins, and files' owners by name."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat


class Accounts:
    """Users and groups, read once per run; admins are root and ``admin_group``'s members."""

    def __init__(self, admin_group: str):
        self.by_name = {p.pw_name: p for p in pwd.getpwall()}
        self.admin_group = admin_group
        try:
            admin = grp.getgrnam(admin_group)
            self.admins = {"root", *admin.gr_mem} | self.primary_members(admin.gr_gid)
        except KeyError:
            self.admins = {"root"}

    def user(self, name: str) -> pwd.struct_passwd | None:
        if name not in self.by_name:
            with contextlib.suppress(KeyError):  # not enumerable (LDAP without enumeration)
                self.by_name[name] = pwd.getpwnam(name)
        return self.by_name.get(name)

    def primary_members(self, gid: int) -> set[str]:
        return {name for name, p in self.by_name.items() if p.pw_gid == gid}

    def supplementary_members(self, gid: int) -> set[str]:
        try:
            return set(grp.getgrgid(gid).gr_mem)
        except KeyError:
            return set()

    def gids(self, name: str) -> set[int]:
        entry = self.user(name)
        return set(os.getgrouplist(name, entry.pw_gid)) if entry else set()

    def is_admin(self, name: str) -> bool:
        entry = self.user(name)
        return name in self.admins or (entry is not None and entry.pw_uid == 0)


def group_name(gid: int) -> str:
    """The group's name, or its number when it has none."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def user_name(uid: int) -> str:
    """The user's name, or their number when they have none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def describe_owner(st: os.stat_result) -> str:
    """``owner:group 0660``, as a finding shows a file."""
    return f"{user_name(st.st_uid)}:{group_name(st.st_gid)} {stat.S_IMODE(st.st_mode):04o}"
