"""Per-user limits on GPU allocation, and the messages that name them.

Each check returns the sentence the user reads, or None when the limit holds, so that the
decision can refuse with it (``enforcement.mode: hard``) or grant with it as a warning (soft).
Every message names the limit and the user's current usage, and says what to do where that
helps.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ds01_core.api import Allocation, EffectiveLimits, GpuRequest

#: Float slack for quota sums (sevenths do not add up exactly).
EPSILON = 1e-9
SOFT_PREFIX = "soft limit exceeded: "


def fmt_ge(value: float) -> str:
    """GPU-equivalents for people: at most two decimals, at least one (1.0, 0.71, 0.5)."""
    text = f"{value:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def fmt_limit(value: float) -> str:
    """A configured quota as the admin wrote it: ``2.0``, ``1.5``, ``0.125``."""
    return f"{value:.1f}" if float(value).is_integer() else f"{value:g}"


@attrs.frozen
class ContainerUsage:
    """One container's share of a user's GPU usage."""

    name: str
    weight: float
    stopped: bool

    def __str__(self) -> str:
        return f"{self.name} {fmt_ge(self.weight)}" + (" stopped" if self.stopped else "")


@attrs.frozen
class Usage:
    """What a user holds now: every allocation, held-after-stop ones included."""

    held: tuple[Allocation, ...]

    @classmethod
    def of(cls, held: Sequence[Allocation]) -> Usage:
        return cls(tuple(held))

    @property
    def total(self) -> float:
        return sum(a.weight for a in self.held)

    @property
    def containers(self) -> list[ContainerUsage]:
        """Per container, in allocation order; a container with several allocations is summed."""
        grouped: dict[str, list[Allocation]] = {}
        for allocation in self.held:
            grouped.setdefault(allocation.container, []).append(allocation)
        return [
            ContainerUsage(
                allocs[0].container_name or allocs[0].container,
                sum(a.weight for a in allocs),
                all(a.stopped_at is not None for a in allocs),
            )
            for allocs in grouped.values()
        ]

    def holds(self, container: str) -> bool:
        """True when ``container`` (id or name) already holds GPU slots."""
        return any(container in (a.container, a.container_name) for a in self.held)


def check_slots_per_container(request: GpuRequest, limits: EffectiveLimits) -> str | None:
    """``max_gpu_slots_per_container``: the slots asked for in this one request."""
    limit = limits.get("max_gpu_slots_per_container")
    if limit is None or request.count <= limit:
        return None
    return f"GPU slots per container: {request.count} requested, at most {limit} allowed"


def full_gpu_refusal(example_profile: str | None) -> str:
    """``allow_full_gpu: false``, with a MIG profile the user could ask for instead."""
    base = "full GPUs are not allowed for you (allow_full_gpu: false)"
    if example_profile is None:
        return f"{base}, and this host has no MIG slots; ask an admin for an override"
    return f"{base}; ask for a MIG profile, e.g. --mig {example_profile}"


def check_containers(request: GpuRequest, usage: Usage, limits: EffectiveLimits) -> str | None:
    """``max_containers_per_user``: only a container that holds no GPU yet adds to the count."""
    limit = limits.get("max_containers_per_user")
    if limit is None or usage.holds(request.container):
        return None
    names = [c.name for c in usage.containers]
    if len(names) < limit:
        return None
    return (
        f"containers with GPUs: {len(names)} of {limit} in use ({', '.join(names)}); "
        "stop or remove one first"
    )


def check_quota(usage: Usage, limits: EffectiveLimits, need: float, needs: str) -> str | None:
    """``max_gpu_equivalents``: what the user holds plus ``need`` must fit.

    :param needs: how the request is named in the message (``a 3g.40gb needs 0.43``).
    """
    quota = limits.get("max_gpu_equivalents")
    if quota is None or usage.total + need <= quota + EPSILON:
        return None
    return quota_refusal(usage, quota, needs)


def quota_refusal(usage: Usage, quota: float, needs: str) -> str:
    """``GPU quota: 1.71 of 2.0 GPU-equivalents in use (ctr-a 1.0, ctr-b 0.71); <needs>``."""
    listing = ", ".join(str(c) for c in usage.containers)
    held = f" ({listing})" if listing else ""
    return (
        f"GPU quota: {fmt_ge(usage.total)} of {fmt_limit(quota)} GPU-equivalents in use{held}; "
        f"{needs}"
    )


def remaining(usage: Usage, limits: EffectiveLimits) -> float | None:
    """GPU-equivalents the user may still take; None for no quota."""
    quota = limits.get("max_gpu_equivalents")
    return None if quota is None else quota - usage.total


def soft_warning(messages: Sequence[str]) -> str | None:
    """The warning for a grant over soft limits: each message, prefixed, in check order."""
    unique = list(dict.fromkeys(messages))
    return "; ".join(SOFT_PREFIX + m for m in unique) or None
