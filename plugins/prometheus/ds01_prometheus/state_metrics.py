"""The slot, capacity, user and workload families, from what one cycle saw and the state store said.

:class:`CycleFacts` is everything a snapshot is built from, read once per cycle by the
``cycle_finished`` hook (:mod:`ds01_prometheus.snapshot`); the functions here only turn it into
families, so that they are cheap to test and never touch Docker, NVML or the store.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping

import attrs

from ds01_core.api import Allocation, EffectiveLimits, Gpu, GpuHealth, GpuSlot, Workload
from ds01_prometheus.families import Families
from ds01_prometheus.gpu_metrics import ratio

#: ``Origin`` in the core's model: every one gets a series (0 when none), so rules see a drop
ORIGINS: tuple[str, ...] = ("ds01", "devcontainer", "compose", "docker", "host", "unknown")
#: the flag the bare-metal watch sets on a host GPU process whose owner holds no grant
NO_GRANT = "no_grant"
UNMANAGED = "unmanaged_gpu"


@attrs.frozen
class CycleFacts:
    """What a snapshot is built from: the GPUs of the last full cycle, this cycle's workloads,
    and the store's allocations, queue and users' limits as read once in this cycle."""

    gpus: tuple[Gpu, ...] = ()
    health: tuple[GpuHealth, ...] = ()
    gpus_available: bool = False
    workloads: tuple[Workload, ...] = ()
    allocations: tuple[Allocation, ...] = ()
    queue_users: tuple[str, ...] = ()
    limits: Mapping[str, EffectiveLimits] = attrs.Factory(dict)
    #: ids of containers in an idle streak (below the idle threshold), from the last full cycle
    idle_containers: frozenset[str] = frozenset()
    #: every slot ever listed, by UUID: an allocation keeps its gpu/slot labels while the GPUs
    #: cannot be read (slot ids do not change), so its series is not replaced by another
    known_slots: Mapping[str, GpuSlot] = attrs.Factory(dict)
    #: each user's cgroup usage from the plugins' quota lines: (memory bytes, CPU seconds)
    usage: Mapping[str, tuple[float | None, float | None]] = attrs.Factory(dict)

    def slots(self) -> dict[str, GpuSlot]:
        return {slot.uuid: slot for gpu in self.gpus for slot in gpu.slots}

    def drained_gpus(self) -> set[int]:
        return {h.index for h in self.health if h.drained}


def container_label(allocation: Allocation, names: Mapping[str, str]) -> str:
    """The container's name (from the allocation, else the inventory), else its short id."""
    return allocation.container_name or names.get(allocation.container) or allocation.container[:12]


def add_slots(out: Families, facts: CycleFacts) -> None:
    """Slots (a whole GPU or a MIG instance), their allocations, and the capacity sums."""
    info = out.gauge(
        "ds01_slot_info",
        "One series per slot (a whole GPU or a MIG instance).",
        ("gpu", "slot", "uuid", "profile", "kind"),
    )
    weight = out.gauge("ds01_slot_weight", "The slot's size in GPU-equivalents.", ("gpu", "slot"))
    util = out.gauge("ds01_slot_utilization_ratio", "Slot busy ratio, 0..1.", ("gpu", "slot"))
    used = out.gauge("ds01_slot_memory_used_bytes", "Slot memory in use.", ("gpu", "slot"))
    total = out.gauge("ds01_slot_memory_total_bytes", "Slot memory in all.", ("gpu", "slot"))
    slots = facts.slots()
    for slot in slots.values():
        g, s = str(slot.gpu_index), slot.slot_id
        info(1, g, s, slot.uuid, slot.profile or "", slot.kind)
        weight(slot.weight, g, s)
        util(ratio(slot.utilization), g, s)
        used(slot.memory_used, g, s)
        total(slot.memory_total, g, s)
    allocated = out.gauge(
        "ds01_slot_allocated",
        "1 for each allocated slot, naming its holder.",
        ("gpu", "slot", "uuid", "profile", "user", "container"),
    )
    idle = out.gauge(
        "ds01_slot_idle",
        "1 while the allocated slot's container is below the idle threshold.",
        ("gpu", "slot", "user", "container"),
    )
    names = {w.id: w.name for w in facts.workloads if w.kind == "container"}
    for allocation in facts.allocations:
        container = container_label(allocation, names)
        is_idle = allocation.container in facts.idle_containers
        for uuid in allocation.slot_uuids:
            held = facts.known_slots.get(uuid)
            g, s = (str(held.gpu_index), held.slot_id) if held else ("", "")
            profile = (held.profile or "") if held else ""
            allocated(1, g, s, uuid, profile, allocation.user, container)
            idle(1 if is_idle else 0, g, s, allocation.user, container)
    drained = facts.drained_gpus()
    capacity = sum(s.weight for s in slots.values() if s.gpu_index not in drained)
    out.gauge(
        "ds01_gpu_capacity_gpu_equivalents",
        "GPU-equivalents of every slot, drained GPUs left out.",
    )(capacity)
    out.gauge("ds01_gpu_allocated_gpu_equivalents", "GPU-equivalents allocated.")(
        sum(a.weight for a in facts.allocations)
    )
    out.gauge("ds01_gpu_drained_gpu_equivalents", "GPU-equivalents on drained GPUs.")(
        sum(s.weight for s in slots.values() if s.gpu_index in drained)
    )


