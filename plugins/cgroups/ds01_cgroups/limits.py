"""A user's aggregate limits, the part of their effective limits that lives on their cgroup.

Kept apart from the files that express them (v1, v2, systemd) so that every backend starts from
the same values and a cycle can tell "nothing changed" by comparing two of these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import attrs

from ds01_cgroups.devices import BlockDevice

#: the CFS period every backend uses (the kernel's and systemd's default: 100 ms)
CPU_PERIOD_US = 100_000

IO_KEYS = ("io_read_bps", "io_write_bps", "io_read_iops", "io_write_iops")


class LimitSource(Protocol):
    """Anything with ``get(key)``: :class:`ds01_core.api.EffectiveLimits`, or a dict."""

    def get(self, key: str, default: Any = None) -> Any: ...


@attrs.frozen
class DeviceIO:
    """IO limits on one whole disk; ``None`` is unlimited."""

    device: BlockDevice
    rbps: int | None = None
    wbps: int | None = None
    riops: int | None = None
    wiops: int | None = None


@attrs.frozen
class AggregateLimits:
    """What one user's cgroup must hold; ``None`` (or no ``io``) means unlimited."""

    cpu_quota: float | None = None
    memory_max: int | None = None
    memory_high: int | None = None
    tasks_max: int | None = None
    io: tuple[DeviceIO, ...] = ()

    def any(self) -> bool:
        return bool(self.io) or any(
            v is not None
            for v in (self.cpu_quota, self.memory_max, self.memory_high, self.tasks_max)
        )

    @property
    def cpu_quota_us(self) -> int | None:
        """The quota per :data:`CPU_PERIOD_US` (at least 1 ms, the kernel's minimum)."""
        if self.cpu_quota is None:
            return None
        return max(1000, round(self.cpu_quota * CPU_PERIOD_US))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def aggregate_limits(limits: LimitSource, devices: Sequence[BlockDevice]) -> AggregateLimits:
    """The aggregate part of ``limits``; IO limits are put on every device in ``devices``."""
    io_values = [_int(limits.get(key)) for key in IO_KEYS]
    io = (
        tuple(DeviceIO(device, *io_values) for device in devices)
        if any(v is not None for v in io_values)
        else ()
    )
    cpu = limits.get("cpu_quota")
    return AggregateLimits(
        cpu_quota=None if cpu is None else float(cpu),
        memory_max=_int(limits.get("memory_max")),
        memory_high=_int(limits.get("memory_high")),
        tasks_max=_int(limits.get("tasks_max")),
        io=io,
    )
