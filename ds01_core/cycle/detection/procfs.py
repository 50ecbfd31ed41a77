"""Reading what a process is from ``/proc``: its real uid, its container, its command line.

Only the few files needed are read, each once, and a process that vanished between the GPU
driver's listing and our look is simply gone (None), never an error.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import attrs

PROC = Path("/proc")

# cgroupfs: ".../docker/<64 hex>" or "/<parent>/<64 hex>" (a --cgroup-parent);
# systemd: ".../docker-<64 hex>.scope"
_CONTAINER_ID = re.compile(r"(?:^|/)(?:docker-)?([0-9a-f]{64})(?:\.scope)?(?:/|$)")


@attrs.frozen
class ProcInfo:
    pid: int
    uid: int
    comm: str
    cmdline: str
    container_id: str | None
    start_ticks: int


def container_id_from_cgroup(text: str) -> str | None:
    """The Docker container id in a ``/proc/<pid>/cgroup`` text, or None for a host process.

    Handles cgroup v1 (one line per hierarchy) and v2 (``0::/…``), the cgroupfs driver
    (``/docker/<id>``, or ``/<parent>/<id>`` with ``--cgroup-parent``) and the systemd driver
    (``docker-<id>.scope``).
    """
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        match = _CONTAINER_ID.search(parts[2])
        if match:
            return match.group(1)
    return None


def real_uid_from_status(text: str) -> int | None:
    """The real uid (first field of ``Uid:``) in a ``/proc/<pid>/status`` text."""
    for line in text.splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            return int(fields[1]) if len(fields) > 1 else None
    return None


def _start_ticks(stat_text: str) -> int:
    # field 22 (starttime); comm (field 2) may contain spaces and parentheses
    after_comm = stat_text.rsplit(")", 1)[-1].split()
    return int(after_comm[19]) if len(after_comm) > 19 else 0


def _read(path: str) -> bytes:
    # os-level reads: /proc files are small and this runs thousands of times per cycle
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


PROC_FILES = ("status", "cgroup", "cmdline", "stat")


def read_proc(pid: int, root: Path = PROC) -> ProcInfo | None:
    """Everything ds01 needs about ``pid``, or None when the process is gone or unreadable."""
    base = f"{root}/{pid}/"
    try:
        status, cgroup, cmdline_raw, stat = (_read(base + name) for name in PROC_FILES)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    status_text = status.decode(errors="replace")
    uid = real_uid_from_status(status_text)
    if uid is None:
        return None
    comm = ""
    if status_text.startswith("Name:"):
        comm = status_text.split("\n", 1)[0][5:].strip()
    cmdline = cmdline_raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return ProcInfo(
        pid=pid,
        uid=uid,
        comm=comm,
        cmdline=cmdline,
        container_id=container_id_from_cgroup(cgroup.decode(errors="replace")),
        start_ticks=_start_ticks(stat.decode(errors="replace")),
    )
