"""The nouns of ds01: GPUs and their slots, workloads, allocations, events, limits.

Plain attrs classes with no behaviour beyond derived values, so that plugins, the state store,
the CLI and the JSON outputs all speak about the same things the same way.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import attrs

SlotKind = Literal["gpu", "mig"]
WorkloadKind = Literal["container", "process"]
Origin = Literal["ds01", "devcontainer", "compose", "docker", "host", "unknown"]

EVENT_SCHEMA_VERSION = 1


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC: every timestamp ds01 stores is."""
    return dt.datetime.now(dt.UTC)


def utc_text(moment: dt.datetime) -> str:
    """``2026-11-23T04:00:00.123456Z``: how timestamps appear in labels, events and JSON."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@attrs.frozen
class GpuSlot:
    """Something a container can be given: a whole GPU, or one MIG instance of a GPU.

    Memory figures are bytes. ``weight`` is the slot's size in GPU-equivalents, the unit of every GPU quota: 1.0 for a
    whole GPU, ``compute_slices / total_slices`` for a MIG instance (2g.20gb on a 7-slice A100
    weighs 2/7). ``compute_slices`` of a MIG slot are its compute instance's: a 7g GPU instance
    split into 3c and 4c compute instances gives two slots of 3/7 and 4/7. Their GPU instance's
    memory is shared between them in the same proportion, so the slots of a GPU add up to it.

    ``mig_index`` is NVML's index of the MIG device on its GPU (what ``G:M`` in
    ``NVIDIA_VISIBLE_DEVICES`` names; it can have holes); ``minor_number`` is the GPU's device
    minor (``/dev/nvidia<minor>``), which need not be its index. Both None when unknown.
    """

    uuid: str
    kind: SlotKind
    gpu_index: int
    gpu_uuid: str
    model: str
    compute_slices: int
    total_slices: int
    memory_total: int
    memory_used: int = 0
    profile: str | None = None
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None
    utilization: float | None = None
    mig_index: int | None = None
    minor_number: int | None = None

    @property
    def slot_id(self) -> str:
        """Short, stable name: ``3`` for GPU 3, ``3.2`` for GPU instance 2 on GPU 3, and
        ``3.2.1`` for compute instance 1 of it (only when a GPU instance is split further)."""
        if self.kind == "gpu":
            return str(self.gpu_index)
        if self.compute_instance_id:
            return f"{self.gpu_index}.{self.gpu_instance_id}.{self.compute_instance_id}"
        return f"{self.gpu_index}.{self.gpu_instance_id}"

    @property
    def weight(self) -> float:
        if self.kind == "gpu" or self.total_slices <= 0:
            return 1.0
        return self.compute_slices / self.total_slices

    @property
    def legacy_uuid(self) -> str | None:
        """The older MIG UUID form ``MIG-GPU-<gpu uuid>/<gi>/<ci>`` that some tools still print."""
        if self.kind != "mig":
            return None
        return f"MIG-{self.gpu_uuid}/{self.gpu_instance_id}/{self.compute_instance_id}"

    def matches(self, ident: str) -> bool:
        """True when ``ident`` names this slot by UUID (either MIG form) or slot id."""
        return ident in (self.uuid, self.legacy_uuid, self.slot_id)


@attrs.frozen
class GpuProcess:
    """A compute process the driver reports on one leaf device (a GPU or a MIG instance)."""

    pid: int
    slot_uuid: str
    used_memory: int | None = None


@attrs.frozen
class Gpu:
    """A physical GPU, with its slots: itself when MIG is off, its MIG instances when on."""

    index: int
    uuid: str
    model: str
    memory_total: int
    memory_used: int
    mig_enabled: bool
    total_slices: int
    slots: tuple[GpuSlot, ...]
    utilization: float | None = None
    power_watts: float | None = None
    energy_joules: float | None = None
    minor_number: int | None = None  # /dev/nvidia<minor>; not necessarily the index


@attrs.define
class Workload:
    """One thing that may use a GPU: a container (any origin) or a bare host process."""

    kind: WorkloadKind
    id: str
    name: str
    origin: Origin
    owner: str
    owner_source: str
    status: str
    gpu_slots: list[str] = attrs.Factory(list)
    unrestricted_gpu: bool = False
    pids: list[int] = attrs.Factory(list)
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    image: str | None = None
    cmdline: str | None = None
    labels: dict[str, str] = attrs.Factory(dict)
    flags: list[str] = attrs.Factory(list)
    idle_seconds: float | None = None
    last_active_signal: str | None = None


@attrs.define
class Allocation:
    """GPU slots held for one container of one user, as recorded in the state store."""

    id: int | None
    user: str
    container: str
    slot_uuids: list[str]
    weight: float
    allocated_at: dt.datetime
    released_at: dt.datetime | None = None
    release_reason: str | None = None
    container_name: str | None = None
    bound: bool = True
    stopped_at: dt.datetime | None = None


@attrs.define
class GpuRequest:
    """What a container asks for: N slots, one MIG profile, a whole GPU, or a memory floor.

    ``slot_uuids``: exactly these slots, chosen by a scheduler ds01 trusts (a Slurm job's GPUs,
    read from Slurm by a root service): no allocator decides, the queue is not joined, and
    reservations (``reserved_gpu_slots``) do not apply; they must exist, be free, not be
    drained and fit the user's quota. Only services set it, never a user's request.
    """

    user: str
    container: str
    count: int = 1
    mig_profile: str | None = None
    full_gpu: bool = False
    min_memory: int | None = None
    slot_uuids: tuple[str, ...] = ()


@attrs.define
class AllocationDecision:
    """An allocator's answer: the chosen slots, or a refusal that says which limit stopped it."""

    slots: list[GpuSlot] = attrs.Factory(list)
    refused: str | None = None
    warning: str | None = None  # granted over a soft limit: what the user is told

    @property
    def granted(self) -> bool:
        return self.refused is None


