"""The ``plugins.cgroups`` section of the ds01 configuration file."""

from __future__ import annotations

import re
from typing import Literal

import attrs

Driver = Literal["auto", "cgroupfs", "systemd"]
Version = Literal["auto", "v1", "v2"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.]*$")


def problems(config: CgroupsConfig) -> list[str]:
    """Every problem with the section, each naming its field: the loader shows them together
    under ``plugins.cgroups`` (an attrs validator would stop at the first)."""
    found = []
    for field in ("root", "default_group"):
        value = getattr(config, field)
        if not _NAME.match(value):
            # one cgroup directory and one slice-name part: no '/', and no '-' (nesting to
            # systemd)
            found.append(
                f"{field}: expected a plain name (letters, digits, '_' and '.', not starting "
                f"with '.'), got {value!r}"
            )
    for field in ("cgroup_fs", "systemd_unit_dir"):
        value = getattr(config, field)
        if not value.startswith("/"):
            found.append(f"{field}: must be an absolute path, got {value!r}")
    for index, path in enumerate(config.data_paths):
        if not path.startswith("/"):
            found.append(f"data_paths[{index}]: must be an absolute path, got {path!r}")
    return found


@attrs.define
class CgroupsConfig:
    """Where the per-user cgroups live and how they are made.

    ``driver`` and ``version`` are detected from ``docker info`` (``CgroupDriver``,
    ``CgroupVersion``) unless set; set them to pin the choice or to work without an engine.
    """

    root: str = "ds01"
    cgroup_fs: str = "/sys/fs/cgroup"
    systemd_unit_dir: str = "/etc/systemd/system"
    data_paths: list[str] = attrs.Factory(list)
    default_group: str = "default"
    driver: Driver = "auto"
    version: Version = "auto"

    def __attrs_post_init__(self) -> None:
        found = problems(self)
        if found:
            raise ValueError("; ".join(found))
