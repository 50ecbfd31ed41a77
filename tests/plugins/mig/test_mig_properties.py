"""Properties of every decision, over random hosts-in-use, holdings, requests and limits.

Whatever is asked: the chosen slots are distinct, free, and what was asked for; in hard mode
no limit is ever exceeded; soft mode refuses only what hard mode refuses too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from ds01_core.domain.model import (
    Allocation,
    AllocationDecision,
    EffectiveLimits,
    GpuRequest,
    LimitValue,
)
from ds01_mig import decide
from ds01_mig.config import MigConfig

GiB = 1024**3
NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
PROFILES = ("1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb")

requests = st.builds(
    GpuRequest,
    user=st.just("alice"),
    container=st.sampled_from(["new", "ctr-0", "ctr-1"]),
    count=st.integers(1, 4),
    mig_profile=st.none() | st.sampled_from(PROFILES),
    full_gpu=st.booleans(),
    min_memory=st.none() | st.sampled_from([5 * GiB, 15 * GiB, 30 * GiB, 50 * GiB, 90 * GiB]),
).filter(lambda r: not (r.mig_profile and r.full_gpu))

limit_values = st.fixed_dictionaries(
    {
        "max_gpu_equivalents": st.none() | st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0, 4.0]),
        "max_gpu_slots_per_container": st.none() | st.integers(1, 3),
        "allow_full_gpu": st.none() | st.booleans(),
        "max_containers_per_user": st.none() | st.integers(1, 3),
    }
)


def make_limits(values: dict[str, Any]) -> EffectiveLimits:
    present = {k: LimitValue(v, "test") for k, v in values.items() if v is not None}
    return EffectiveLimits("alice", None, present)


@st.composite
def hosts_in_use(draw, slots):
    """(free slots, alice's allocations): each slot is free, alice's (in one of three
    containers, maybe stopped), or someone else's."""
    owners = draw(
        st.lists(
            st.sampled_from(["free", "free", "free", "other", 0, 1, 2]),
            min_size=len(slots),
            max_size=len(slots),
        )
    )
    free = [s for s, owner in zip(slots, owners, strict=True) if owner == "free"]
    held = []
    for index in (0, 1, 2):
        mine = [s for s, owner in zip(slots, owners, strict=True) if owner == index]
        if mine:
            held.append(
                Allocation(
                    index,
                    "alice",
                    f"ctr-{index}",
                    [s.uuid for s in mine],
                    sum(s.weight for s in mine),
                    NOW,
                    container_name=f"ctr-{index}",
                    stopped_at=draw(st.none() | st.just(NOW)),
                )
            )
    order = draw(st.permutations(free))
    return list(order), held


def check_grant(decision: AllocationDecision, request: GpuRequest, free: list) -> None:
    """Distinct, free, and what was asked for."""
    uuids = [s.uuid for s in decision.slots]
    assert len(uuids) == request.count
    assert len(set(uuids)) == len(uuids), "a slot chosen twice"
    assert all(s in free for s in decision.slots), "a slot that is not free"
    for s in decision.slots:
        if request.mig_profile:
            assert s.kind == "mig" and s.profile == request.mig_profile
        if request.full_gpu:
            assert s.kind == "gpu"
        if request.min_memory is not None:
            assert s.memory_total >= request.min_memory


def check_hard_limits(
    decision: AllocationDecision, request: GpuRequest, held: list, values: dict[str, Any]
) -> None:
    """Every limit holds, and nothing was granted over one."""
    in_use = sum(a.weight for a in held)
    quota = values["max_gpu_equivalents"]
    if quota is not None:
        assert in_use + sum(s.weight for s in decision.slots) <= quota + 1e-9
    if values["max_gpu_slots_per_container"] is not None:
        assert request.count <= values["max_gpu_slots_per_container"]
    if values["allow_full_gpu"] is False:
        assert all(s.kind == "mig" for s in decision.slots)
    limit = values["max_containers_per_user"]
    if limit is not None and request.container not in {a.container for a in held}:
        assert len(held) < limit
    assert decision.warning is None


@settings(max_examples=400)
@given(
    data=st.data(),
    request=requests,
    values=limit_values,
    config=st.builds(
        MigConfig, st.sampled_from(["pack", "spread"]), st.sampled_from(["mig", "full"])
    ),
)
def test_every_decision_is_sound(slots, data, request, values, config):
    free, held = data.draw(hosts_in_use(slots))
    limits = make_limits(values)
    hard = decide(request, free, slots, held, limits, config=config, mode="hard")
    soft = decide(request, free, slots, held, limits, config=config, mode="soft")
    for decision in (hard, soft):
        assert isinstance(decision, AllocationDecision)
        assert decision.granted == (not decision.refused)
        if decision.granted:
            check_grant(decision, request, free)
        else:
            assert decision.slots == []
    event(f"hard {'granted' if hard.granted else hard.refused.split(':')[0]}")
    event(
        f"soft {'granted with warning' if soft.warning else 'granted' if soft.granted else 'refused'}"
    )
    if hard.granted:
        check_hard_limits(hard, request, held, values)
    if soft.granted and not soft.warning:  # no warning: then no limit was exceeded
        check_hard_limits(soft, request, held, values)
    if soft.refused:
        assert hard.refused, "soft mode refused what hard mode granted"
    if soft.warning:
        assert soft.warning.startswith("soft limit exceeded: ")
    assert decide(request, free, slots, held, limits, config=config, mode="hard") == hard
