"""The MIG allocator's rules, one by one, on the simulated DGX-A100's real slots.

The host (see conftest): GPUs 0-3 whole; GPU 4 has seven 1g.10gb; GPU 5 a 3g.40gb and two
2g.20gb; GPU 6 two 3g.40gb; GPU 7 a 4g.40gb, a 2g.20gb and a 1g.10gb.
"""

from __future__ import annotations

import random

import pytest

from ds01_core.domain.model import AllocationDecision, GpuRequest, GpuSlot
from ds01_mig import decide, fmt_ge
from ds01_mig.config import MigConfig

GiB = 1024**3


def req(count: int = 1, **kwargs) -> GpuRequest:
    return GpuRequest(user="alice", container="new", count=count, **kwargs)


def ids(decision: AllocationDecision) -> list[str]:
    assert decision.granted, decision.refused
    return [s.slot_id for s in decision.slots]


def without(slots: list[GpuSlot], *slot_ids: str) -> list[GpuSlot]:
    return [s for s in slots if s.slot_id not in slot_ids]


# -- the unit: GPU-equivalents --------------------------------------------------------------------


def test_weights_are_compute_slices_over_the_gpu(slot):
    assert slot("5.3").profile == "2g.20gb"
    assert slot("5.3").weight == 2 / 7
    assert slot("4.7").weight == 1 / 7
    assert slot("6.1").weight == 3 / 7
    assert slot("7.1").weight == 4 / 7
    assert slot("0").weight == 1.0


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1.0"), (5 / 7, "0.71"), (3 / 7, "0.43"), (2.0, "2.0"), (0.5, "0.5"), (0.0, "0.0")],
)
def test_fmt_ge(value, text):
    assert fmt_ge(value) == text


# -- the GPU quota ------------------------------------------------------------------------------


def test_quota_refusal_names_the_usage_per_container(slots, slot, limits, alloc):
    held = [alloc("ctr-a", [slot("0")]), alloc("ctr-b", [slot("7.1"), slot("7.13")])]
    decision = decide(
        req(mig_profile="3g.40gb"), slots, slots, held, limits(max_gpu_equivalents=2.0)
    )
    assert decision.refused == (
        "GPU quota: 1.71 of 2.0 GPU-equivalents in use (ctr-a 1.0, ctr-b 0.71); "
        "a 3g.40gb needs 0.43"
    )
    assert decision.slots == []


def test_quota_counts_containers_stopped_but_still_holding(slots, slot, limits, alloc):
    held = [alloc("old-run", [slot("0")], stopped=True)]
    decision = decide(req(mig_profile="1g.10gb"), slots, slots, held, limits(max_gpu_equivalents=1))
    assert decision.refused == (
        "GPU quota: 1.0 of 1.0 GPU-equivalents in use (old-run 1.0 stopped); a 1g.10gb needs 0.14"
    )


@pytest.mark.parametrize(
    ("request_", "needs"),
    [
        (req(2, full_gpu=True), "2 full GPUs need 2.0"),
        (req(full_gpu=True), "a full GPU needs 1.0"),
        (req(2, mig_profile="2g.20gb"), "2 2g.20gb slots need 0.57"),
        (req(2), "2 slots need at least 0.29"),
        (req(), "a slot needs at least 0.14"),
    ],
)
def test_quota_refusal_names_what_the_request_needs(slots, slot, limits, alloc, request_, needs):
    held = [alloc("ctr-a", [slot("1")])]
    decision = decide(request_, slots, slots, held, limits(max_gpu_equivalents=1.0))
    assert decision.refused == f"GPU quota: 1.0 of 1.0 GPU-equivalents in use (ctr-a 1.0); {needs}"


def test_quota_without_holdings_lists_no_containers(slots, limits):
    decision = decide(req(full_gpu=True), slots, slots, [], limits(max_gpu_equivalents=0.5))
    assert decision.refused == "GPU quota: 0.0 of 0.5 GPU-equivalents in use; a full GPU needs 1.0"


