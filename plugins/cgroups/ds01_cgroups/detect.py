"""Which cgroup driver Docker uses and which cgroup version the host runs.

Both decide where a user's cgroup is and how its limits are written, and both are the engine's
facts, so they come from ``docker info`` (``CgroupDriver``, ``CgroupVersion``) unless the
configuration pins them. Without an engine answer the version falls back to the file system
(a v2 root has ``cgroup.controllers``; a v1 or hybrid root has not); the driver has no such
fallback, because guessing it wrong puts every container in the wrong place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

import attrs

from ds01_cgroups.config import CgroupsConfig
from ds01_cgroups.naming import DriverName
from ds01_core.api import host_cpu_count

log = logging.getLogger(__name__)

VersionName = Literal["v1", "v2"]


class DetectionError(Exception):
    """The driver could not be detected (no engine answer) and the configuration does not
    name it."""


@attrs.frozen
class HostCgroups:
    """What this host's cgroups look like to ds01."""

    driver: DriverName
    version: VersionName
    docker_root: str | None = None
    #: the CPUs the engine counts (``NCPU``; ours when it did not say): the most ``--cpus``
    #: a container may be given
    cpus: int | None = None


def version_from_fs(cgroup_fs: str) -> VersionName:
    """``v2`` when the cgroup root is a unified (v2) hierarchy, else ``v1`` (v1 or hybrid)."""
    return "v2" if Path(cgroup_fs, "cgroup.controllers").exists() else "v1"


def detect_host(config: CgroupsConfig, info: Callable[[], Mapping[str, Any]]) -> HostCgroups:
    """Detect what the configuration leaves on ``auto``; ``info`` is ``docker info``.

    :raises DetectionError: ``driver: auto`` and the engine did not answer.
    """
    try:
        facts: Mapping[str, Any] = info()
        error: Exception | None = None
    except Exception as exc:  # the adapter's DockerError, or anything a test's fake raises
        facts, error = {}, exc
    driver: str = config.driver
    if driver == "auto":
        driver = str(facts.get("CgroupDriver") or "").lower()
        if driver not in ("cgroupfs", "systemd"):
            said = error or f"docker info says {driver!r}"
            raise DetectionError(
                f"cannot tell Docker's cgroup driver ({said}); "
                "set plugins.cgroups.driver to cgroupfs or systemd"
            )
    version: str = config.version
    if version == "auto":
        reported = str(facts.get("CgroupVersion") or "")
        version = {"1": "v1", "2": "v2"}.get(reported) or version_from_fs(config.cgroup_fs)
    root = facts.get("DockerRootDir")
    if error is not None:
        log.warning("docker info failed (%s): IO limits skip Docker's data root", error)
    ncpu = facts.get("NCPU")
    cpus = ncpu if isinstance(ncpu, int) and not isinstance(ncpu, bool) and ncpu > 0 else None
    return HostCgroups(
        cast(DriverName, driver),
        cast(VersionName, version),
        str(root) if root else None,
        cpus or host_cpu_count(),
    )
