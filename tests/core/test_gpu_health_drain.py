"""A drained GPU gets no new allocation, while the other GPUs still allocate and what the drained
GPU already holds stays; the drain ends when the GPU is healthy again, and follows the
configuration (``gpu.health.drain``)."""

from __future__ import annotations

import pytest

from ds01_core.cycle.pipeline import run_cycle
from ds01_core.domain.model import GpuRequest
from ds01_core.domain.state.allocations import AllocationRefused, Allocations
from tests.helpers.gpu_health import TelemetryHost, health_changes, runtime_maker

LIMITS = {
    "limits": {
        "defaults": {
            "max_gpu_equivalents": 8,
            "max_gpu_slots_per_container": 4,
            "max_containers_per_user": 8,
        }
    }
}


@pytest.fixture
def make_runtime(tmp_path):
    with runtime_maker(tmp_path) as make:
        yield make


def gpu_of(granted) -> int:
    (slot,) = granted.slots
    return slot.gpu_index


def test_a_drained_gpu_gets_no_new_allocation_while_the_others_still_allocate(make_runtime):
    provider = TelemetryHost()
    runtime = make_runtime(provider, extra=LIMITS)
    allocations = Allocations(runtime)
    held = allocations.allocate(GpuRequest("alice", "held"))
    assert gpu_of(held) == 0  # the whole-GPU allocator takes the first free GPU
    run_cycle(runtime, workloads=[])

    provider.faults = {0: {"fell_off_bus": True}, 1: {"ecc_volatile_uncorrected": 1}}
    run_cycle(runtime, workloads=[])
    assert [(e["gpu"], e["drained"]) for e in health_changes(runtime)] == [(0, True), (1, True)]

    # GPU 1 was free, but it is drained: the next request skips it
    assert gpu_of(allocations.allocate(GpuRequest("bob", "one"))) == 2
    assert gpu_of(allocations.allocate(GpuRequest("bob", "two"))) == 3
    with pytest.raises(AllocationRefused) as refused:
        allocations.allocate(GpuRequest("carol", "three"))
    assert str(refused.value) == (
        "no free whole GPU: 0 free, 1 requested; GPU 1 (unhealthy) is drained, see "
        "`ds01 gpu health`"
    )
    # what the drained GPU held is not revoked
    live = {a.container: a.slot_uuids for a in allocations.live()}
    assert live["held"] == held.allocation.slot_uuids

    provider.faults = {0: {"fell_off_bus": True}}  # GPU 1 is healthy again
    run_cycle(runtime, workloads=[])
    assert gpu_of(allocations.allocate(GpuRequest("carol", "three"))) == 1


def test_a_degraded_gpu_still_allocates_unless_the_drain_names_it(make_runtime, tmp_path):
    provider = TelemetryHost()
    provider.faults = {0: {"temperature_c": 86.0}}
    runtime = make_runtime(provider, extra=LIMITS)
    run_cycle(runtime, workloads=[])
    assert gpu_of(Allocations(runtime).allocate(GpuRequest("alice", "warm"))) == 0

    strict = make_runtime(
        TelemetryHost(),
        extra={**LIMITS, "gpu": {"backend": "simulated", "health": {"drain": ["degraded"]}}},
    )
    strict.gpu.faults = {1: {"temperature_c": 86.0}}  # GPU 0 is held by alice (same store)
    run_cycle(strict, workloads=[])
    assert gpu_of(Allocations(strict).allocate(GpuRequest("bob", "cool"))) == 2


def test_a_drain_of_nothing_never_drains(make_runtime):
    provider = TelemetryHost()
    provider.faults = {0: {"fell_off_bus": True}}
    runtime = make_runtime(
        provider, extra={**LIMITS, "gpu": {"backend": "simulated", "health": {"drain": []}}}
    )
    run_cycle(runtime, workloads=[])
    assert health_changes(runtime)[0]["state"] == "unhealthy"
    assert gpu_of(Allocations(runtime).allocate(GpuRequest("alice", "risky"))) == 0


def test_a_stopped_containers_slots_on_a_drained_gpu_are_not_given_again(make_runtime):
    provider = TelemetryHost()
    runtime = make_runtime(provider, extra=LIMITS)
    slot = next(s for s in provider.slots() if s.gpu_index == 2)
    provider.faults = {2: {"remapped_rows_failed": True}}
    run_cycle(runtime, workloads=[])
    with pytest.raises(AllocationRefused) as refused:
        Allocations(runtime).reserve("alice", "c" * 64, "old-box", [slot.uuid])
    assert "GPU 2 (unhealthy) is drained" in str(refused.value)
    assert "recreate the container to get another GPU" in str(refused.value)
    other = next(s for s in provider.slots() if s.gpu_index == 3)
    assert Allocations(runtime).reserve("alice", "d" * 64, "box", [other.uuid]).bound
