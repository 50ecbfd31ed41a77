"""GPU health end to end on the simulated host: faults injected through the faults file
(``gpu.simulated.faults_file``, read through the real NVML provider code and the GPU access)
each become their event and state in the daemon's cycle; cleared faults write ``ok``; an
unhealthy GPU is drained for allocation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ds01_core.cycle.pipeline import run_cycle
from ds01_core.domain.model import GpuRequest
from ds01_core.domain.state.allocations import AllocationRefused, Allocations
from ds01_core.framework.runtime import Runtime
from tests.helpers.gpu_health import gpu_events, health_changes, inject, runtime_maker


@pytest.fixture
def host(tmp_path: Path):
    faults = tmp_path / "faults.yaml"
    inject(faults, {})
    extra = {
        "gpu": {"backend": "simulated", "simulated": {"faults_file": str(faults)}},
        "limits": {"defaults": {"max_gpu_equivalents": 8, "max_gpu_slots_per_container": 4}},
    }
    with runtime_maker(tmp_path) as make:
        runtime = make(extra=extra)  # the configured provider, through the GPU access
        run_cycle(runtime, workloads=[])
        assert health_changes(runtime) == []  # a healthy host: nothing to say
        yield runtime, faults


@pytest.mark.parametrize(
    ("fault", "state", "codes", "words"),
    [
        ({"ecc_uncorrected": 2}, "unhealthy", ["ecc_uncorrected"], "2 uncorrected ECC errors"),
        ({"temperature": 88}, "degraded", ["thermal"], "88 °C, within 5 °C"),
        ({"throttle": ["hw_thermal"]}, "degraded", ["thermal"], "clocks throttled (hw_thermal)"),
        ({"fell_off_bus": True}, "unhealthy", ["fell_off_bus"], "fell off the bus"),
        ({"remap_failure": True}, "unhealthy", ["row_remap_failure"], "needs service"),
        ({"pending_retirement": True}, "degraded", ["pending_retirement"], "wait for a GPU reset"),
    ],
)
def test_an_injected_fault_is_one_event_and_its_clearing_another(
    host: tuple[Runtime, Path], fault: dict, state: str, codes: list[str], words: str
) -> None:
    runtime, faults = host
    inject(faults, {1: fault})
    report = run_cycle(runtime, workloads=[])
    (changed,) = health_changes(runtime)
    assert changed["gpu"] == 1 and changed["state"] == state
    assert [r["code"] for r in changed["reasons"]] == codes
    assert words in changed["reasons"][0]["detail"]
    assert changed["drained"] is (state == "unhealthy")
    assert report.health[1].state == state and report.health[1].telemetry is not None
    run_cycle(runtime, workloads=[])
    assert len(health_changes(runtime)) == 1  # unchanged: silence

    # cleared (an uncorrected ECC count clears only when the driver reloads: 0)
    inject(faults, {1: {"ecc_uncorrected": 0}} if "ecc_uncorrected" in fault else {})
    run_cycle(runtime, workloads=[])
    cleared = health_changes(runtime)[1:]
    assert [(c["gpu"], c["state"], c["previous_state"]) for c in cleared] == [(1, "ok", state)]


def test_an_injected_xid_is_an_xid_event_and_a_critical_one_drains(
    host: tuple[Runtime, Path],
) -> None:
    runtime, faults = host
    inject(faults, {3: {"xid": [79]}})
    report = run_cycle(runtime, workloads=[])
    xids = [e["details"] for e in gpu_events(runtime) if e["event_type"] == "gpu.xid"]
    assert [(x["gpu"], x["xid"]) for x in xids] == [(3, 79)]
    (changed,) = health_changes(runtime)
    assert changed["state"] == "unhealthy" and changed["drained"] is True
    assert changed["reasons"][0]["detail"].startswith("XID 79 (GPU fell off the bus) at ")
    assert report.health[3].telemetry.last_xid == 79
    run_cycle(runtime, workloads=[])  # delivered once: no second event
    assert len([e for e in gpu_events(runtime) if e["event_type"] == "gpu.xid"]) == 1

    # the drained GPU is skipped; the whole GPUs before and after it still allocate
    allocations = Allocations(runtime)
    chosen = [allocations.allocate(GpuRequest("alice", f"c{i}")).slots[0] for i in range(3)]
    assert [s.gpu_index for s in chosen] == [0, 1, 2]
    inject(faults, {})  # the XID stays within its window: still drained
    run_cycle(runtime, workloads=[])
    with pytest.raises(AllocationRefused, match=r"GPU 3 \(unhealthy\) is drained"):
        allocations.allocate(GpuRequest("bob", "b"))


def test_a_critical_xid_is_not_hidden_by_a_harmless_one_after_it(
    host: tuple[Runtime, Path],
) -> None:
    """Several XIDs between two cycles: each is an event, and the critical one still counts
    though the GPU's last XID is harmless."""
    runtime, faults = host
    inject(faults, {2: {"xid": [79, 31]}})
    report = run_cycle(runtime, workloads=[])
    xids = [e["details"] for e in gpu_events(runtime) if e["event_type"] == "gpu.xid"]
    assert [(x["gpu"], x["xid"]) for x in xids] == [(2, 79), (2, 31)]
    assert report.health[2].telemetry.last_xid == 31
    (changed,) = health_changes(runtime)
    assert changed["state"] == "unhealthy" and changed["drained"] is True
    run_cycle(runtime, workloads=[])  # each delivered once
    assert len([e for e in gpu_events(runtime) if e["event_type"] == "gpu.xid"]) == 2
