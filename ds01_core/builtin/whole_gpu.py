"""The fallback allocator: whole GPUs only, first free first, within the user's GPU quota.

It is ``trylast``, so any allocator plugin (``ds01-mig``, or a third party's) decides instead
when installed; with none installed, users still get whole GPUs under their quota.
"""

from __future__ import annotations

from collections.abc import Sequence

from ds01_core.domain.model import (
    Allocation,
    AllocationDecision,
    EffectiveLimits,
    GpuRequest,
    GpuSlot,
)
from ds01_core.framework.hookspecs import hookimpl


@hookimpl(trylast=True)
def allocate_gpu(
    request: GpuRequest,
    free_slots: Sequence[GpuSlot],
    held: Sequence[Allocation],
    limits: EffectiveLimits,
) -> AllocationDecision:
    if request.mig_profile:
        return AllocationDecision(
            refused=(
                f"MIG profile {request.mig_profile!r} requested, but no MIG-aware allocator is "
                "active (install and enable the ds01-mig plugin)"
            )
        )
    per_container = limits.get("max_gpu_slots_per_container")
    if per_container is not None and request.count > per_container:
        return AllocationDecision(
            refused=(
                f"GPU slots per container: {request.count} requested, at most {per_container} "
                "allowed"
            )
        )
    in_use = sum(a.weight for a in held)
    quota = limits.get("max_gpu_equivalents")
    if quota is not None and in_use + request.count > quota + 1e-9:
        used = (
            ", ".join(f"{a.container_name or a.container} {a.weight:.2f}" for a in held)
            or "nothing"
        )
        return AllocationDecision(
            refused=(
                f"GPU quota: {in_use:.2f} of {quota:g} GPU-equivalents in use ({used}); "
                f"{request.count} whole GPU(s) need {request.count:.2f}"
            )
        )
    whole = [
        s
        for s in free_slots
        if s.kind == "gpu" and (request.min_memory is None or s.memory_total >= request.min_memory)
    ]
    if len(whole) < request.count:
        return AllocationDecision(
            refused=f"no free whole GPU: {len(whole)} free, {request.count} requested"
        )
    return AllocationDecision(slots=sorted(whole, key=lambda s: s.gpu_index)[: request.count])
