"""From NVML readings to ds01's slots: MIG profile names, slice counts and the slot records.

Nothing here calls NVML: these functions interpret what :mod:`~ds01_core.domain.gpu.nvml.mig`
and the provider read, so how a reading is understood is apart from how it is taken.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from ds01_core.domain.model import Gpu, GpuSlot

MIB = 1024**2

_SLICES_IN_PROFILE = re.compile(r"^(?:\d+c\.)?(\d+)g\.")


@attrs.frozen
class MigDevice:
    """What one MIG device reports, before the GPU's total slices are known."""

    uuid: str
    profile: str
    slices: int
    gpu_instance_id: int
    compute_instance_id: int
    memory_total: int
    memory_used: int


def text(value: Any) -> str:
    """NVML strings: ``str`` from current pynvml, ``bytes`` from older releases."""
    return value.decode() if isinstance(value, bytes) else str(value)


def profile_from_name(name: str) -> str | None:
    """``2g.20gb`` from a MIG device name such as ``NVIDIA A100-SXM4-80GB MIG 2g.20gb``."""
    _head, sep, tail = name.rpartition("MIG ")
    if not sep:
        return None
    return tail.strip() or None


def composed_profile(slices: int, memory_mib: int) -> str:
    """A profile name for drivers whose MIG device names do not carry one."""
    return f"{slices}g.{round(memory_mib / 1024)}gb"


def mig_slices(attributes: Any, profile: str | None) -> int | None:
    """Compute slices of a MIG device: from NVML's attributes, else from its profile name."""
    if attributes is not None and attributes.gpuInstanceSliceCount > 0:
        return int(attributes.gpuInstanceSliceCount)
    match = _SLICES_IN_PROFILE.match(profile or "")
    return int(match.group(1)) if match else None


def slices_in_use(devices: list[MigDevice]) -> int:
    """Slices taken by distinct GPU instances: a lower bound on the GPU's total (never 0)."""
    per_instance = {d.gpu_instance_id: d.slices for d in devices}
    return max(sum(per_instance.values()), 1)


def whole_slot(gpu: Gpu, total_slices: int) -> GpuSlot:
    return GpuSlot(
        uuid=gpu.uuid,
        kind="gpu",
        gpu_index=gpu.index,
        gpu_uuid=gpu.uuid,
        model=gpu.model,
        compute_slices=total_slices,
        total_slices=total_slices,
        memory_total=gpu.memory_total,
        memory_used=gpu.memory_used,
        utilization=gpu.utilization,
    )


def mig_slot(gpu: Gpu, device: MigDevice, total_slices: int) -> GpuSlot:
    return GpuSlot(
        uuid=device.uuid,
        kind="mig",
        gpu_index=gpu.index,
        gpu_uuid=gpu.uuid,
        model=gpu.model,
        compute_slices=device.slices,
        total_slices=total_slices,
        memory_total=device.memory_total,
        memory_used=device.memory_used,
        profile=device.profile,
        gpu_instance_id=device.gpu_instance_id,
        compute_instance_id=device.compute_instance_id,
        utilization=None,
    )
