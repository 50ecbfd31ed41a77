"""The rules every GPU allocation keeps: the user's quota, and a sound answer from the allocator.

Kept apart from the records (:mod:`ds01_core.domain.state.allocations`) because they read no
state: the caller passes what is held, inside its transaction, and gets back the refusal (or
None). New allocations and re-allocations of a restarted container go through the same quota
rule.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ds01_core.domain.model import Allocation, AllocationDecision, EffectiveLimits, GpuSlot

log = logging.getLogger(__name__)


def quota_problem(
    limits: EffectiveLimits, held: Sequence[Allocation], new: float, needs: str
) -> str | None:
    """The core's GPU quota rule, for new allocations and re-allocations alike: the user's
    live allocations (held-after-stop ones included) plus ``new`` stay within
    ``max_gpu_equivalents``. Returns the refusal, naming what is in use, or None."""
    quota = limits.get("max_gpu_equivalents")
    in_use = sum(a.weight for a in held)
    if quota is None or in_use + new <= quota + 1e-9:
        return None
    used = ", ".join(f"{a.container_name or a.container[:12]} {a.weight:.2f}" for a in held)
    return (
        f"GPU quota: {in_use:.2f} of {quota:g} GPU-equivalents in use ({used or 'nothing'}); "
        f"{needs} {new:.2f}"
    )


def check_decision(
    decision: AllocationDecision | None,
    free: Sequence[GpuSlot],
    mine: Sequence[Allocation],
    limits: EffectiveLimits,
    mode: str,
) -> str | None:
    """The core's own check of an allocator's answer (a third-party allocator may be wrong);
    ``mode`` is ``enforcement.mode`` (the quota is checked only when ``hard``)."""
    if decision is None:
        return "no GPU allocator is active (enable ds01-mig or the built-in whole-gpu-allocator)"
    if decision.refused:
        return decision.refused
    uuids = [s.uuid for s in decision.slots]
    free_uuids = {s.uuid for s in free}
    if not uuids:
        return "the allocator chose no GPU slot"
    if len(set(uuids)) != len(uuids) or not set(uuids) <= free_uuids:
        log.error("allocator chose slots that are not free: %s", uuids)
        return "internal error: the allocator chose a slot that is not free; nothing was allocated"
    if mode == "hard":
        new = sum(s.weight for s in decision.slots)
        return quota_problem(limits, mine, new, "this request needs")
    return None
