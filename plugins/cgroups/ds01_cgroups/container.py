"""Per-container limits written into a create request's ``HostConfig``.

Each limit the user has is applied only where it is set, and never loosens a stricter value
the client asked for: a value the client set and that is within the limit stays; a missing,
unlimited (0, -1) or larger one is replaced by the limit.

``NanoCpus`` is capped at the user's aggregate ``cpu_quota`` as well as ``max_cpus``: one
container can never use more than the user's whole share, and on cgroup v1 a container whose
quota exceeds its parent's fails to start (EINVAL). Both are clamped to the host's CPU count:
the engine refuses a container asking for more CPUs than the host has ("Range of CPUs is from
0.01 to 2.00"), so a limit written for a bigger machine means "all of them" here. A client that used ``CpuQuota``/
``CpuPeriod`` instead keeps that form (Docker refuses both forms together).

On cgroup v1, blkio throttling is flat (a parent's limit does not cover its children), so the
user's IO limits are also given to each container through ``BlkioDevice{Read,Write}{Bps,IOps}``.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping, Sequence
from typing import Any

from ds01_cgroups.limits import CPU_PERIOD_US, DeviceIO, LimitSource

NANO = 1_000_000_000
_BLKIO = (
    ("BlkioDeviceReadBps", "rbps"),
    ("BlkioDeviceWriteBps", "wbps"),
    ("BlkioDeviceReadIOps", "riops"),
    ("BlkioDeviceWriteIOps", "wiops"),
)


def _within(asked: Any, limit: int) -> bool:
    """Whether the client's own value is a real limit no looser than ``limit``."""
    return isinstance(asked, int) and not isinstance(asked, bool) and 0 < asked <= limit


def _cap(host: MutableMapping[str, Any], key: str, limit: int | None, changes: list[str]) -> None:
    if limit is None or _within(host.get(key), limit):
        return
    host[key] = limit
    changes.append(f"{key}={limit}")


def _cpu(host: MutableMapping[str, Any], cores: float | None, changes: list[str]) -> None:
    if cores is None:
        return
    if host.get("CpuQuota") or host.get("CpuPeriod"):
        period = host.get("CpuPeriod") or CPU_PERIOD_US
        _cap(host, "CpuQuota", max(1000, int(cores * period)), changes)
        return
    _cap(host, "NanoCpus", int(cores * NANO), changes)


def _same_device(path: str, io: DeviceIO) -> bool:
    if path == io.device.node:
        return True
    try:
        rdev = os.stat(path).st_rdev
    except OSError:
        return False
    return (os.major(rdev), os.minor(rdev)) == (io.device.major, io.device.minor)


def _blkio(host: MutableMapping[str, Any], io: Sequence[DeviceIO], changes: list[str]) -> None:
    for key, attr in _BLKIO:
        entries = list(host.get(key) or [])
        for device_io in io:
            limit = getattr(device_io, attr)
            if limit is None:
                continue
            mine = [e for e in entries if _same_device(str(e.get("Path", "")), device_io)]
            if mine and all(_within(e.get("Rate"), limit) for e in mine):
                continue
            entries = [e for e in entries if e not in mine]
            entries.append({"Path": device_io.device.node, "Rate": limit})
            changes.append(f"{key}[{device_io.device.node}]={limit}")
        if entries:
            host[key] = entries


def apply_container_limits(
    host: MutableMapping[str, Any],
    limits: LimitSource,
    *,
    per_container_io: Sequence[DeviceIO] = (),
    host_cpus: int | None = None,
) -> list[str]:
    """Tighten ``host`` (a create body's ``HostConfig``) to ``limits``; returns what changed
    (``Memory=17179869184`` …) for the log. ``host_cpus`` bounds the CPU limit."""
    changes: list[str] = []
    caps = [v for v in (limits.get("max_cpus"), limits.get("cpu_quota")) if v is not None]
    if caps and host_cpus:
        caps.append(host_cpus)
    _cpu(host, min(caps) if caps else None, changes)
    for key, limit in (
        ("Memory", "memory"),
        ("MemorySwap", "memory_swap"),
        ("ShmSize", "shm_size"),
        ("PidsLimit", "pids_limit"),
    ):
        value = limits.get(limit)
        if key == "MemorySwap" and value is not None and not host.get("Memory"):
            continue  # Docker refuses a swap limit without a memory limit
        _cap(host, key, None if value is None else int(value), changes)
    _blkio(host, per_container_io, changes)
    return changes