def test_quota_filled_exactly_is_granted(slots, slot, limits, alloc):
    """Sevenths do not add up exactly in floating point; 5/7 + 2/7 still fits 1.0."""
    held = [alloc("ctr-a", [slot("7.1"), slot("7.13")])]
    decision = decide(
        req(mig_profile="2g.20gb"), slots, slots, held, limits(max_gpu_equivalents=1.0)
    )
    assert decision.granted
    assert sum(a.weight for a in held) + sum(s.weight for s in decision.slots) <= 1.0 + 1e-9


def test_no_quota_means_no_limit(slots, slot, limits, alloc):
    held = [alloc(f"ctr-{i}", [slot(str(i))]) for i in range(3)]
    assert ids(decide(req(full_gpu=True), slots, slots, held, limits())) == ["0"]


def test_plain_request_takes_what_fits_the_quota_when_the_preferred_does_not(
    slots, slot, limits, alloc
):
    """prefer: full, but a whole GPU would break the quota: the largest slice that fits."""
    held = [alloc("ctr-a", [slot("5.3")])]
    decision = decide(
        req(), slots, slots, held, limits(max_gpu_equivalents=1.0), config=MigConfig(prefer="full")
    )
    assert [s.profile for s in decision.slots] == ["4g.40gb"]


def test_quota_refusal_when_only_dear_slots_are_free(slots, slot, limits):
    """Cheap slices exist but are taken: costed at what is free, still "at least"."""
    free = [s for s in slots if s.profile in ("3g.40gb", "4g.40gb")]
    decision = decide(req(), free, slots, [], limits(max_gpu_equivalents=0.3))
    assert decision.refused == (
        "GPU quota: 0.0 of 0.3 GPU-equivalents in use; a slot needs at least 0.43"
    )


# -- slots per container, full GPUs, containers per user -----------------------------------------


def test_slots_per_container(slots, limits):
    decision = decide(req(3), slots, slots, [], limits(max_gpu_slots_per_container=2))
    assert decision.refused == "GPU slots per container: 3 requested, at most 2 allowed"
    assert len(ids(decide(req(2), slots, slots, [], limits(max_gpu_slots_per_container=2)))) == 2


def test_full_gpu_refused_when_not_allowed_with_a_profile_that_would_fit(slots, limits):
    decision = decide(
        req(full_gpu=True),
        slots,
        slots,
        [],
        limits(allow_full_gpu=False, max_gpu_equivalents=0.5),
    )
    assert decision.refused == (
        "full GPUs are not allowed for you (allow_full_gpu: false); "
        "ask for a MIG profile, e.g. --mig 3g.40gb"
    )


def test_plain_request_never_gets_a_whole_gpu_when_not_allowed(slots, limits):
    only_whole_free = [s for s in slots if s.kind == "gpu"]
    lim = limits(allow_full_gpu=False)
    assert ids(decide(req(), slots, slots, [], lim, config=MigConfig(prefer="full"))) == ["7.1"]
    decision = decide(req(), only_whole_free, slots, [], lim)
    assert decision.refused == (
        "no free MIG slot: 0 of 15 free (held by other containers); add --wait to queue for one"
    )


def test_full_gpu_not_allowed_on_a_host_without_mig(slots, limits):
    whole = [s for s in slots if s.kind == "gpu"]
    decision = decide(req(), whole, whole, [], limits(allow_full_gpu=False))
    assert decision.refused == (
        "full GPUs are not allowed for you (allow_full_gpu: false), and this host has no MIG "
        "slots; ask an admin for an override"
    )


