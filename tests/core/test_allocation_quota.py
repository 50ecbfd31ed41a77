"""The core's own GPU quota rule, exercised where the shipped allocators cannot hide it.

The built-in and MIG allocators refuse over-quota requests themselves, so with them installed
the core's check of an allocator's answer never decides anything. A third party's allocator may
be wrong: here a real, pip-installed plugin distribution (``ds01-greedy-allocator``, found by its
entry point like any third party's) grants whole GPUs to anyone, and the core must refuse.
Re-allocation on start after the hold expired (``reserve``) asks no allocator at all, so its
quota check is tested directly.
"""

from __future__ import annotations

import pytest

from ds01_core.domain.model import GpuRequest
from ds01_core.domain.state.allocations import AllocationRefused, Allocations, inventory_slots
from ds01_core.framework.runtime import load_runtime
from tests.helpers.config import write_config


def quota_config(tmp_path, mode="hard", quota=1):
    return str(
        write_config(
            tmp_path,
            {
                "enforcement": {"mode": mode},
                "limits": {
                    "defaults": {
                        "max_gpu_equivalents": quota,
                        "max_gpu_slots_per_container": 4,
                        "max_containers_per_user": 8,
                    }
                },
            },
        )
    )


@pytest.fixture
def greedy(tmp_path, use_dists):
    """A runtime whose allocator ignores quotas (the built-in allocator is ``trylast``, so the
    greedy one answers every request)."""

    def make(mode="hard"):
        runtime = load_runtime(
            quota_config(tmp_path, mode),
            entry_points=use_dists("ds01-greedy-allocator"),
        )
        record = runtime.plugins.record("greedy")
        assert record is not None and record.status == "active", record
        return runtime

    return make


def rejected(runtime):
    return [r for r in runtime.events.read() if r["event_type"] == "gpu.rejected"]


def test_the_greedy_plugin_really_ignores_quotas(greedy):
    """The oracle for the tests below: asked directly, the plugin grants beyond any quota."""
    runtime = greedy()  # puts the installed distribution on sys.path
    import ds01_greedy_allocator

    slots = inventory_slots(runtime)
    decision = ds01_greedy_allocator.allocate_gpu(GpuRequest("alice", "x", count=3), slots)
    assert decision.granted and sum(s.weight for s in decision.slots) == 3


def test_the_core_refuses_an_allocator_that_grants_over_the_quota(greedy):
    runtime = greedy()
    allocations = Allocations(runtime)
    first = allocations.allocate(GpuRequest("alice", "one", count=1))
    assert first.allocation.weight == 1
    with pytest.raises(AllocationRefused) as refused:
        allocations.allocate(GpuRequest("alice", "two", count=1))
    # the core's wording, not an allocator's: "this request needs"
    assert "GPU quota: 1.00 of 1 GPU-equivalents in use (one 1.00)" in str(refused.value)
    assert "this request needs 1.00" in str(refused.value)
    assert [a.container for a in allocations.live()] == ["one"]
    assert [r["details"]["container"] for r in rejected(runtime)] == ["two"]
    # another user is not affected by alice's quota
    assert allocations.allocate(GpuRequest("bob", "b", count=1)).allocation.weight == 1


def test_the_core_refuses_a_single_request_bigger_than_the_quota(greedy):
    runtime = greedy()
    allocations = Allocations(runtime)
    with pytest.raises(AllocationRefused, match=r"0\.00 of 1 .*this request needs 2\.00"):
        allocations.allocate(GpuRequest("alice", "big", count=2))
    assert allocations.live() == []


def test_soft_mode_lets_the_allocators_answer_through(greedy):
    runtime = greedy("soft")
    allocations = Allocations(runtime)
    allocations.allocate(GpuRequest("alice", "one", count=1))
    allocations.allocate(GpuRequest("alice", "two", count=1))
    assert sum(a.weight for a in allocations.live(user="alice")) == 2


# -- starting again after the hold expired: reserve() -------------------------------------------


def whole_gpus(runtime):
    return [s.uuid for s in inventory_slots(runtime) if s.kind == "gpu"]


def test_starting_again_over_the_quota_is_refused(tmp_path):
    runtime = load_runtime(quota_config(tmp_path), no_plugins=True)
    allocations = Allocations(runtime)
    held = allocations.allocate(GpuRequest("alice", "running", count=1))
    free = [u for u in whole_gpus(runtime) if u not in held.allocation.slot_uuids]
    with pytest.raises(AllocationRefused) as refused:
        allocations.reserve("alice", "c" * 64, "stopped", [free[0]])
    assert "GPU quota: 1.00 of 1 GPU-equivalents in use (running 1.00)" in str(refused.value)
    assert "this container needs 1.00" in str(refused.value)
    assert [a.container_name for a in allocations.live()] == ["running"]

    allocations.release([held.allocation.id], "test")
    again = allocations.reserve("alice", "c" * 64, "stopped", [free[0]])
    assert again.bound and again.slot_uuids == [free[0]]
    assert [a.container_name for a in allocations.live()] == ["stopped"]


def test_starting_again_over_the_quota_in_soft_mode_warns(tmp_path):
    runtime = load_runtime(quota_config(tmp_path, "soft"), no_plugins=True)
    allocations = Allocations(runtime)
    held = allocations.allocate(GpuRequest("alice", "running", count=1))
    free = [u for u in whole_gpus(runtime) if u not in held.allocation.slot_uuids]
    allocations.reserve("alice", "c" * 64, "stopped", [free[0]])
    event = [r for r in runtime.events.read() if r["event_type"] == "gpu.allocated"][-1]
    assert event["details"]["container"] == "stopped"
    assert "GPU quota: 1.00 of 1" in event["details"]["warning"]


def test_starting_again_on_a_slot_that_is_gone_or_taken_is_refused(tmp_path):
    runtime = load_runtime(quota_config(tmp_path, quota=4), no_plugins=True)
    allocations = Allocations(runtime)
    with pytest.raises(AllocationRefused) as gone:
        allocations.reserve("alice", "c" * 64, "stopped", ["GPU-no-such-slot"])
    assert str(gone.value) == "GPU slot(s) GPU-no-such-slot no longer exist"
    bobs = allocations.allocate(GpuRequest("bob", "bobs", count=1)).allocation
    mine = allocations.allocate(GpuRequest("alice", "mine", count=1)).allocation
    for taken, whose in ((bobs, "another user's container"), (mine, "mine")):
        with pytest.raises(AllocationRefused) as refused:
            allocations.reserve("alice", "c" * 64, "stopped", taken.slot_uuids)
        assert str(refused.value).endswith(f"are now allocated to {whose}")
    assert sorted(a.container_name for a in allocations.live()) == ["bobs", "mine"]
