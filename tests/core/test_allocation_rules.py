"""The core's rules over an allocator's answer and the GPU quota, at their edges: a request that
fills the quota exactly is granted, a slot chosen twice or not free is refused whichever of the
two it is, and choosing every free slot is allowed (found surviving by the mutation check)."""

from __future__ import annotations

import datetime as dt

from ds01_core.domain.model import (
    Allocation,
    AllocationDecision,
    EffectiveLimits,
    GpuSlot,
    LimitValue,
)
from ds01_core.domain.state.allocation_rules import check_decision, quota_problem

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def gpu(n: int, slices: int = 7, of: int = 7) -> GpuSlot:
    """GPU ``n`` (``slices`` of ``of``: a whole GPU by default, weight 1.0)."""
    kind = "gpu" if slices == of else "mig"
    return GpuSlot(f"GPU-{n}", kind, n, f"GPU-{n}", "A100", slices, of, 40 << 30)


def limits(quota: float | None) -> EffectiveLimits:
    values = {} if quota is None else {"max_gpu_equivalents": LimitValue(quota, "defaults")}
    return EffectiveLimits("sam", None, values)


def held(*weights: float) -> list[Allocation]:
    return [
        Allocation(i, "sam", f"c{i}", [f"GPU-{9 - i}"], w, NOW, container_name=f"box{i}")
        for i, w in enumerate(weights)
    ]


def test_a_request_that_fills_the_quota_exactly_is_granted_and_one_more_slice_is_not():
    assert quota_problem(limits(2), held(1.0), 1.0, "this request needs") is None
    refusal = quota_problem(limits(2), held(1.0), 1.0 + 1 / 7, "this request needs")
    assert refusal == (
        "GPU quota: 1.00 of 2 GPU-equivalents in use (box0 1.00); this request needs 1.14"
    )
    assert quota_problem(limits(None), held(5.0), 3.0, "needs") is None  # no quota set


def test_an_allocator_answer_is_checked_whole():
    free = [gpu(0), gpu(1)]
    ok = check_decision(AllocationDecision([gpu(0), gpu(1)]), free, [], limits(2), "hard")
    assert ok is None  # every free slot may be chosen
    assert check_decision(None, free, [], limits(2), "hard") == (
        "no GPU allocator is active (enable ds01-mig or the built-in whole-gpu-allocator)"
    )
    no = AllocationDecision(refused="MIG profile 3g.40gb: none free")
    assert check_decision(no, free, [], limits(2), "hard") == "MIG profile 3g.40gb: none free"
    empty = AllocationDecision([])
    assert check_decision(empty, free, [], limits(2), "hard") == "the allocator chose no GPU slot"


def test_a_slot_chosen_twice_or_not_free_is_refused_either_way():
    not_free = "internal error: the allocator chose a slot that is not free; nothing was allocated"
    free = [gpu(0), gpu(1)]
    twice = AllocationDecision([gpu(0), gpu(0)])  # each one free, the same one twice
    taken = AllocationDecision([gpu(2)])  # once, but not free
    assert check_decision(twice, free, [], limits(4), "hard") == not_free
    assert check_decision(taken, free, [], limits(4), "hard") == not_free


def test_the_quota_is_the_cores_in_hard_mode_only():
    free = [gpu(0), gpu(1)]
    over = AllocationDecision([gpu(0), gpu(1)])
    refusal = check_decision(over, free, held(1.0), limits(2), "hard")
    assert refusal is not None and refusal.startswith("GPU quota: 1.00 of 2")
    assert check_decision(over, free, held(1.0), limits(2), "soft") is None