def users_of(facts: CycleFacts) -> list[str]:
    """Who gets per-user series: a workload, an allocation, a queue ticket or limits of their own."""
    users = {w.owner for w in facts.workloads if w.owner and w.owner != "unknown"}
    users.update(a.user for a in facts.allocations)
    users.update(facts.queue_users)
    users.update(facts.limits)
    return sorted(users)


def add_users(out: Families, facts: CycleFacts) -> None:
    """Per-user series: held and idle GPU-equivalents, quota, containers, queue, group."""
    held: dict[str, float] = defaultdict(float)
    idle: dict[str, float] = defaultdict(float)
    for allocation in facts.allocations:
        held[allocation.user] += allocation.weight
        if allocation.container in facts.idle_containers:
            idle[allocation.user] += allocation.weight
    containers = Counter(w.owner for w in facts.workloads if w.kind == "container")
    tickets = Counter(facts.queue_users)
    group = out.gauge(
        "ds01_user_group_info", "The user's group (empty when none).", ("user", "group")
    )
    g_held = out.gauge("ds01_user_gpu_equivalents", "GPU-equivalents the user holds.", ("user",))
    g_quota = out.gauge(
        "ds01_user_gpu_quota", "The user's GPU-equivalent limit (absent: unlimited).", ("user",)
    )
    g_idle = out.gauge(
        "ds01_user_idle_gpu_equivalents",
        "GPU-equivalents the user holds in idle containers.",
        ("user",),
    )
    g_containers = out.gauge("ds01_user_containers", "The user's containers.", ("user",))
    g_memory_limit = out.gauge(
        "ds01_user_memory_limit_bytes", "The user's memory limit (absent: unlimited).", ("user",)
    )
    g_tickets = out.gauge(
        "ds01_user_queue_tickets", "The user's requests waiting for GPUs.", ("user",)
    )
    g_memory = out.gauge(
        "ds01_user_memory_bytes", "Memory the user's cgroup uses (the cgroups plugin).", ("user",)
    )
    g_cpu = out.counter(
        "ds01_user_cpu_seconds_total", "CPU time the user's cgroup used.", ("user",)
    )
    for user in users_of(facts):
        limits = facts.limits.get(user)
        group((1 if limits is not None else None), user, (limits.group or "") if limits else "")
        g_held(held.get(user, 0.0), user)
        g_idle(idle.get(user, 0.0), user)
        g_containers(containers.get(user, 0), user)
        g_tickets(tickets.get(user, 0), user)
        memory, cpu = facts.usage.get(user, (None, None))
        g_memory(memory, user)
        g_cpu(cpu, user)
        if limits is not None:
            g_quota(_number(limits.get("max_gpu_equivalents")), user)
            g_memory_limit(_number(limits.get("memory_max")), user)


def _number(value: object) -> float | None:
    """A limit as a number; None (unlimited, or not a number) leaves the series out."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def add_workloads(out: Families, facts: CycleFacts) -> None:
    """Counts by kind and origin, GPU workloads ds01 did not allocate, ungranted host processes."""
    by_kind: Counter[tuple[str, str]] = Counter({("container", o): 0 for o in ORIGINS})
    by_kind[("process", "host")] += 0
    unmanaged: Counter[str] = Counter({o: 0 for o in ORIGINS})
    ungranted = 0
    for w in facts.workloads:
        by_kind[(w.kind, w.origin)] += 1
        if UNMANAGED in w.flags:
            unmanaged[w.origin] += 1
        if w.kind == "process" and NO_GRANT in w.flags:
            ungranted += 1
    workloads = out.gauge("ds01_workloads", "Workloads by kind and origin.", ("kind", "origin"))
    for (kind, origin), count in sorted(by_kind.items()):
        workloads(count, kind, origin)
    gauge = out.gauge(
        "ds01_unmanaged_gpu_workloads", "GPU workloads ds01 did not allocate.", ("origin",)
    )
    for origin, count in sorted(unmanaged.items()):
        gauge(count, origin)
    out.gauge(
        "ds01_host_gpu_processes_without_grant",
        "Host GPU processes whose owner holds no bare-metal grant.",
    )(ungranted)
