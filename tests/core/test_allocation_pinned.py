"""Slots a scheduler keeps (``reserved_gpu_slots``) and requests that name their exact slots.

A Slurm job's GPUs are chosen by Slurm: ds01's allocator must never hand them to a
``docker run --gpus`` (they are kept), and the job's container must get exactly those slots —
if they exist, are free, not drained and within the owner's quota.
"""

from __future__ import annotations

import pytest

from ds01_core.domain.config import build_config
from ds01_core.domain.model import GpuRequest
from ds01_core.domain.state.allocations import AllocationRefused, Allocations, inventory_slots
from ds01_core.framework.hookspecs import hookimpl
from ds01_core.framework.manager import make_plugin_host
from ds01_core.framework.runtime import Runtime


class KeepsFirstTwo:
    """Keeps GPUs 0 and 1, as the Slurm plugin keeps the GPUs Slurm schedules."""

    @hookimpl
    def reserved_gpu_slots(self, slots):
        return {s.uuid: "Slurm batch jobs" for s in slots if s.kind == "gpu" and s.gpu_index < 2}


def runtime_with(tmp_path, *plugins, quota=8):
    data = {
        "paths": {k: str(tmp_path / k) for k in ("state_dir", "log_dir", "runtime_dir")},
        "gpu": {"backend": "simulated"},
        "limits": {"defaults": {"max_gpu_equivalents": quota, "max_gpu_slots_per_container": 8}},
    }
    host = make_plugin_host(
        extra=plugins, disabled=["docker-detector", "gpu-process-detector"], load_entry_points=False
    )
    return Runtime(build_config(data, sections=host.config_sections()), host)


def whole(runtime, *indexes):
    by_index = {s.gpu_index: s for s in inventory_slots(runtime) if s.kind == "gpu"}
    return [by_index[i].uuid for i in indexes]


def test_hook_reserved_gpu_slots(tmp_path):
    """The allocator never chooses a kept slot; a refusal for want of slots says who keeps them."""
    runtime = runtime_with(tmp_path, ("keeper", KeepsFirstTwo()))
    allocations = Allocations(runtime)
    kept = set(whole(runtime, 0, 1))
    free_whole = [s for s in inventory_slots(runtime) if s.kind == "gpu" and s.uuid not in kept]
    got = []
    for n in range(len(free_whole)):
        granted = allocations.allocate(GpuRequest(f"u{n}", f"c{n}", full_gpu=True))
        got += granted.allocation.slot_uuids
    assert not kept & set(got)
    assert sorted(got) == sorted(s.uuid for s in free_whole)
    with pytest.raises(AllocationRefused) as refused:
        allocations.allocate(GpuRequest("late", "late", full_gpu=True))
    assert "2 free GPU slot(s) are kept for Slurm batch jobs" in str(refused.value)


def test_a_pinned_request_gets_exactly_its_kept_slots(tmp_path):
    runtime = runtime_with(tmp_path, ("keeper", KeepsFirstTwo()))
    allocations = Allocations(runtime)
    uuids = tuple(whole(runtime, 1))
    granted = allocations.allocate(GpuRequest("alice", "job-7", count=1, slot_uuids=uuids))
    assert granted.allocation.slot_uuids == list(uuids)
    # the same slot again: held, refused, and nothing new is recorded
    with pytest.raises(AllocationRefused) as taken:
        allocations.allocate(GpuRequest("bob", "job-8", count=1, slot_uuids=uuids))
    assert "are held by another container or drained" in str(taken.value)
    with pytest.raises(AllocationRefused) as gone:
        allocations.allocate(GpuRequest("bob", "job-9", slot_uuids=("GPU-nope",)))
    assert str(gone.value) == "GPU slot(s) GPU-nope do not exist on this server"
    assert [a.container_name for a in allocations.live()] == ["job-7"]


def test_a_pinned_request_is_held_to_the_quota(tmp_path):
    runtime = runtime_with(tmp_path, ("keeper", KeepsFirstTwo()), quota=1)
    allocations = Allocations(runtime)
    with pytest.raises(AllocationRefused) as refused:
        allocations.allocate(
            GpuRequest("alice", "job", count=2, slot_uuids=tuple(whole(runtime, 0, 1)))
        )
    assert "GPU quota" in str(refused.value)
    assert allocations.live() == []


def test_a_pinned_request_does_not_wait_behind_the_queue_nor_overtake_a_pin(tmp_path):
    """Slurm queued the job already: a pinned request is not told to join ds01's queue."""
    from ds01_core.domain.state.gpu_queue import Waiter

    runtime = runtime_with(tmp_path, ("keeper", KeepsFirstTwo()))
    Waiter(runtime, GpuRequest("waiter", "w"))  # this process waits (alive: its ticket counts)
    allocations = Allocations(runtime)
    with pytest.raises(AllocationRefused) as queued:
        allocations.allocate(GpuRequest("bob", "plain", full_gpu=True))
    assert "ahead in the GPU queue" in str(queued.value)
    granted = allocations.allocate(GpuRequest("alice", "job", slot_uuids=tuple(whole(runtime, 0))))
    assert granted.allocation.container_name == "job"


def test_hook_doctor_checks(tmp_path):
    """A plugin's findings are in ``ds01 admin doctor``'s, after the core's."""
    from ds01_core.domain.doctor_finding import DoctorFinding
    from ds01_core.services.doctor import HostPaths, run_doctor

    class Checker:
        @hookimpl
        def doctor_checks(self, runtime):
            return [
                DoctorFinding("slurm-gres", "node1", False, "Slurm sees 1 GPU, ds01 2", "fix it")
            ]

    runtime = runtime_with(tmp_path, ("checker", Checker()))
    empty = tmp_path / "host"
    empty.mkdir()
    findings = run_doctor(runtime, HostPaths(engine_sockets=(), dev_dir=str(empty)))
    assert findings[-1] == DoctorFinding(
        "slurm-gres", "node1", False, "Slurm sees 1 GPU, ds01 2", "fix it"
    )
