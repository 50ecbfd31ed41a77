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

#: ``3g.40gb`` (a GPU instance) or ``1c.3g.40gb`` (a compute instance of 1 slice in it)
_SLICES_IN_PROFILE = re.compile(r"^(?:(\d+)c\.)?(\d+)g\.")


@attrs.frozen
class MigDevice:
    """What one MIG device (a compute instance) reports, before the GPU's total is known.

    ``slices`` are the compute instance's, ``gi_slices`` its GPU instance's; the memory figures
    are the GPU instance's, which all its compute instances share (NVML reports them on each).
    ``mig_index`` is the index NVML found it at (``nvmlDeviceGetMigDeviceHandleByIndex``).
    """

    uuid: str
    profile: str
    slices: int
    gpu_instance_id: int
    compute_instance_id: int
    memory_total: int
    memory_used: int
    gi_slices: int | None = None
    mig_index: int | None = None


def text(value: Any) -> str:
    """NVML strings: ``str`` from current pynvml, ``bytes`` from older releases."""
    return value.decode() if isinstance(value, bytes) else str(value)


def profile_from_name(name: str) -> str | None:
    """``2g.20gb`` from a MIG device name such as ``NVIDIA A100-SXM4-80GB MIG 2g.20gb``."""
    _head, sep, tail = name.rpartition("MIG ")
    if not sep:
        return None
    return tail.strip() or None


def composed_profile(slices: int, memory_mib: int, instance_slices: int | None = None) -> str:
    """A profile name for drivers whose MIG device names do not carry one (``1c.3g.40gb`` for
    a compute instance smaller than its GPU instance, as ``nvidia-smi`` names it)."""
    name = f"{round(memory_mib / 1024)}gb"
    if instance_slices is not None and instance_slices != slices:
        return f"{slices}c.{instance_slices}g.{name}"
    return f"{slices}g.{name}"


def mig_slices(attributes: Any, profile: str | None) -> int | None:
    """Compute slices of a MIG device: its compute instance's, from NVML's attributes, else
    from its profile name (``1c.3g.40gb``: 1; ``3g.40gb``: 3). A GPU instance split into
    several compute instances has more slices than each of them, so its count is not used."""
    if attributes is not None and attributes.computeInstanceSliceCount > 0:
        return int(attributes.computeInstanceSliceCount)
    match = _SLICES_IN_PROFILE.match(profile or "")
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


def gi_slices(attributes: Any, profile: str | None) -> int | None:
    """Slices of the GPU instance a MIG device is in, from NVML's attributes or its profile."""
    if attributes is not None and attributes.gpuInstanceSliceCount > 0:
        return int(attributes.gpuInstanceSliceCount)
    match = _SLICES_IN_PROFILE.match(profile or "")
    return int(match.group(2)) if match else None


def slices_in_use(devices: list[MigDevice]) -> int:
    """Slices taken by distinct GPU instances: a lower bound on the GPU's total (never 0)."""
    per_instance: dict[int, int] = {}
    for d in devices:
        given = d.gi_slices or d.slices
        per_instance[d.gpu_instance_id] = max(per_instance.get(d.gpu_instance_id, 0), given)
    return max(sum(per_instance.values()), 1)


def share_instance_memory(devices: list[MigDevice]) -> list[MigDevice]:
    """Each compute instance's share of its GPU instance's memory, by compute slices.

    NVML reports a GPU instance's memory (total and used) on every compute instance in it;
    counted per compute instance it would be counted twice or more. Shared in proportion to
    compute slices, the slots of a GPU instance add up to its memory exactly once. A GPU
    instance with a single compute instance keeps all of it.
    """
    slices: dict[int, int] = {}
    for d in devices:
        slices[d.gpu_instance_id] = slices.get(d.gpu_instance_id, 0) + d.slices
    shared = []
    for d in devices:
        whole = slices[d.gpu_instance_id]
        if whole == d.slices:
            shared.append(d)
            continue
        shared.append(
            attrs.evolve(
                d,
                memory_total=d.memory_total * d.slices // whole,
                memory_used=d.memory_used * d.slices // whole,
            )
        )
    return shared


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
        minor_number=gpu.minor_number,
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
        mig_index=device.mig_index,
        minor_number=gpu.minor_number,
    )
