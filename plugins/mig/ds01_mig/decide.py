"""The MIG allocator's decision: a pure function of the request, the host, the holdings and the
limits, so that every rule can be tested without a runtime, a state store or a GPU.

Checks run in this order; in hard mode the first that fails is the refusal:

1. the request itself (a count of at least 1; not a profile and full GPUs at once) and an
   unknown profile;
2. the limits on the request's shape: slots per container, full GPUs allowed, containers per
   user;
3. whether the host could serve it at all (kinds of slot, memory);
4. the GPU quota, costed at the cheapest slots that could serve the request;
5. whether enough of those slots are free now;
6. the choice: preference, then placement, within what is left of the quota.

In soft mode the limits (2 and 4, and the quota of the slots actually chosen) do not refuse:
the request is granted and each exceeded limit is named in the decision's warning. What the
host cannot give (1, 3, 5) is refused in either mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs

from ds01_core.api import Allocation, AllocationDecision, EffectiveLimits, GpuRequest, GpuSlot
from ds01_mig.config import MigConfig
from ds01_mig.matching import (
    cheapest,
    example_profile,
    invalid_request,
    matches,
    needs,
    needs_exactly,
    not_on_host,
    rank,
    unavailable,
    unknown_profile,
)
from ds01_mig.placement import HostState, choose
from ds01_mig.quota import (
    Usage,
    check_containers,
    check_quota,
    check_slots_per_container,
    full_gpu_refusal,
    quota_refusal,
    remaining,
    soft_warning,
)

Mode = Literal["hard", "soft"]


@attrs.frozen
class _Context:
    """Everything one decision looks at, computed once."""

    request: GpuRequest
    free_slots: tuple[GpuSlot, ...]
    all_slots: tuple[GpuSlot, ...]
    usage: Usage
    limits: EffectiveLimits
    config: MigConfig
    soft: bool

    @property
    def full_allowed(self) -> bool:
        return self.limits.get("allow_full_gpu") is not False

    @property
    def whole_ok(self) -> bool:
        """Whether a plain count may take whole GPUs (in soft mode: yes, with a warning)."""
        return self.full_allowed or self.soft

    def example(self) -> str | None:
        """A MIG profile to suggest to someone who may not have full GPUs."""
        plain = attrs.evolve(self.request, mig_profile=None, full_gpu=False)
        free = [s for s in self.free_slots if matches(s, plain, whole_ok=False)]
        return example_profile(free, self.all_slots, remaining(self.usage, self.limits))


def decide(
    request: GpuRequest,
    free_slots: Sequence[GpuSlot],
    all_slots: Sequence[GpuSlot],
    held: Sequence[Allocation],
    limits: EffectiveLimits,
    *,
    config: MigConfig | None = None,
    mode: Mode = "hard",
) -> AllocationDecision:
    """Choose slots for ``request`` from ``free_slots``, or refuse it saying why.

    :param held: the requesting user's allocations (held-after-stop ones included).
    :param config: the ``plugins.mig`` section (defaults when None).
    :param mode: ``enforcement.mode``; ``soft`` grants over limits with a warning.
    """
    ctx = _Context(
        request,
        tuple(free_slots),
        tuple(all_slots),
        Usage.of(held),
        limits,
        config or MigConfig(),
        mode == "soft",
    )
    refusal = invalid_request(request) or unknown_profile(request, ctx.all_slots)
    if refusal:
        return AllocationDecision(refused=refusal)
    exceeded = _shape_limits(ctx)
    if exceeded and not ctx.soft:
        return AllocationDecision(refused=exceeded[0])
    return _allocate(ctx, exceeded)


def _shape_limits(ctx: _Context) -> list[str]:
    """The limits on what is asked for, whatever slots would serve it."""
    request = ctx.request
    found = [check_slots_per_container(request, ctx.limits)]
    if request.full_gpu and not ctx.full_allowed:
        found.append(full_gpu_refusal(ctx.example()))
    found.append(check_containers(request, ctx.usage, ctx.limits))
    return [m for m in found if m]


def _allocate(ctx: _Context, exceeded: list[str]) -> AllocationDecision:
    request = ctx.request
    matching = [s for s in ctx.all_slots if matches(s, request, whole_ok=ctx.whole_ok)]
    if len(matching) < request.count:
        return AllocationDecision(refused=_cannot_serve(ctx, len(matching)))
    budget = None if ctx.soft else remaining(ctx.usage, ctx.limits)
    if budget is not None:
        need = cheapest(matching, request.count)
        over = check_quota(ctx.usage, ctx.limits, need, needs(request, matching, need))
        if over:
            return AllocationDecision(refused=over)
    unique_free = {s.uuid: s for s in ctx.free_slots}.values()
    candidates = [s for s in unique_free if matches(s, request, whole_ok=ctx.whole_ok)]
    if len(candidates) < request.count:
        return AllocationDecision(refused=_unavailable(ctx, len(matching), len(candidates)))
    chosen = choose(
        candidates,
        request.count,
        HostState.of(ctx.free_slots, ctx.all_slots),
        ctx.config.strategy,
        rank(request, ctx.config.prefer, full_allowed=ctx.full_allowed),
        budget,
    )
    if chosen is None:  # the cheapest free choice is over the quota (hard mode only)
        need = cheapest(candidates, request.count)
        quota = ctx.limits["max_gpu_equivalents"]
        return AllocationDecision(
            refused=quota_refusal(ctx.usage, quota, needs(request, candidates, need))
        )
    if ctx.soft:
        exceeded = exceeded + _limits_of_choice(ctx, chosen)
    return AllocationDecision(slots=chosen, warning=soft_warning(exceeded))


def _limits_of_choice(ctx: _Context, chosen: list[GpuSlot]) -> list[str]:
    """Soft mode: the limits the chosen slots themselves exceed."""
    found: list[str | None] = []
    if not ctx.full_allowed and any(s.kind == "gpu" for s in chosen):
        found.append(full_gpu_refusal(ctx.example()))
    weight = sum(s.weight for s in chosen)
    found.append(check_quota(ctx.usage, ctx.limits, weight, needs_exactly(chosen)))
    return [m for m in found if m]


def _cannot_serve(ctx: _Context, matching: int) -> str:
    """Why the host cannot serve the request: a plain count that only whole GPUs could serve,
    for someone who may not have them, is the full-GPU policy speaking; else the host."""
    request = ctx.request
    with_whole = sum(matches(s, request, whole_ok=True) for s in ctx.all_slots)
    if not ctx.whole_ok and with_whole >= request.count:
        return full_gpu_refusal(ctx.example())
    return not_on_host(request, ctx.all_slots, matching)


def _unavailable(ctx: _Context, matching: int, free: int) -> str:
    """Too few free slots: say so, and which other free slots the user could ask for."""
    plain = attrs.evolve(ctx.request, mig_profile=None, full_gpu=False)
    alternatives = [s for s in ctx.free_slots if matches(s, plain, whole_ok=ctx.full_allowed)]
    return unavailable(ctx.request, matching, free, alternatives, mig_only=not ctx.whole_ok)
