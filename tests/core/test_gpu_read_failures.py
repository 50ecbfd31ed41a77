"""What NVML could not read is unknown, never idle; old drivers and driver quirks are met.

Each test switches on a real driver behaviour in the simulated host
(:mod:`ds01_core.domain.gpu.simulated.faults`) that once hid a bug: a process query answering
NoPermission, an unlistable MIG device, an old driver without the ``_v3`` process query,
driver-reserved memory, GPUs without MIG profiles, empty MIG indices answering InvalidArgument.
"""

from __future__ import annotations

import logging
import os

import pynvml
import pytest

from ds01_core.cycle.activity import gpu_active
from ds01_core.cycle.idle import gpu_view, signals
from ds01_core.cycle.upkeep import UpkeepStep
from ds01_core.domain.gpu.nvml import NvmlProvider
from ds01_core.domain.gpu.simulated import load_topology
from ds01_core.domain.gpu.simulated.nvml import SimulatedNvml
from ds01_core.domain.gpu.simulated.values import SimHandle
from ds01_core.domain.model import Workload
from ds01_core.framework.runtime import load_runtime
from tests.core.test_idle import POLICY
from tests.helpers.fake_pynvml import FakeNvml

MIB = 1024**2


@pytest.fixture
def fake() -> FakeNvml:
    return FakeNvml(load_topology())


def slot_uuid(provider: NvmlProvider, slot_id: str) -> str:
    return next(s.uuid for s in provider.slots() if s.slot_id == slot_id)


def on_slot(uuid: str, pid: int) -> Workload:
    return Workload(
        "container", "c1", "c1", "docker", "ann", "label", "running", gpu_slots=[uuid], pids=[pid]
    )


# -- a failed process query is unknown, not "no processes" --------------------------------------


@pytest.mark.parametrize("error", [pynvml.NVMLError_NoPermission, pynvml.NVMLError_Unknown])
def test_a_failed_process_query_leaves_the_mig_gpu_signal_unknown(tmp_config, error) -> None:
    runtime = load_runtime(str(tmp_config()))
    work = on_slot(slot_uuid(runtime.gpu, "5.3"), 4200022)  # MIG: processes are the signal
    assert signals(work, None, POLICY, gpu_view(runtime, [work]))["gpu"] is True
    runtime.gpu.nvml.faults.process_errors[5] = error
    view = gpu_view(runtime, [work])
    assert signals(work, None, POLICY, view)["gpu"] is None  # not False: that would be idle
    assert 4200002 in {p.pid for p in view.processes}  # the other GPUs are still read


def test_the_process_listing_says_which_leaves_were_read(fake: FakeNvml) -> None:
    provider = NvmlProvider(fake)
    fake.faults.process_errors[(5, 1)] = pynvml.NVMLError_NoPermission  # one MIG device
    listing = provider.process_listing()
    assert slot_uuid(provider, "5.3") not in (listing.read or ())
    assert slot_uuid(provider, "5.2") in (listing.read or ())
    assert listing.complete
    assert 4200021 in {p.pid for p in listing.processes}


def test_an_unlistable_mig_device_leaves_its_slot_unknown(fake: FakeNvml) -> None:
    def by_index(handle: SimHandle, index: int) -> SimHandle:
        if index == 1:
            raise pynvml.NVMLError_Unknown()
        return SimulatedNvml.nvmlDeviceGetMigDeviceHandleByIndex(fake, handle, index)

    provider = NvmlProvider(fake)
    uuid = slot_uuid(provider, "5.3")
    fake.answer("nvmlDeviceGetMigDeviceHandleByIndex", by_index, gpu=5)
    slots = {s.uuid: s for s in provider.slots()}
    listing = provider.process_listing()
    assert uuid not in slots and not listing.complete
    mine = frozenset({4200022})
    known = dict(read=listing.read, complete=listing.complete)
    assert gpu_active([uuid], slots, listing.processes, mine, 5.0, **known) is None
    assert provider.health()[5].startswith("degraded: listing MIG devices: ")


def test_a_failed_gpu_listing_leaves_every_gpu_signal_unknown(tmp_config) -> None:
    runtime = load_runtime(str(tmp_config()))
    work = on_slot(slot_uuid(runtime.gpu, "5.3"), 4200022)
    runtime.gpu.close()  # every listing now raises
    assert signals(work, None, POLICY, gpu_view(runtime, [work]))["gpu"] is None


# -- health: a state and an event per failure streak --------------------------------------------


def test_read_failures_are_a_health_state_and_one_event_per_streak(tmp_config) -> None:
    runtime = load_runtime(str(tmp_config()))
    work = on_slot(slot_uuid(runtime.gpu, "5.3"), 4200022)
    assert set(runtime.gpu.health().values()) == {"ok"}
    runtime.gpu.nvml.faults.process_errors[5] = pynvml.NVMLError_NoPermission
    first = gpu_view(runtime, [work]).events
    again = gpu_view(runtime, [work]).events
    assert [e.event_type for e in first] == ["gpu.read_failed"] and again == ()
    assert first[0].details["gpu"] == 5
    health = runtime.gpu.health()
    assert health[5].startswith("degraded: nvmlDeviceGetComputeRunningProcesses: MIG-")
    assert "Insufficient Permissions" in health[5]
    assert health[4] == "ok"
    runtime.gpu.nvml.faults.process_errors.clear()
    recovered = gpu_view(runtime, [work]).events
    assert [(e.event_type, e.details) for e in recovered] == [("gpu.read_recovered", {"gpu": 5})]
    assert runtime.gpu.health()[5] == "ok"


