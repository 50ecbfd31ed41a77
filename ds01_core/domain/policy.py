"""The lifecycle policy one container gets, and where each of its values comes from.

Two layers, and an origin can only make them stricter:

1. the owner's time limits (``idle_timeout``, ``max_runtime``: built-in → defaults → group →
   user → overrides, see :mod:`ds01_core.domain.limits`) and the lifecycle's own durations
   (``lifecycle.stop_grace``, ``created_timeout``, ``container_hold_after_stop``);
2. ``lifecycle.origins.<origin>``: a value there applies only where it is shorter.

Origins are told apart by names and labels (``vsc-…``, ``devcontainer.*``,
``com.docker.compose.*``), which a user chooses; were an origin's policy allowed to be more
lenient, anyone could escape a limit by naming a container. ``never`` (no limit) is infinity,
so "stricter" is simply the smaller value.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.domain.model import EffectiveLimits, Workload
from ds01_core.domain.state.allocations import Allocations, inventory_slots
from ds01_core.domain.units import NEVER, ByteSize, Duration, TimeLimit
from ds01_core.domain.user_limits import effective_limits

if TYPE_CHECKING:
    from ds01_core.domain.config import Config
    from ds01_core.framework.runtime import Runtime

#: Time limits that come from the owner's limits.
LIMIT_TIME_KEYS = ("idle_timeout", "max_runtime")
#: Durations that come from the ``lifecycle`` section.
LIFECYCLE_KEYS = ("stop_grace", "created_timeout", "container_hold_after_stop")
POLICY_KEYS = LIMIT_TIME_KEYS + LIFECYCLE_KEYS
THRESHOLD_KEYS = ("gpu_idle_threshold", "cpu_idle_threshold", "network_idle_threshold")


@attrs.frozen
class PolicyValue:
    """One value of a container's policy and where it came from (``group student``,
    ``origin devcontainer``, ``lifecycle.created_timeout``, …)."""

    value: Duration
    source: str

    @property
    def seconds(self) -> float | None:
        """Seconds, or None for never."""
        if isinstance(self.value, TimeLimit):
            return self.value.seconds()
        return float(self.value)


@attrs.frozen
class Policy:
    """What applies to one container now: durations in seconds (None: never), activity
    thresholds, the warning fractions and the high-demand factor.

    ``idle_timeout`` is the timeout in force: the resolved one already multiplied by
    ``demand_factor`` (which is below 1 while GPUs are in high demand).
    """

    idle_timeout: float | None
    max_runtime: float | None
    stop_grace: float
    created_timeout: float | None
    hold_after_stop: float | None
    gpu_threshold: float
    cpu_threshold: float
    network_threshold: float
    warn_at: tuple[float, ...]
    demand_factor: float


def resolve_policy(config: Config, limits: EffectiveLimits, origin: str) -> dict[str, PolicyValue]:
    """The durations that apply to a container of ``origin`` owned by ``limits.user``."""
    lifecycle = config.lifecycle
    resolved: dict[str, PolicyValue] = {}
    for key in LIMIT_TIME_KEYS:
        entry = limits.values.get(key)
        if entry is None or entry.value is None:
            resolved[key] = PolicyValue(NEVER, "not set (no limit)")
        else:
            resolved[key] = PolicyValue(entry.value, entry.source)
    for key in LIFECYCLE_KEYS:
        resolved[key] = PolicyValue(getattr(lifecycle, key), f"lifecycle.{key}")
    own = lifecycle.origins.get(origin)
    if own is not None:
        for key, current in resolved.items():
            tighter = getattr(own, key)
            if tighter is not None and tighter < current.value:
                resolved[key] = PolicyValue(tighter, f"origin {origin}")
    return resolved


def high_demand_factor(runtime: Runtime) -> float:
    """``high_demand_factor`` while the allocated share of GPU-equivalents is at or above
    ``high_demand_share``, else 1."""
    lifecycle = runtime.config.lifecycle
    total = sum(s.weight for s in inventory_slots(runtime))
    if total <= 0:
        return 1.0
    used = sum(a.weight for a in Allocations(runtime).live())
    return lifecycle.high_demand_factor if used / total >= lifecycle.high_demand_share else 1.0


class CycleLimits:
    """Each user's effective limits, resolved at most once per cycle.

    A cycle needs them for every container (its policy) and every user (quota warnings);
    resolving one asks the directory plugin for the user's group and reads the stored
    overrides. Within one cycle the answer cannot usefully change, and a change made meanwhile
    applies from the next cycle, as it always did.
    """

    def __init__(self, runtime: Runtime, now: dt.datetime | None = None):
        self.runtime = runtime
        self.now = now or runtime.now()
        self._known: dict[str, EffectiveLimits] = {}

    def __call__(self, user: str) -> EffectiveLimits:
        if user not in self._known:
            self._known[user] = effective_limits(self.runtime, user, now=self.now)
        return self._known[user]

    def resolved(self) -> dict[str, EffectiveLimits]:
        """The users resolved so far in this cycle, with their limits."""
        return dict(self._known)


def policy_for(
    runtime: Runtime,
    workload: Workload,
    demand_factor: float,
    limits: EffectiveLimits | None = None,
) -> Policy:
    """The policy of ``workload`` now; ``limits`` are its owner's, when already resolved."""
    if limits is None:
        limits = effective_limits(runtime, workload.owner)
    resolved = resolve_policy(runtime.config, limits, workload.origin)
    idle_timeout = resolved["idle_timeout"].seconds
    return Policy(
        idle_timeout=None if idle_timeout is None else idle_timeout * demand_factor,
        max_runtime=resolved["max_runtime"].seconds,
        stop_grace=resolved["stop_grace"].seconds or 0.0,
        created_timeout=resolved["created_timeout"].seconds,
        hold_after_stop=resolved["container_hold_after_stop"].seconds,
        gpu_threshold=float(limits.get("gpu_idle_threshold") or 5.0),
        cpu_threshold=float(limits.get("cpu_idle_threshold") or 0.05),
        network_threshold=float(limits.get("network_idle_threshold") or 2048),
        warn_at=tuple(sorted(runtime.config.lifecycle.warn_at)),
        demand_factor=demand_factor,
    )


def explain_policy(config: Config, limits: EffectiveLimits, origin: str) -> list[dict[str, Any]]:
    """Each value that decides the fate of ``limits.user``'s container of ``origin``, as
    ``ds01 config show --user --origin`` prints it: key, value as an admin writes it, source;
    durations also in seconds (None: never)."""
    rows: list[dict[str, Any]] = [
        {"key": key, "value": str(entry.value), "seconds": entry.seconds, "source": entry.source}
        for key, entry in resolve_policy(config, limits, origin).items()
    ]
    for key in THRESHOLD_KEYS:
        entry = limits.values[key]
        shown = "-" if entry.value is None else f"{entry.value:g}"
        if isinstance(entry.value, ByteSize):
            shown = str(entry.value)
        rows.append({"key": key, "value": shown, "source": entry.source})
    return rows