@attrs.define
class ContainerSpec:
    """A container about to be created, as the Docker API's create body plus who asked.

    Plugins adjust it in ``prepare_container`` (labels, cgroup parent, limits, devices) before
    ds01 hands it to Docker.
    """

    user: str
    name: str | None
    body: dict[str, Any]
    origin: Origin = "ds01"
    gpu_request: GpuRequest | None = None


@attrs.frozen
class Refusal:
    """A plugin's "no", with the reason the user will read and the limit it came from."""

    reason: str
    plugin: str = ""


@attrs.frozen
class Event:
    """One line of the audit log. ``event_type`` is ``category.action`` (``gpu.allocated``)."""

    event_type: str
    user: str | None = None
    source: str = "ds01"
    details: dict[str, Any] = attrs.Factory(dict)
    timestamp: dt.datetime = attrs.Factory(utcnow)
    schema_version: int = EVENT_SCHEMA_VERSION

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "timestamp": utc_text(self.timestamp),
            "event_type": self.event_type,
            "user": self.user,
            "source": self.source,
            "details": self.details,
            "schema_version": self.schema_version,
        }


@attrs.frozen
class Notice:
    """Something a user must be told, handed to every ``notify`` implementation.

    ``channels`` narrows delivery to those channel families (``email``, ``webhook``,
    ``terminal``, ``container_file``), e.g. a monthly report that belongs in mail, not on a
    terminal; None means every channel the admin enabled and the user chose.
    """

    user: str
    subject: str
    message: str
    severity: Literal["info", "warning", "action"] = "info"
    container: str | None = None
    event_type: str | None = None
    channels: tuple[str, ...] | None = None


@attrs.frozen
class DeliveryResult:
    """How one channel fared delivering one notice."""

    channel: str
    delivered: bool
    detail: str = ""


@attrs.frozen
class Action:
    """Something a plugin did (or would do) while enforcing, reported back to the pipeline."""

    plugin: str
    kind: str
    target: str
    detail: str = ""
    user: str | None = None


@attrs.frozen
class QuotaLine:
    """One row of ``ds01 quota``: a resource, what is used of it and the limit.

    ``unit`` says how to show the numbers: ``bytes``, ``bytes/s``, ``cores``, ``count``,
    ``ops/s``, ``seconds`` or ``GPU-eq``.
    """

    resource: str
    used: float | None
    limit: float | None
    unit: str
    detail: str = ""
    over: bool = False


@attrs.frozen
class LimitValue:
    """One effective limit and where it came from (``default``, ``group student``, …)."""

    value: Any
    source: str
    expires: dt.datetime | None = None


@attrs.frozen
class EffectiveLimits:
    """A user's limits after resolution, each value with its provenance."""

    user: str
    group: str | None
    values: dict[str, LimitValue]

    def __getitem__(self, key: str) -> Any:
        return self.values[key].value

    def get(self, key: str, default: Any = None) -> Any:
        entry = self.values.get(key)
        return default if entry is None else entry.value