def test_the_upkeep_step_records_the_read_failure_once(tmp_config) -> None:
    runtime = load_runtime(str(tmp_config()))
    work = Workload(
        "container",
        "c1",
        "c1",
        "docker",
        "root",
        "label",
        "running",
        gpu_slots=[slot_uuid(runtime.gpu, "5.3")],
        pids=[os.getpid()],
    )
    runtime.gpu.nvml.faults.process_errors[5] = pynvml.NVMLError_NoPermission
    first = UpkeepStep(runtime).run([work])
    assert [(e.event_type, e.details["gpu"]) for e in first] == [("gpu.read_failed", 5)]
    assert UpkeepStep(runtime).run([work]) == []


# -- old drivers --------------------------------------------------------------------------------


def test_an_old_driver_without_the_v3_process_query_uses_v2(fake: FakeNvml) -> None:
    fake.faults.old_driver = True
    provider = NvmlProvider(fake)
    for _ in range(2):
        procs = {p.pid: p for p in provider.processes()}
        assert procs[4200022].slot_uuid == slot_uuid(provider, "5.3")
        assert procs[4200002].used_memory == 12 * 1024 * MIB
    assert fake.faults.calls["nvmlDeviceGetComputeRunningProcesses"] == 1  # then _v2 only
    assert set(provider.health().values()) == {"ok"}


# -- memory "used" leaves out what the driver reserves ------------------------------------------


def test_memory_used_comes_from_the_v2_query_without_reserved_memory(fake: FakeNvml) -> None:
    fake.faults.reserved_memory[2] = 600 * MIB
    gpu = NvmlProvider(fake).gpus()[2]
    assert gpu.memory_used == fake.host.gpus[2].memory_used
    assert gpu.slots[0].memory_used == gpu.memory_used


def test_without_the_v2_memory_query_v1_is_used_and_v2_not_asked_again(fake: FakeNvml) -> None:
    fake.faults.reserved_memory[2] = 600 * MIB
    fake.faults.old_driver = True
    provider = NvmlProvider(fake)
    for _ in range(3):
        assert provider.gpus()[2].memory_used == fake.host.gpus[2].memory_used + 600 * MIB
    assert fake.faults.calls["nvmlDeviceGetMemoryInfo_v2"] == 1


# -- calls that fail for good are not repeated; expected answers are not warnings ---------------


def test_failing_profile_info_is_asked_once_per_gpu(fake: FakeNvml) -> None:
    fake.faults.profile_info_error = pynvml.NVMLError_NotSupported
    provider = NvmlProvider(fake)
    for _ in range(3):
        provider.gpus()
    calls = fake.faults.calls["nvmlDeviceGetGpuInstanceProfileInfo"]
    assert calls == 8 * pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT


def test_empty_mig_indices_answering_invalid_argument_are_not_warnings(
    fake: FakeNvml, caplog: pytest.LogCaptureFixture
) -> None:
    def by_index(handle: SimHandle, index: int) -> SimHandle:
        """Drivers answer InvalidArgument, not NotFound, at an empty index (holes included)."""
        try:
            return SimulatedNvml.nvmlDeviceGetMigDeviceHandleByIndex(fake, handle, index)
        except pynvml.NVMLError_NotFound:
            raise pynvml.NVMLError_InvalidArgument() from None

    fake.answer("nvmlDeviceGetMigDeviceHandleByIndex", by_index)
    provider = NvmlProvider(fake)
    with caplog.at_level(logging.INFO, logger="ds01_core.domain.gpu"):
        assert [len(g.slots) for g in provider.gpus()] == [1, 1, 1, 1, 7, 3, 2, 3]
        assert provider.process_listing().complete
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert set(provider.health().values()) == {"ok"}


def test_mig_memory_used_comes_from_the_v2_query_without_reserved_memory(fake: FakeNvml) -> None:
    fake.faults.mig_reserved_memory[5] = 300 * MIB
    slot = next(s for s in NvmlProvider(fake).slots() if s.slot_id == "5.3")
    assert slot.memory_used == 15 * 1024**3  # what its process uses, not the driver's reserve


def test_mig_memory_of_an_old_driver_falls_back_to_v1(fake: FakeNvml) -> None:
    fake.faults.mig_reserved_memory[5] = 300 * MIB
    fake.faults.old_driver = True
    provider = NvmlProvider(fake)
    for _ in range(2):
        slot = next(s for s in provider.slots() if s.slot_id == "5.3")
        assert slot.memory_used == 15 * 1024**3 + 300 * MIB
    assert fake.faults.calls["nvmlDeviceGetMemoryInfo_v2"] == 1


def test_no_mig_profile_info_is_a_warning_once_per_gpu(
    fake: FakeNvml, caplog: pytest.LogCaptureFixture
) -> None:
    fake.faults.profile_info_error = pynvml.NVMLError_NotSupported
    provider = NvmlProvider(fake)
    with caplog.at_level(logging.INFO, logger="ds01_core.domain.gpu"):
        for _ in range(3):
            provider.gpus()
    said = [r.getMessage() for r in caplog.records if "no MIG profile info" in r.getMessage()]
    assert [m.split(":")[0] for m in said] == ["GPU 4", "GPU 5", "GPU 6", "GPU 7"]
    assert all(r.levelno == logging.WARNING for r in caplog.records if "MIG profile" in r.msg)
