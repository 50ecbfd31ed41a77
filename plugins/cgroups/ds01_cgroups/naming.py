"""Where a user's cgroup is: its Docker ``CgroupParent``, its directory, its systemd slices.

cgroupfs driver: ``/<root>/<group>/<user>`` (``/ds01/default/alice``).

systemd driver: ``<root>.slice`` → ``<root>-<group>.slice`` → ``<root>-<group>-<user>.slice``.
A ``-`` in a slice name means nesting to systemd, so a ``-`` inside a user or group name is
escaped the way ``systemd-escape`` does it (``-`` → ``\\x2d``, and a leading ``.`` → ``\\x2e``),
not replaced by ``_``: escaping keeps ``a-b`` and ``a_b`` apart, and it is what systemd itself
shows. User names are normalised first (domain stripped, lower case, unsafe characters → ``_``,
as :func:`ds01_core.api.safe_name` does everywhere in ds01).
"""

from __future__ import annotations

import re
from typing import Literal

import attrs

from ds01_core.api import safe_name

DriverName = Literal["cgroupfs", "systemd"]

_UNSAFE_GROUP = re.compile(r"[^A-Za-z0-9_.-]")
_UNIT_SAFE = re.compile(r"[A-Za-z0-9:_.]")


@attrs.frozen
class UserCgroup:
    """One user's cgroup under one driver.

    :ivar parent: what goes into ``HostConfig.CgroupParent``.
    :ivar path: the cgroup's directory relative to a hierarchy's root (a v1 controller's
        mount point, or the v2 root).
    :ivar slices: the slice units from the top down (systemd driver only).
    """

    user: str
    group: str
    driver: DriverName
    parent: str
    path: str
    slices: tuple[str, ...] = ()

    @property
    def unit(self) -> str | None:
        """The user's own slice unit (systemd driver), else None."""
        return self.slices[-1] if self.slices else None


def path_part(name: str) -> str:
    """A name made safe as one directory name: no ``/``, never ``.``/``..`` or hidden."""
    cleaned = _UNSAFE_GROUP.sub("_", name) or "_"
    return "_" + cleaned[1:] if cleaned.startswith(".") else cleaned


def user_part(user: str) -> str:
    """A user name as it appears in cgroup and unit names."""
    return path_part(safe_name(user))


def escape_unit_part(text: str) -> str:
    """Escape ``text`` for use between the ``-`` of a slice name, like ``systemd-escape``:
    every byte outside ``[A-Za-z0-9:_.]`` (``-`` included) becomes ``\\xNN``, and so does a
    leading ``.``."""
    out = []
    for index, char in enumerate(text):
        if _UNIT_SAFE.fullmatch(char) and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
    return "".join(out)


def user_cgroup(
    root: str, group: str | None, user: str, driver: DriverName, *, default_group: str
) -> UserCgroup:
    """The cgroup of ``user`` in ``group`` (``default_group`` when None)."""
    group_name = path_part(group or default_group)
    user_name = user_part(user)
    if driver == "cgroupfs":
        path = f"{root}/{group_name}/{user_name}"
        return UserCgroup(user_name, group_name, driver, "/" + path, path)
    parts = [escape_unit_part(p) for p in (root, group_name, user_name)]
    slices = tuple("-".join(parts[: i + 1]) + ".slice" for i in range(len(parts)))
    return UserCgroup(user_name, group_name, driver, slices[-1], "/".join(slices), slices)


def same_parent(actual: str | None, expected: str) -> bool:
    """Whether a container's ``CgroupParent`` is ``expected`` (cgroupfs paths compared without
    leading or trailing slashes, as runc reads them)."""
    if not actual:
        return False
    return actual.strip("/") == expected.strip("/")