def test_containers_per_user(slots, slot, limits, alloc):
    held = [alloc(name, [slot(s)]) for name, s in (("ctr-a", "4.7"), ("ctr-b", "4.8"))]
    held.append(alloc("ctr-c", [slot("4.9")], stopped=True))
    lim = limits(max_containers_per_user=3)
    decision = decide(req(), slots, slots, held, lim)
    assert decision.refused == (
        "containers with GPUs: 3 of 3 in use (ctr-a, ctr-b, ctr-c); stop or remove one first"
    )
    again = GpuRequest(user="alice", container="ctr-b", mig_profile="1g.10gb")
    assert decide(again, slots, slots, held, lim).granted
    assert decide(req(), slots, slots, held[:2], lim).granted


# -- what is asked for ----------------------------------------------------------------------------


def test_profile_request_gets_exactly_that_profile(slots, limits):
    decision = decide(req(2, mig_profile="2g.20gb"), slots, slots, [], limits())
    assert [s.profile for s in decision.slots] == ["2g.20gb", "2g.20gb"]
    assert len({s.uuid for s in decision.slots}) == 2


def test_unknown_profile_lists_the_hosts_profiles(slots, limits):
    decision = decide(req(mig_profile="7g.80gb"), slots, slots, [], limits())
    assert decision.refused == (
        "unknown MIG profile '7g.80gb': this host has 1g.10gb, 2g.20gb, 3g.40gb, 4g.40gb"
    )


def test_min_memory_takes_the_smallest_slice_that_is_big_enough(slots, limits):
    decision = decide(req(min_memory=30 * GiB), slots, slots, [], limits())
    assert [s.profile for s in decision.slots] == ["3g.40gb"]
    decision = decide(req(min_memory=60 * GiB), slots, slots, [], limits())
    assert [s.kind for s in decision.slots] == ["gpu"]


def test_min_memory_beyond_the_profile(slots, limits):
    decision = decide(req(mig_profile="2g.20gb", min_memory=30 * GiB), slots, slots, [], limits())
    assert decision.refused == (
        "no 2g.20gb slot on this host has at least 30.0G of memory (the largest has 19.5G)"
    )


def test_full_gpu_on_a_host_split_into_mig(slots, limits):
    mig_only = [s for s in slots if s.kind == "mig"]
    decision = decide(req(full_gpu=True), mig_only, mig_only, [], limits())
    assert decision.refused == (
        "this host has no full GPUs (all are split into MIG slots); "
        "ask for a MIG profile: 1g.10gb, 2g.20gb, 3g.40gb, 4g.40gb"
    )


def test_host_without_gpus(limits):
    assert decide(req(), [], [], [], limits()).refused == "this host has no GPU slots"


def test_host_too_small_for_the_count(slots, limits):
    decision = decide(req(5, full_gpu=True), slots, slots, [], limits())
    assert decision.refused == "this host has only 4 full GPUs, 5 requested"


@pytest.mark.parametrize(
    ("request_", "refused"),
    [
        (req(0), "a GPU request needs at least 1 slot, got 0"),
        (
            req(mig_profile="2g.20gb", full_gpu=True),
            "ask for either a MIG profile (2g.20gb) or full GPUs, not both",
        ),
    ],
)
def test_meaningless_requests(slots, limits, request_, refused):
    assert decide(request_, slots, slots, [], limits()).refused == refused


def test_prefer_mig_gives_the_smallest_slices_first(slots, limits):
    decision = decide(req(2), slots, slots, [], limits())
    assert [s.profile for s in decision.slots] == ["1g.10gb", "1g.10gb"]


def test_prefer_mig_falls_back_to_whole_gpus(slots, limits):
    only_whole_and_one_slice = without(slots, *[s.slot_id for s in slots if s.kind == "mig"][1:])
    decision = decide(req(2), only_whole_and_one_slice, slots, [], limits())
    assert [s.kind for s in decision.slots] == ["mig", "gpu"]


def test_prefer_full_gives_whole_gpus_first_then_the_largest_slices(slots, limits):
    cfg = MigConfig(prefer="full")
    assert ids(decide(req(2), slots, slots, [], limits(), config=cfg)) == ["0", "1"]
    no_whole = [s for s in slots if s.kind == "mig"]
    decision = decide(req(), no_whole, slots, [], limits(), config=cfg)
    assert [s.profile for s in decision.slots] == ["4g.40gb"]


