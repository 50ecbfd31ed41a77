"""The NVML provider against a fake ``pynvml`` that behaves like the real one, errors included."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pynvml
import pytest

from ds01_core.domain.config import GpuConfig
from ds01_core.domain.gpu import GpuProviderError, NvidiaEvidence, open_provider
from ds01_core.domain.gpu.nvml import NvmlProvider
from ds01_core.domain.gpu.nvml.slots import composed_profile, profile_from_name
from ds01_core.domain.gpu.simulated import load_topology
from ds01_core.domain.gpu.simulated.values import SimHandle
from tests.helpers.fake_pynvml import FakeNvml, a30_fake

MIB = 1024**2


@pytest.fixture
def fake() -> FakeNvml:
    return FakeNvml(load_topology())


@pytest.fixture
def provider(fake: FakeNvml) -> NvmlProvider:
    return NvmlProvider(fake)


def slot(provider: NvmlProvider, slot_id: str):
    return next(s for s in provider.slots() if s.slot_id == slot_id)


# -- what is listed -------------------------------------------------------------------------------


def test_lists_gpus_with_whole_and_mig_slots(provider: NvmlProvider) -> None:
    gpus = provider.gpus()
    assert [g.index for g in gpus] == list(range(8))
    assert [g.mig_enabled for g in gpus] == [False] * 4 + [True] * 4
    assert [len(g.slots) for g in gpus] == [1, 1, 1, 1, 7, 3, 2, 3]
    whole = gpus[0].slots[0]
    assert (whole.kind, whole.uuid, whole.profile) == ("gpu", gpus[0].uuid, None)
    mig = gpus[5].slots[1]
    assert (mig.kind, mig.profile, mig.gpu_instance_id, mig.compute_instance_id) == (
        "mig",
        "2g.20gb",
        3,
        0,
    )
    assert mig.gpu_uuid == gpus[5].uuid
    assert mig.memory_total == 19968 * MIB
    assert mig.memory_used == 15 * 1024 * MIB


def test_power_and_energy_are_converted_from_milli_units(provider: NvmlProvider) -> None:
    gpu = provider.gpus()[0]
    assert gpu.power_watts == pytest.approx(386.2)
    assert gpu.energy_joules is not None and gpu.energy_joules >= 912004511


def test_description_names_the_driver_and_gpu_count(provider: NvmlProvider) -> None:
    assert provider.name == "nvml"
    assert provider.description == "NVML 550.54.15, 8 GPUs"


def test_processes_are_reported_per_leaf_device(provider: NvmlProvider) -> None:
    procs = {p.pid: p for p in provider.processes()}
    assert procs[4200002].slot_uuid == provider.gpus()[1].uuid
    assert procs[4200022].slot_uuid == slot(provider, "5.3").uuid
    assert procs[4200022].used_memory == 15 * 1024 * MIB
    leaves = {s.uuid for s in provider.slots()}
    assert {p.slot_uuid for p in procs.values()} <= leaves


def test_unknown_process_memory_is_none(fake: FakeNvml, provider: NvmlProvider) -> None:
    fake.answer(
        "nvmlDeviceGetComputeRunningProcesses",
        lambda h: [pynvml.nvmlFriendlyObject({"pid": 77, "usedGpuMemory": None})],
        gpu=2,
    )
    (proc,) = [p for p in provider.processes() if p.pid == 77]
    assert proc.used_memory is None
    assert proc.slot_uuid == provider.gpus()[2].uuid


# -- one session, cached handles ----------------------------------------------------------------


def test_one_session_and_gpu_handles_for_the_providers_life(
    fake: FakeNvml, provider: NvmlProvider
) -> None:
    for _ in range(3):
        provider.gpus()
        provider.processes()
    assert fake.calls["nvmlInit"] == 1
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == 8
    assert fake.calls["nvmlShutdown"] == 0
    # Total slices are static: probed once per GPU, not on every listing.
    assert (
        fake.calls["nvmlDeviceGetGpuInstanceProfileInfo"]
        == 8 * pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT
    )


def test_close_ends_the_session_once(fake: FakeNvml, provider: NvmlProvider) -> None:
    provider.close()
    provider.close()
    assert fake.calls["nvmlShutdown"] == 1
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlDeviceGetCount()
    with pytest.raises(GpuProviderError, match="closed"):
        provider.gpus()


# -- errors as drivers give them ----------------------------------------------------------------


def test_mig_utilisation_not_supported_becomes_none(fake: FakeNvml, provider: NvmlProvider) -> None:
    with pytest.raises(pynvml.NVMLError_NotSupported):
        fake.nvmlDeviceGetUtilizationRates(SimHandle(4, 0))
    gpus = provider.gpus()
    assert gpus[0].utilization == 97.0
    assert gpus[0].slots[0].utilization == 97.0
    assert gpus[4].utilization is None
    assert all(s.utilization is None for s in gpus[4].slots)


@pytest.mark.parametrize(
    ("function", "error", "field"),
    [
        ("nvmlDeviceGetPowerUsage", pynvml.NVMLError_NoPermission, "power_watts"),
        ("nvmlDeviceGetTotalEnergyConsumption", pynvml.NVMLError_NotSupported, "energy_joules"),
        ("nvmlDeviceGetUtilizationRates", pynvml.NVMLError_Unknown, "utilization"),
    ],
)
def test_a_metric_error_degrades_that_metric_only(
    fake: FakeNvml, provider: NvmlProvider, function: str, error: type, field: str
) -> None:
    fake.fail(function, error, gpu=1)
    if field == "utilization":  # the averaged samples too, else they stand in
        fake.fail("nvmlDeviceGetSamples", error, gpu=1)
    gpus = provider.gpus()
    assert len(gpus) == 8
    assert getattr(gpus[1], field) is None
    assert getattr(gpus[0], field) is not None
    assert gpus[1].memory_total == 81920 * MIB


def test_mig_memory_error_falls_back_to_the_profile_size(
    fake: FakeNvml, provider: NvmlProvider
) -> None:
    fake.fail("nvmlDeviceGetMemoryInfo", pynvml.NVMLError_NoPermission, mig=True)
    mig = slot(provider, "5.2")
    assert mig.memory_total == 40192 * MIB
    assert mig.memory_used == 0


def test_a_lost_gpu_is_left_out_and_logged_once(
    fake: FakeNvml, provider: NvmlProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail("*", pynvml.NVMLError_GpuIsLost, gpu=3)
    with caplog.at_level(logging.DEBUG, logger="ds01_core.domain.gpu.nvml"):
        assert [g.index for g in provider.gpus()] == [0, 1, 2, 4, 5, 6, 7]
        assert 4200004 not in {p.pid for p in provider.processes()}
        assert [s.slot_id for s in provider.slots()][:3] == ["0", "1", "2"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "GPU 3 is lost" in errors[0].getMessage()

    fake.heal()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ds01_core.domain.gpu.nvml"):
        assert [g.index for g in provider.gpus()] == list(range(8))
    assert "GPU 3 is readable again" in caplog.text


def test_a_gpu_lost_inside_mig_enumeration_is_left_out(
    fake: FakeNvml, provider: NvmlProvider
) -> None:
    fake.fail("nvmlDeviceGetMigDeviceHandleByIndex", pynvml.NVMLError_GpuIsLost, gpu=5)
    assert 5 not in [g.index for g in provider.gpus()]
    assert not any(s.gpu_index == 5 for s in provider.slots())


def test_a_gpu_lost_before_start_does_not_stop_the_provider(fake: FakeNvml) -> None:
    fake.fail("nvmlDeviceGetHandleByIndex", pynvml.NVMLError_GpuIsLost, gpu=6)
    provider = NvmlProvider(fake)
    assert [g.index for g in provider.gpus()] == [0, 1, 2, 3, 4, 5, 7]
    fake.heal()
    assert [g.index for g in provider.gpus()] == list(range(8))


def test_one_unreadable_mig_device_is_left_out(fake: FakeNvml, provider: NvmlProvider) -> None:
    def instance_id(handle: SimHandle) -> int:
        if handle == SimHandle(4, 2):
            raise pynvml.NVMLError_Unknown()
        return fake.host.gpus[4].instances[handle.mig].gpu_instance_id

    fake.answer("nvmlDeviceGetGpuInstanceId", instance_id, gpu=4)
    assert [s.slot_id for s in provider.gpus()[4].slots] == [
        "4.7",
        "4.8",
        "4.10",
        "4.11",
        "4.12",
        "4.13",
    ]


# -- weights and profiles ---------------------------------------------------------------------


def test_weights_use_the_total_slices_nvml_reports_not_seven() -> None:
    provider = NvmlProvider(a30_fake())
    gpus = provider.gpus()
    assert [g.total_slices for g in gpus] == [4, 4]
    assert [(s.profile, s.weight) for s in gpus[1].slots] == [
        ("2g.12gb", 0.5),
        ("1g.6gb", 0.25),
        ("1g.6gb", 0.25),
    ]
    assert gpus[0].slots[0].weight == 1.0


def test_without_profile_info_mig_weights_use_the_slices_in_use(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = a30_fake()
    fake.fail("nvmlDeviceGetGpuInstanceProfileInfo", pynvml.NVMLError_NoPermission)
    with caplog.at_level(logging.WARNING, logger="ds01_core.domain.gpu.nvml"):
        gpus = NvmlProvider(fake).gpus()
    assert gpus[0].total_slices == 1  # no MIG information: a whole GPU is one slice
    assert gpus[1].total_slices == 4  # 2 + 1 + 1 in use
    assert "no MIG profile info" in caplog.text


def test_profile_composed_when_the_device_name_has_none(fake: FakeNvml) -> None:
    fake.answer("nvmlDeviceGetName", lambda h: "NVIDIA A100-SXM4-80GB", mig=True)
    profiles = [s.profile for s in NvmlProvider(fake).gpus()[5].slots]
    assert profiles == ["3g.39gb", "2g.20gb", "2g.20gb"]


def test_profile_helpers() -> None:
    assert profile_from_name("NVIDIA A100-SXM4-80GB MIG 2g.20gb") == "2g.20gb"
    assert profile_from_name("NVIDIA H100 80GB HBM3 MIG 1c.3g.40gb") == "1c.3g.40gb"
    assert profile_from_name("NVIDIA A100-SXM4-80GB") is None
    assert composed_profile(1, 9728) == "1g.10gb"
    assert composed_profile(4, 24192) == "4g.24gb"


def test_slices_parsed_from_the_profile_when_attributes_fail(fake: FakeNvml) -> None:
    fake.fail("nvmlDeviceGetAttributes", pynvml.NVMLError_NotSupported)
    mig = next(s for s in NvmlProvider(fake).slots() if s.slot_id == "7.1")
    assert (mig.profile, mig.compute_slices, mig.weight) == ("4g.40gb", 4, 4 / 7)


# -- MIG UUID forms ---------------------------------------------------------------------------


def test_mig_slots_answer_to_both_uuid_forms(provider: NvmlProvider) -> None:
    gpu = provider.gpus()[6]
    mig = gpu.slots[1]
    assert mig.uuid.startswith("MIG-") and not mig.uuid.startswith("MIG-GPU-")
    assert mig.legacy_uuid == f"MIG-{gpu.uuid}/2/0"
    assert mig.matches(mig.uuid) and mig.matches(mig.legacy_uuid) and mig.matches("6.2")


def test_old_drivers_legacy_mig_uuids_are_kept(fake: FakeNvml) -> None:
    def legacy(h: SimHandle) -> str:
        gpu = fake.host.gpus[h.gpu]
        inst = gpu.instances[h.mig]
        return f"MIG-{gpu.uuid}/{inst.gpu_instance_id}/{inst.compute_instance_id}"

    fake.answer("nvmlDeviceGetUUID", legacy, mig=True)
    provider = NvmlProvider(fake)
    mig = next(s for s in provider.slots() if s.slot_id == "5.3")
    assert mig.uuid == mig.legacy_uuid == f"MIG-{fake.host.gpus[5].uuid}/3/0"
    assert {p.slot_uuid for p in provider.processes() if p.pid == 4200022} == {mig.uuid}


# -- loading ----------------------------------------------------------------------------------


def test_driver_not_loaded_is_a_provider_error(fake: FakeNvml) -> None:
    fake.fail("nvmlInit", pynvml.NVMLError_DriverNotLoaded)
    with pytest.raises(GpuProviderError, match="NVML did not load: Driver Not Loaded"):
        NvmlProvider(fake)


def test_auto_falls_back_to_the_simulated_host_and_says_why(
    fake: FakeNvml, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On a machine without any NVIDIA driver or device (an empty root here)."""
    fake.fail("nvmlInit", pynvml.NVMLError_DriverNotLoaded)
    monkeypatch.setitem(sys.modules, "pynvml", fake.as_module())
    no_driver = NvidiaEvidence(root=str(tmp_path), load_library=lambda: False)
    provider = open_provider(GpuConfig(backend="auto"), no_driver)
    assert provider.name == "simulated"
    assert "auto: NVML did not load: Driver Not Loaded" in provider.description
    assert len(provider.gpus()) == 8


def test_auto_picks_nvml_when_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", a30_fake().as_module())
    provider = open_provider(GpuConfig(backend="auto"))
    assert (provider.name, provider.description) == ("nvml", "NVML 535.161.08, 2 GPUs")


def test_backend_nvml_without_a_driver_is_an_error(
    fake: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.fail("nvmlInit", pynvml.NVMLError_LibraryNotFound)
    monkeypatch.setitem(sys.modules, "pynvml", fake.as_module())
    with pytest.raises(GpuProviderError) as info:
        open_provider(GpuConfig(backend="nvml"))
    message = str(info.value)
    assert "NVML did not load: NVML Shared Library Not Found" in message
    assert "gpu.backend is 'nvml'" in message
