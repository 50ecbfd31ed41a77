"""The cycle's upkeep step: every container held to its time limits, every user to their quota.

Leftovers are removed, runtimes capped and idle containers stopped, each warned about first;
every user near a quota is warned.

Every container is handled, whatever its origin, by the policy :mod:`ds01_core.domain.policy`
resolves: the owner's limits, which an origin's policy can only make stricter. Nothing is ever
done to a container labelled ``ds01.protected``, and ds01 only ever acts through Docker (stop,
remove): it never kills a process itself. Each user's limits are resolved once per step
(:class:`~ds01_core.domain.policy.CycleLimits`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ds01_core.cycle.activity import Counters
from ds01_core.cycle.idle import GpuView, gpu_view, idle_verdict, observe
from ds01_core.cycle.leftovers import LEFTOVER_STATES, remove_if_due
from ds01_core.cycle.limit_actions import (
    SOURCE,
    LimitVerdict,
    Signals,
    StopBatch,
    unwarned,
    warn,
)
from ds01_core.cycle.quota_warnings import warn_near_quota
from ds01_core.cycle.runtime_limits import runtime_verdict
from ds01_core.domain.model import Allocation, Event, Workload
from ds01_core.domain.policy import CycleLimits, Policy, high_demand_factor, policy_for
from ds01_core.domain.state.allocations import Allocations
from ds01_core.domain.state.grants import active_grants

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)

PROTECTED_LABEL = "ds01.protected"


def is_protected(w: Workload) -> bool:
    return w.labels.get(PROTECTED_LABEL, "").lower() in ("1", "true", "yes")


def exemptions(grants: Sequence[dict[str, Any]], w: Workload) -> set[str]:
    """The kinds of the grants in force that cover ``w`` (itself, or all its owner's)."""
    targets = (f"container:{w.id}", f"user:{w.owner}")
    return {g["kind"] for g in grants if (g["target"] or "") in targets}


class UpkeepStep:
    """One run of the upkeep over the cycle's inventory.

    :param limits: the cycle's resolved limits, when the caller already has them (so a user's
        limits are resolved once for the whole cycle); otherwise the step resolves its own.
    """

    def __init__(self, runtime: Runtime, limits: CycleLimits | None = None):
        self.runtime = runtime
        self.now: dt.datetime = runtime.now()
        self.limits = limits or CycleLimits(runtime, self.now)
        self.samples: dict[str, Counters] = runtime.memo("lifecycle-samples", dict)
        self.stops = StopBatch()
        self.events: list[Event] = []
        #: the GPUs as this run read them (None: no container, nothing read)
        self.gpu: GpuView | None = None

    def run(self, workloads: Sequence[Workload]) -> list[Event]:
        containers = [w for w in workloads if w.kind == "container"]
        if not containers:
            return []
        factor = high_demand_factor(self.runtime)
        gpu = self.gpu = gpu_view(self.runtime, workloads)
        self.events += gpu.events  # GPU reads that started failing or recovered
        with self.runtime.state.transaction(immediate=False) as db:
            grants = active_grants(db, self.now)
        for w in containers:
            if not is_protected(w):
                self._guarded(w, factor, grants, gpu)
        self.events += self.stops.run(self.runtime)
        self._forget_samples(containers)
        self._warn_near_quotas(containers)
        return self.events

    def _guarded(
        self, w: Workload, factor: float, grants: list[dict[str, Any]], gpu: GpuView
    ) -> None:
        try:
            policy = policy_for(self.runtime, w, factor, self.limits(w.owner))
            self._one(w, policy, exemptions(grants, w), gpu)
        except Exception as exc:  # one container's failure must not stop the others
            log.exception("lifecycle failed for %s", w.name)
            self.events.append(
                Event("lifecycle.error", w.owner, SOURCE, {"container": w.name, "error": str(exc)})
            )

    def _one(self, w: Workload, policy: Policy, exempt: set[str], gpu: GpuView) -> None:
        if w.status in LEFTOVER_STATES:
            self.events += remove_if_due(self.runtime, w, policy, self.now)
            return
        if w.status != "running" or not w.pids:
            return
        state = observe(self.runtime, w, policy, gpu, self.samples, self.now)
        running = None if w.started_at is None else (self.now - w.started_at).total_seconds()
        capped = runtime_verdict(policy, running, exempt)
        if capped is not None and self._act(w, policy, capped, state.signals):
            return
        idle = idle_verdict(self.runtime, w, policy, state, running, exempt)
        if idle is not None:
            self._act(w, policy, idle, state.signals)

    def _act(self, w: Workload, policy: Policy, verdict: LimitVerdict, sig: Signals) -> bool:
        """Warn or stop; True when ``w`` is being stopped. Never a stop without a warning
        before it (one cycle ahead at least) where warnings are configured."""
        if verdict.action == "stop" and not unwarned(self.runtime, w, verdict, policy.warn_at):
            self.stops.add(w, policy, verdict, sig)
            return True
        self.events += warn(self.runtime, w, verdict, policy.warn_at, self.now)
        return False

    def _forget_samples(self, containers: Sequence[Workload]) -> None:
        """Drop the samples of containers that are gone."""
        seen = {w.id for w in containers}
        for gone in set(self.samples) - seen:
            del self.samples[gone]

    def _warn_near_quotas(self, containers: Sequence[Workload]) -> None:
        users = sorted({w.owner for w in containers if w.owner and w.owner != "unknown"})
        if not users:
            return
        held: dict[str, list[Allocation]] = defaultdict(list)
        for allocation in Allocations(self.runtime).live():
            held[allocation.user].append(allocation)
        for user in users:
            mine = [w for w in containers if w.owner == user]
            self.events += warn_near_quota(
                self.runtime, user, self.limits(user), mine, held[user], self.now
            )