# -- placement ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "taken", "profile", "gpu"),
    [
        # GPU 4 is busy (4.7 taken): pack fills it, spread goes to the unused GPU 7.
        ("pack", ["4.7"], "1g.10gb", 4),
        ("spread", ["4.7"], "1g.10gb", 7),
        # GPU 5 is busy (its 3g.40gb taken): pack fills it, spread goes to GPU 7.
        ("pack", ["5.2"], "2g.20gb", 5),
        ("spread", ["5.2"], "2g.20gb", 7),
        # Nothing in use: pack takes the GPU with the fewest free slots (7 has 3, 4 has 7);
        # spread sees a tie and takes the lowest index.
        ("pack", [], "1g.10gb", 7),
        ("spread", [], "1g.10gb", 4),
        # Both 3g.40gb GPUs partly used; spread takes the one with fewer slots in use.
        ("spread", ["5.3", "5.4", "6.2"], "3g.40gb", 6),
        ("pack", ["5.3", "5.4", "6.2"], "3g.40gb", 5),
    ],
)
def test_placement_on_a_partly_used_host(slots, limits, strategy, taken, profile, gpu):
    decision = decide(
        req(mig_profile=profile),
        without(slots, *taken),
        slots,
        [],
        limits(),
        config=MigConfig(strategy=strategy),
    )
    assert [s.gpu_index for s in decision.slots] == [gpu]


def test_placement_counts_its_own_choices(slots, limits):
    """A two-slot request packs onto one GPU, or spreads over two."""
    pack = decide(req(2, mig_profile="2g.20gb"), slots, slots, [], limits())
    spread = decide(
        req(2, mig_profile="2g.20gb"), slots, slots, [], limits(), config=MigConfig("spread")
    )
    assert ids(pack) == ["5.3", "5.4"]
    assert ids(spread) == ["5.3", "7.5"]


def test_ties_break_by_gpu_index_then_instance_id_whatever_the_input_order(slots, limits):
    shuffled = list(slots)
    random.Random(7).shuffle(shuffled)
    for cfg in (MigConfig("pack"), MigConfig("spread"), MigConfig(prefer="full")):
        for request_ in (req(), req(2), req(mig_profile="1g.10gb"), req(full_gpu=True)):
            first = decide(request_, slots, slots, [], limits(), config=cfg)
            again = decide(request_, shuffled, list(reversed(slots)), [], limits(), config=cfg)
            assert ids(first) == ids(again)
    assert ids(
        decide(req(mig_profile="1g.10gb"), slots, slots, [], limits(), config=MigConfig("spread"))
    ) == ["4.7"]


# -- only free slots ------------------------------------------------------------------------------


def test_never_a_slot_that_is_not_free(slots, limits):
    free = without(slots, "5.2", "6.1", "6.2")
    decision = decide(req(mig_profile="3g.40gb"), free, slots, [], limits())
    assert decision.refused == (
        "no free 3g.40gb slot: 0 of 3 free (held by other containers); add --wait to queue for "
        "one, or ask for what is free: 1g.10gb (8), 2g.20gb (3), 4g.40gb (1), full GPU (4)"
    )
    decision = decide(
        req(2, mig_profile="3g.40gb"), without(slots, "6.1", "6.2"), slots, [], limits()
    )
    assert decision.refused.startswith("not enough free 3g.40gb slots: 1 of 3 free, 2 requested;")


def test_busy_host_refusal_for_a_plain_request_suggests_the_queue(slots, limits):
    decision = decide(req(), [], slots, [], limits())
    assert decision.refused == (
        "no free GPU slot: 0 of 19 free (held by other containers); add --wait to queue for one"
    )


