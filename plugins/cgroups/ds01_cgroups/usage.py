"""What a user uses of their cgroup limits right now, for ``ds01 quota``."""

from __future__ import annotations

from pathlib import Path

from ds01_cgroups.enforcer import Enforcer
from ds01_core.api import EffectiveLimits, QuotaLine


def _number(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stat(path: Path, key: str) -> int | None:
    """One ``key value`` line of a cgroup v2 stat file (``cpu.stat``)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def quota_lines(enforcer: Enforcer, user: str, limits: EffectiveLimits) -> list[QuotaLine]:
    """Memory and pids in use by the user's cgroup against ``memory_max``/``tasks_max``, the CPU
    time it has used, and the CPU and IO limits in force (rates need two samples: shown as
    limits only)."""
    cg = enforcer.cgroup_of(user, limits.group)
    fs = Path(enforcer.config.cgroup_fs)
    cpu_seconds: float | None
    if enforcer.host.version == "v2":
        memory = _number(fs / cg.path.lstrip("/") / "memory.current")
        pids = _number(fs / cg.path.lstrip("/") / "pids.current")
        usec = _stat(fs / cg.path.lstrip("/") / "cpu.stat", "usage_usec")
        cpu_seconds = usec / 1e6 if usec is not None else None
    else:
        memory = _number(fs / "memory" / cg.path.lstrip("/") / "memory.usage_in_bytes")
        pids = _number(fs / "pids" / cg.path.lstrip("/") / "pids.current")
        nsec = _number(fs / "cpuacct" / cg.path.lstrip("/") / "cpuacct.usage")
        cpu_seconds = nsec / 1e9 if nsec is not None else None
    where = f"cgroup {cg.parent}"
    lines = [
        QuotaLine(
            "memory",
            memory,
            limits.get("memory_max"),
            "bytes",
            where,
            over=bool(memory and limits.get("memory_max") and memory > limits["memory_max"]),
        ),
        QuotaLine("processes", pids, limits.get("tasks_max"), "count", where),
        QuotaLine("cpu", None, limits.get("cpu_quota"), "cores", "all your containers together"),
        # CPU time used since the cgroup was made: a counter (the exporter's per-user CPU)
        QuotaLine("cpu time", cpu_seconds, None, "seconds", where),
    ]
    for key, unit in (
        ("io_read_bps", "bytes/s"),
        ("io_write_bps", "bytes/s"),
        ("io_read_iops", "ops/s"),
        ("io_write_iops", "ops/s"),
    ):
        if limits.get(key) is not None:
            lines.append(QuotaLine(key.replace("_", " "), None, limits[key], unit, "per device"))
    return lines
