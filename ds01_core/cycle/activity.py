"""How busy a container is, measured between two cycles from the kernel's own counters.

Cheap on purpose (a few small reads per container, no ``docker stats``, which takes seconds):

- CPU: the container cgroup's CPU time (v1 ``cpuacct.usage``, v2 ``cpu.stat`` usage_usec);
- network: the bytes in ``/proc/<main pid>/net/dev`` (the container's own network namespace),
  loopback excluded;
- processes: PIDs in the container's cgroup not seen in the last sample (something was started).

GPU activity comes from the GPU provider (see :func:`gpu_active`). A signal that cannot be read
is ``None``, never a guess: a container with no usable signal is never called idle, and a GPU
whose processes could not be read is unknown, not idle.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import attrs

from ds01_core.domain.model import GpuProcess, GpuSlot

CGROUP_ROOT = Path("/sys/fs/cgroup")


@attrs.frozen
class Counters:
    """Raw counters of one container at one moment."""

    at: float
    cpu_ns: int | None
    net_bytes: int | None
    pids: frozenset[int] | None


@attrs.frozen
class Activity:
    """Rates between two samples; ``None`` where a signal is unavailable."""

    cpu_cores: float | None
    net_bytes_per_s: float | None
    new_processes: int | None
    seconds: float


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def cgroup_paths(pid: int) -> dict[str, str]:
    """controller → cgroup path of ``pid`` (``""`` is the v2 unified hierarchy)."""
    text = _read(Path(f"/proc/{pid}/cgroup")) or ""
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2]
    return paths


def cpu_ns(pid: int, root: Path = CGROUP_ROOT) -> int | None:
    paths = cgroup_paths(pid)
    if "cpuacct" in paths:
        for mount in ("cpuacct", "cpu,cpuacct"):
            text = _read(root / mount / paths["cpuacct"].lstrip("/") / "cpuacct.usage")
            if text is not None:
                return int(text.strip())
    if "" in paths and (root / "cgroup.controllers").exists():  # pure v2 (not hybrid)
        text = _read(root / paths[""].lstrip("/") / "cpu.stat")
        for line in (text or "").splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) * 1000
    return None


def memory_bytes(pid: int, root: Path = CGROUP_ROOT) -> int | None:
    """Memory charged to ``pid``'s container cgroup (v1 ``memory.usage_in_bytes``, v2
    ``memory.current``)."""
    paths = cgroup_paths(pid)
    if "memory" in paths:
        text = _read(root / "memory" / paths["memory"].lstrip("/") / "memory.usage_in_bytes")
        if text is not None:
            return int(text.strip())
    if "" in paths and (root / "cgroup.controllers").exists():
        text = _read(root / paths[""].lstrip("/") / "memory.current")
        if text is not None:
            return int(text.strip())
    return None


def cgroup_pids(pid: int, root: Path = CGROUP_ROOT) -> frozenset[int] | None:
    paths = cgroup_paths(pid)
    candidates = []
    if "pids" in paths:
        candidates.append(root / "pids" / paths["pids"].lstrip("/") / "cgroup.procs")
    if "" in paths:
        unified = root if (root / "cgroup.controllers").exists() else root / "unified"
        candidates.append(unified / paths[""].lstrip("/") / "cgroup.procs")
    for path in candidates:
        text = _read(path)
        if text is not None:
            return frozenset(int(x) for x in text.split())
    return None


def net_bytes(pid: int) -> int | None:
    """rx + tx bytes of every interface but loopback in ``pid``'s network namespace."""
    text = _read(Path(f"/proc/{pid}/net/dev"))
    if text is None:
        return None
    total = 0
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = rest.split()
        if len(fields) >= 9:
            total += int(fields[0]) + int(fields[8])
    return total


def sample(pid: int, *, root: Path = CGROUP_ROOT, now: float | None = None) -> Counters:
    return Counters(
        at=time.monotonic() if now is None else now,
        cpu_ns=cpu_ns(pid, root),
        net_bytes=net_bytes(pid),
        pids=cgroup_pids(pid, root),
    )


def activity(before: Counters, after: Counters) -> Activity:
    """The rates between two samples of the same container (counters reset → unavailable)."""
    seconds = max(after.at - before.at, 1e-6)

    def rate(a: int | None, b: int | None, scale: float = 1.0) -> float | None:
        if a is None or b is None or b < a:
            return None
        return (b - a) / seconds / scale

    new = None
    if before.pids is not None and after.pids is not None:
        new = len(after.pids - before.pids)
    return Activity(
        cpu_cores=rate(before.cpu_ns, after.cpu_ns, 1e9),
        net_bytes_per_s=rate(before.net_bytes, after.net_bytes),
        new_processes=new,
        seconds=seconds,
    )


def gpu_active(
    slot_uuids: Sequence[str],
    slots: Mapping[str, GpuSlot],
    processes: Sequence[GpuProcess],
    container_pids: frozenset[int] | None,
    utilization_threshold: float,
    *,
    read: Collection[str] | None = None,
    complete: bool = True,
) -> bool | None:
    """Whether a container's GPU slots are in use: utilisation where NVML gives it (whole
    GPUs); on MIG, where it does not, the presence of the container's processes holding memory
    on the slot.

    None when the container has no GPU slot, or when a slot without utilisation shows none of
    the container's processes and its processes were not ``read`` (None: all were); a slot the
    inventory does not list counts as read only when the listing was ``complete`` (the slot is
    gone). Unknown, never idle.
    """
    if not slot_uuids:
        return None
    unknown = False
    for uuid in slot_uuids:
        slot = slots.get(uuid)
        if slot is not None and slot.utilization is not None:
            if slot.utilization >= utilization_threshold:
                return True
            continue
        for proc in processes:
            if proc.slot_uuid != uuid:
                continue
            mine = container_pids is None or proc.pid in container_pids
            if mine and (proc.used_memory is None or proc.used_memory > 0):
                return True
        if slot is None:  # gone, when the listing named every slot; else maybe unreadable
            unknown = unknown or not complete
        elif read is not None and uuid not in read:
            unknown = True
    return None if unknown else False
