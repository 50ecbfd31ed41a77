"""The ``plugins.cgroups`` section of the ds01 configuration file."""

from __future__ import annotations

import re
from typing import Literal

import attrs

from ds01_core.api import AbsPath

Driver = Literal["auto", "cgroupfs", "systemd"]
Version = Literal["auto", "v1", "v2"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.]*$")


@attrs.define
class CgroupsConfig:
    """Where the per-user cgroups live and how they are made.

    ``driver`` and ``version`` are detected from ``docker info`` (``CgroupDriver``,
    ``CgroupVersion``) unless set; set them to pin the choice or to work without an engine.
    """

    root: str = "ds01"
    cgroup_fs: AbsPath = AbsPath("/sys/fs/cgroup")
    systemd_unit_dir: AbsPath = AbsPath("/etc/systemd/system")
    data_paths: list[AbsPath] = attrs.Factory(list)
    default_group: str = "default"
    driver: Driver = "auto"
    version: Version = "auto"

    def config_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """The names' syntax, reported by the core with their paths (``plugins.cgroups.root``);
        the paths are checked by the core's converter (:data:`~ds01_core.api.AbsPath`).
        """
        found: list[tuple[tuple[str | int, ...], str]] = []
        for field in ("root", "default_group"):
            value = getattr(self, field)
            if not _NAME.match(value):
                # one cgroup directory and one slice-name part: no '/', and no '-' (nesting to
                # systemd)
                found.append(
                    (
                        (field,),
                        "expected a plain name (letters, digits, '_' and '.', not starting "
                        f"with '.'), got {value!r}",
                    )
                )
        return found