def test_duplicated_free_slots_are_chosen_once(slots, slot, limits):
    free = [slot("5.3"), slot("5.3"), slot("7.5")]
    decision = decide(req(2, mig_profile="2g.20gb"), free, slots, [], limits())
    assert sorted(ids(decision)) == ["5.3", "7.5"]
    assert not decide(req(3, mig_profile="2g.20gb"), free, slots, [], limits()).granted


# -- soft enforcement -----------------------------------------------------------------------------


def test_soft_mode_grants_over_quota_with_the_refusal_as_warning(slots, slot, limits, alloc):
    held = [alloc("ctr-a", [slot("0")]), alloc("ctr-b", [slot("7.1"), slot("7.13")])]
    lim = limits(max_gpu_equivalents=2.0)
    hard = decide(req(mig_profile="3g.40gb"), slots, slots, held, lim)
    soft = decide(req(mig_profile="3g.40gb"), slots, slots, held, lim, mode="soft")
    assert soft.granted
    assert [s.profile for s in soft.slots] == ["3g.40gb"]
    assert soft.warning == f"soft limit exceeded: {hard.refused}"


@pytest.mark.parametrize(
    ("request_", "lim", "warning"),
    [
        (
            req(3),
            {"max_gpu_slots_per_container": 2},
            "GPU slots per container: 3 requested, at most 2 allowed",
        ),
        (
            req(full_gpu=True),
            {"allow_full_gpu": False},
            "full GPUs are not allowed for you (allow_full_gpu: false); ask for a MIG profile, "
            "e.g. --mig 4g.40gb",
        ),
        (
            req(),
            {"max_containers_per_user": 1},
            "containers with GPUs: 1 of 1 in use (ctr-a); stop or remove one first",
        ),
    ],
)
def test_soft_mode_grants_over_every_limit(slots, slot, limits, alloc, request_, lim, warning):
    held = [alloc("ctr-a", [slot("4.7")])]
    hard = decide(request_, slots, slots, held, limits(**lim))
    soft = decide(request_, slots, slots, held, limits(**lim), mode="soft")
    assert hard.refused == warning
    assert soft.granted and len(soft.slots) == request_.count
    assert soft.warning == f"soft limit exceeded: {warning}"


def test_soft_mode_names_every_limit_exceeded(slots, slot, limits, alloc):
    held = [alloc("ctr-a", [slot("0")])]
    lim = limits(max_gpu_equivalents=1.0, max_containers_per_user=1)
    soft = decide(req(full_gpu=True), slots, slots, held, lim, mode="soft")
    assert soft.warning == (
        "soft limit exceeded: containers with GPUs: 1 of 1 in use (ctr-a); stop or remove one "
        "first; soft limit exceeded: GPU quota: 1.0 of 1.0 GPU-equivalents in use (ctr-a 1.0); "
        "a full GPU needs 1.0"
    )


def test_soft_mode_plain_request_prefers_allowed_slots(slots, limits):
    lim = limits(allow_full_gpu=False)
    soft = decide(req(), slots, slots, [], lim, mode="soft", config=MigConfig(prefer="full"))
    assert [s.profile for s in soft.slots] == ["4g.40gb"]
    assert soft.warning is None
    whole_only = [s for s in slots if s.kind == "gpu"]
    soft = decide(req(), whole_only, slots, [], lim, mode="soft")
    assert ids(soft) == ["0"]
    assert soft.warning.startswith("soft limit exceeded: full GPUs are not allowed for you")


def test_soft_mode_still_refuses_what_is_not_free(slots, limits):
    decision = decide(
        req(mig_profile="3g.40gb"),
        without(slots, "5.2", "6.1", "6.2"),
        slots,
        [],
        limits(),
        mode="soft",
    )
    assert decision.refused.startswith("no free 3g.40gb slot")


def test_within_limits_there_is_no_warning(slots, limits):
    lim = limits(max_gpu_equivalents=1.0, max_gpu_slots_per_container=1)
    decision = decide(req(mig_profile="2g.20gb"), slots, slots, [], lim, mode="soft")
    assert decision.granted and decision.warning is None
