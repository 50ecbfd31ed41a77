"""What the exporter reads after each cycle, once: the report, the GPUs, the state store.

Called from the ``cycle_finished`` hook (the daemon's thread), never at scrape time. A partial
cycle (after a Docker event) carries no GPU listing: the last full cycle's GPUs, health and idle
verdicts are kept, while workloads, allocations and the queue are read again, so a removed
container's series vanish within a second or two.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import attrs

from ds01_core.api import (
    CycleReport,
    EffectiveLimits,
    Gpu,
    GpuHealth,
    Runtime,
    effective_limits,
    gpu_queue_users,
    live_allocations,
    quota_lines,
    users_to_enforce,
)
from ds01_prometheus.state_metrics import CycleFacts

log = logging.getLogger(__name__)

#: the core's step that fills ``report.gpus`` and ``report.health`` (the GPU-health step)
HEALTH_STEP = "gpu-health"


@attrs.frozen
class GpuPart:
    """The GPU side of the last full cycle: kept across partial cycles."""

    gpus: tuple[Gpu, ...] = ()
    health: tuple[GpuHealth, ...] = ()
    available: bool = False


def gpu_part(runtime: Runtime, report: CycleReport, previous: GpuPart) -> GpuPart:
    """The GPUs as this cycle saw them (a partial cycle: ``previous``).

    The listing is the report's. Where no ``gpu-health`` step ran in this cycle (a core without
    it, or the admin turned it off), the listing is read once here, in the daemon's cycle, from
    the provider the detectors already opened; never while the GPUs are unavailable or released.
    """
    if report.partial:
        return previous
    state = runtime.gpu_state().get("state")
    if state in ("unavailable", "released"):  # the GPU access's word, whatever the step read
        return GpuPart((), (), False)
    if report.gpus or HEALTH_STEP in report.steps:
        return GpuPart(
            tuple(report.gpus), tuple(report.health), bool(report.gpus) or state == "available"
        )
    if state not in ("available", "not_open"):
        return GpuPart((), tuple(report.health), False)
    try:
        gpus = runtime.gpu.gpus()
    except Exception as exc:  # an outage is the GPU access's to report; here it is "not available"
        log.debug("prometheus: no GPU listing this cycle: %s", exc)
        return GpuPart((), tuple(report.health), False)
    return GpuPart(tuple(gpus), tuple(report.health), True)


def idle_containers(report: CycleReport, previous: frozenset[str]) -> frozenset[str]:
    """Containers in an idle streak: set by a full cycle's idle step; kept (for containers still
    there) across partial cycles, which do not measure activity."""
    containers = [w for w in report.workloads if w.kind == "container"]
    if report.partial:
        return previous & {w.id for w in containers}
    return frozenset(w.id for w in containers if (w.idle_seconds or 0.0) > 0.0)


def read_limits(
    runtime: Runtime,
    users: Iterable[str],
    previous: Mapping[str, EffectiveLimits],
    refresh: bool,
    resolved: Mapping[str, EffectiveLimits] | None = None,
) -> dict[str, EffectiveLimits]:
    """Each user's limits (their group with them): all of them in a full cycle, only users not
    seen before in a partial one; those the cycle itself resolved (``resolved``) are taken as
    they are, so that the exporter never resolves a user twice in one cycle."""
    now = runtime.now()
    limits: dict[str, EffectiveLimits] = {}
    for user in users:
        if resolved is not None and user in resolved:
            limits[user] = resolved[user]
            continue
        known = previous.get(user)
        if known is not None and not refresh:
            limits[user] = known
            continue
        try:
            limits[user] = effective_limits(runtime, user, now=now)
        except Exception as exc:
            log.warning("prometheus: no limits for %s: %s", user, exc)
    return limits


#: the quota lines the per-user usage series come from: (resource, unit)
MEMORY_LINE = ("memory", "bytes")
CPU_TIME_LINE = ("cpu time", "seconds")

Usage = tuple[float | None, float | None]


def read_usage(
    runtime: Runtime,
    limits: Mapping[str, EffectiveLimits],
    previous: Mapping[str, Usage],
    refresh: bool,
) -> dict[str, Usage]:
    """Each user's memory and CPU time from the plugins' ``quota_usage`` lines (the cgroups
    plugin's): read in full cycles, kept across partial ones."""
    usage: dict[str, Usage] = {}
    for user, user_limits in limits.items():
        if not refresh:
            if user in previous:
                usage[user] = previous[user]
            continue
        try:
            lines = quota_lines(runtime, user, user_limits)
        except Exception as exc:
            log.warning("prometheus: no usage for %s: %s", user, exc)
            continue
        found: dict[tuple[str, str], float] = {
            (line.resource, line.unit): float(line.used) for line in lines if line.used is not None
        }
        usage[user] = (found.get(MEMORY_LINE), found.get(CPU_TIME_LINE))
    return usage


def read_facts(runtime: Runtime, report: CycleReport, previous: CycleFacts) -> CycleFacts:
    """Everything this cycle's snapshot is built from; the store is read once."""
    gpus = gpu_part(
        runtime, report, GpuPart(previous.gpus, previous.health, previous.gpus_available)
    )
    try:
        allocations = tuple(live_allocations(runtime))
        queue = tuple(gpu_queue_users(runtime))
    except Exception as exc:  # a store that cannot be read: last cycle's answer, said once a cycle
        log.warning("prometheus: state store unreadable, allocations kept from before: %s", exc)
        allocations, queue = previous.allocations, previous.queue_users
    workloads = tuple(report.workloads)
    users = set(users_to_enforce(runtime, workloads))
    users.update(a.user for a in allocations)
    users.update(queue)
    refresh = not report.partial
    limits = read_limits(runtime, sorted(users), previous.limits, refresh, report.limits)
    known_slots = dict(previous.known_slots)
    known_slots.update((slot.uuid, slot) for gpu in gpus.gpus for slot in gpu.slots)
    return CycleFacts(
        known_slots=known_slots,
        gpus=gpus.gpus,
        health=gpus.health,
        gpus_available=gpus.available,
        workloads=workloads,
        allocations=allocations,
        queue_users=queue,
        limits=limits,
        idle_containers=idle_containers(report, previous.idle_containers),
        usage=read_usage(runtime, limits, previous.usage, refresh),
    )
