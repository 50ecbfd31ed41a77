"""The simulated host: its embedded DGX-A100 topology, weights, UUIDs, processes and file checks."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pynvml
import pytest
import yaml

from ds01_core.domain.config import GpuConfig, SimulatedGpuConfig
from ds01_core.domain.gpu import open_provider
from ds01_core.domain.gpu.nvml import NvmlProvider
from ds01_core.domain.gpu.simulated import (
    SimulatedProvider,
    SimulatedTopologyError,
    build_host,
    load_topology,
)
from ds01_core.domain.gpu.simulated.nvml import SimulatedNvml
from ds01_core.domain.gpu.simulated.values import SimHandle
from tests.helpers.fake_pynvml import a30_topology

MIB = 1024**2
GIB = 1024**3
UUID_TAIL = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture(scope="module")
def sim() -> SimulatedProvider:
    return SimulatedProvider()


# -- topology ---------------------------------------------------------------------------------


def test_embedded_host_is_eight_a100s_half_in_mig_mode(sim: SimulatedProvider) -> None:
    gpus = sim.gpus()
    assert len(gpus) == 8
    assert {g.model for g in gpus} == {"NVIDIA A100-SXM4-80GB"}
    assert {g.memory_total for g in gpus} == {81920 * MIB}
    assert {g.total_slices for g in gpus} == {7}
    assert [g.mig_enabled for g in gpus] == [False] * 4 + [True] * 4


def test_slot_ids_and_mixed_profiles(sim: SimulatedProvider) -> None:
    assert [s.slot_id for s in sim.slots()] == [
        "0", "1", "2", "3",
        "4.7", "4.8", "4.9", "4.10", "4.11", "4.12", "4.13",
        "5.2", "5.3", "5.4",
        "6.1", "6.2",
        "7.1", "7.5", "7.13",
    ]  # fmt: skip
    by_gpu = {g.index: [s.profile for s in g.slots] for g in sim.gpus()}
    assert by_gpu[0] == [None]
    assert by_gpu[4] == ["1g.10gb"] * 7
    assert by_gpu[5] == ["3g.40gb", "2g.20gb", "2g.20gb"]
    assert by_gpu[6] == ["3g.40gb", "3g.40gb"]
    assert by_gpu[7] == ["4g.40gb", "2g.20gb", "1g.10gb"]


def test_weights_are_compute_slices_over_seven(sim: SimulatedProvider) -> None:
    weights = {s.slot_id: s.weight for s in sim.slots()}
    assert weights["0"] == 1.0
    assert weights["5.3"] == 2 / 7
    assert weights["5.2"] == 3 / 7
    assert weights["4.7"] == 1 / 7
    assert weights["7.1"] == 4 / 7
    per_gpu = {g.index: sum(s.weight for s in g.slots) for g in sim.gpus()}
    assert per_gpu[4] == pytest.approx(1.0)
    assert per_gpu[6] == pytest.approx(6 / 7)  # two 3g.40gb leave one compute slice unused


def test_mig_slot_memory_comes_from_its_profile(sim: SimulatedProvider) -> None:
    slots = {s.slot_id: s for s in sim.slots()}
    assert slots["4.8"].memory_total == 9728 * MIB
    assert slots["5.2"].memory_total == 40192 * MIB
    assert slots["5.2"].memory_used == 30 * GIB
    assert slots["0"].memory_used == 71 * GIB
    assert sim.gpus()[5].memory_used == 45 * GIB  # the instances' use, summed


def test_utilisation_only_on_whole_gpus(sim: SimulatedProvider) -> None:
    gpus = sim.gpus()
    assert [g.utilization for g in gpus[:4]] == [97.0, 43.0, 0.0, 12.0]
    assert all(g.utilization is None for g in gpus[4:])
    assert all(s.utilization is None for g in gpus[4:] for s in g.slots)
    assert all(g.power_watts is not None and g.power_watts > 0 for g in gpus)


def test_uuids_have_both_real_forms_and_are_stable(sim: SimulatedProvider) -> None:
    gpus = sim.gpus()
    for gpu in gpus:
        assert re.fullmatch(f"GPU-{UUID_TAIL}", gpu.uuid)
        for slot in gpu.slots:
            if slot.kind == "mig":
                assert re.fullmatch(f"MIG-{UUID_TAIL}", slot.uuid)
                assert slot.legacy_uuid == (
                    f"MIG-{gpu.uuid}/{slot.gpu_instance_id}/{slot.compute_instance_id}"
                )
    uuids = [g.uuid for g in gpus] + [s.uuid for s in sim.slots() if s.kind == "mig"]
    assert len(set(uuids)) == len(uuids) == 8 + 15
    assert [g.uuid for g in SimulatedProvider().gpus()] == [g.uuid for g in gpus]


def test_topology_processes_are_on_their_leaves(sim: SimulatedProvider) -> None:
    slots = {s.slot_id: s.uuid for s in sim.slots()}
    procs = {p.pid: p for p in sim.processes()}
    assert procs[4200001].slot_uuid == slots["0"]
    assert procs[4200012].slot_uuid == slots["4.9"]
    assert procs[4200042].slot_uuid == slots["7.13"]
    assert procs[4200031].used_memory == 35 * GIB
    assert len(procs) == 12


def test_energy_grows_at_the_power_draw() -> None:
    now = [100.0]
    sim = SimulatedProvider(clock=lambda: now[0])
    before = sim.gpus()[2].energy_joules
    now[0] += 10
    after = sim.gpus()[2].energy_joules
    assert before == pytest.approx(120877302)
    assert after - before == pytest.approx(613.0)  # 61.3 W for 10 s


def test_description_names_the_topology(sim: SimulatedProvider) -> None:
    assert sim.name == "simulated"
    assert sim.description.startswith("simulated host (DGX-A100 topology from ")
    assert sim.description.endswith("dgx_a100.yaml)")


def test_open_provider_simulated_uses_the_configured_files(tmp_path: Path) -> None:
    topology = tmp_path / "a30.yaml"
    topology.write_text(yaml.safe_dump(a30_topology()))
    config = GpuConfig(backend="simulated", simulated=SimulatedGpuConfig(topology=str(topology)))
    provider = open_provider(config)
    assert provider.name == "simulated"
    assert str(topology) in provider.description
    assert [g.model for g in provider.gpus()] == ["NVIDIA A30", "NVIDIA A30"]


# -- the NVML surface -------------------------------------------------------------------------


def test_simulated_nvml_answers_like_nvml() -> None:
    nvml = SimulatedNvml(load_topology())
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlInit()
    gpu4 = nvml.nvmlDeviceGetHandleByIndex(4)
    assert nvml.nvmlDeviceGetMigMode(gpu4) == [1, 1]
    assert nvml.nvmlDeviceGetMigMode(nvml.nvmlDeviceGetHandleByIndex(0)) == [0, 0]
    assert nvml.nvmlDeviceGetMaxMigDeviceCount(gpu4) == 7
    mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu4, 0)
    assert nvml.nvmlDeviceGetName(mig) == "NVIDIA A100-SXM4-80GB MIG 1g.10gb"
    assert nvml.nvmlDeviceGetAttributes(mig).gpuInstanceSliceCount == 1
    assert nvml.nvmlDeviceGetGpuInstanceProfileInfo(gpu4, 1).sliceCount == 2
    info = nvml.nvmlDeviceGetComputeRunningProcesses(gpu4)
    assert [(p.pid, p.gpuInstanceId) for p in info] == [(4200011, 7), (4200012, 9), (4200013, 12)]

    gpu5 = nvml.nvmlDeviceGetHandleByIndex(5)
    errors = [
        (pynvml.NVMLError_NotFound, nvml.nvmlDeviceGetMigDeviceHandleByIndex, gpu5, 3),
        (pynvml.NVMLError_InvalidArgument, nvml.nvmlDeviceGetMigDeviceHandleByIndex, gpu5, 7),
        (pynvml.NVMLError_NotSupported, nvml.nvmlDeviceGetGpuInstanceProfileInfo, gpu5, 5),
        (pynvml.NVMLError_InvalidArgument, nvml.nvmlDeviceGetGpuInstanceProfileInfo, gpu5, 99),
        (pynvml.NVMLError_NotSupported, nvml.nvmlDeviceGetUtilizationRates, mig),
        (pynvml.NVMLError_NotSupported, nvml.nvmlDeviceGetPowerUsage, mig),
        (pynvml.NVMLError_NotSupported, nvml.nvmlDeviceGetAttributes, gpu5),
        (pynvml.NVMLError_InvalidArgument, nvml.nvmlDeviceGetGpuInstanceId, gpu5),
        (pynvml.NVMLError_InvalidArgument, nvml.nvmlDeviceGetHandleByIndex, 8),
        (pynvml.NVMLError_InvalidArgument, nvml.nvmlDeviceGetUUID, SimHandle(0, 0)),
    ]
    for error, function, *args in errors:
        with pytest.raises(error):
            function(*args)


# -- the processes file -----------------------------------------------------------------------


def test_processes_file_is_reread_on_every_call(tmp_path: Path) -> None:
    path = tmp_path / "procs.yaml"
    sim = SimulatedProvider(processes_file=path)
    slots = {s.slot_id: s for s in sim.slots()}
    assert os.getpid() not in {p.pid for p in sim.processes()}  # no file yet: none added

    path.write_text(
        yaml.safe_dump(
            [
                {"pid": os.getpid(), "slot": "5.4", "used_memory": "4GiB"},
                {"pid": 1, "slot": slots["6.1"].legacy_uuid},
                {"pid": 2, "slot": slots["2"].uuid, "used_memory": 1024},
                {"pid": 3, "slot": 3},
            ]
        )
    )
    found = {p.pid: p for p in sim.processes()}
    assert found[os.getpid()].slot_uuid == slots["5.4"].uuid
    assert found[os.getpid()].used_memory == 4 * GIB
    assert (found[1].slot_uuid, found[1].used_memory) == (slots["6.1"].uuid, None)
    assert (found[2].slot_uuid, found[2].used_memory) == (slots["2"].uuid, 1024)
    assert found[3].slot_uuid == slots["3"].uuid
    assert next(s for s in sim.slots() if s.slot_id == "5.4").memory_used == 4 * GIB

    path.write_text("[]\n")
    assert os.getpid() not in {p.pid for p in sim.processes()}


def test_processes_file_in_json(tmp_path: Path) -> None:
    path = tmp_path / "procs.json"
    path.write_text(json.dumps([{"pid": 4321, "slot": "7.5", "used_memory": 2048}]))
    sim = SimulatedProvider(processes_file=path)
    slot = next(s for s in sim.slots() if s.slot_id == "7.5")
    assert [(p.pid, p.slot_uuid) for p in sim.processes() if p.pid == 4321] == [(4321, slot.uuid)]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{pid: 5, slot: "9.9"}]', "[0].slot: no slot '9.9' on the simulated host"),
        ("[{pid: -5, slot: '0'}]", "[0].pid: must be positive"),
        ("[{pid: 5, slot: '0', owner: bob}]", "[0].owner: unknown key"),
        ("{pid: 5}", "expected a list of {pid, slot, used_memory}"),
        ("[{pid: 5, slot: '0'", "not valid YAML at line"),
    ],
)
def test_bad_processes_file_is_refused_with_its_path(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "procs.yaml"
    path.write_text(content)
    sim = SimulatedProvider(processes_file=path)
    with pytest.raises(SimulatedTopologyError) as info:
        sim.processes()
    assert str(path) in str(info.value)
    assert expected in str(info.value)


# -- bad topology files -----------------------------------------------------------------------


def a100(*gpus: dict) -> dict:
    data = yaml.safe_load((Path(load_topology().source)).read_text())
    data["gpus"] = list(gpus)
    return data


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            a100({"mig": [{"profile": "9g.90gb", "gi": 1}]}),
            "gpus[0].mig[0].profile: unknown profile '9g.90gb'",
        ),
        (
            a100({"mig": [{"profile": "4g.40gb", "gi": 1}, {"profile": "4g.40gb", "gi": 2}]}),
            "gpus[0].mig: instances take 8 slices; NVIDIA A100-SXM4-80GB has 7",
        ),
        (
            a100({"mig": [{"profile": "1g.10gb", "gi": 7}, {"profile": "1g.10gb", "gi": 7}]}),
            "gpus[0].mig[1]: gi 7 / ci 0 is listed twice",
        ),
        (a100({"model": "Tesla K80"}), "gpus[0].model: unknown model 'Tesla K80'"),
        (a100({"memory_used": "90GiB"}), "gpus[0].memory_used: exceeds the memory"),
        (a100({"utilization": 140}), "gpus[0].utilization: must be 0 to 100, got 140"),
        (a100({"utilisation": 40}), "gpus[0].utilisation: unknown key"),
        (a100({"memory_used": "lots"}), "gpus[0].memory_used: expected a size"),
        (a100({"uuid": "GPU-1"}, {"uuid": "GPU-1"}), "gpus[1].uuid: GPU-1 is used twice"),
        (a100({"uuid": "0000-1111"}), "gpus[0].uuid: expected a UUID like GPU-"),
        (a100(), "gpus: lists no GPU"),
        (
            a100({"utilization": 5, "mig": [{"profile": "1g.10gb", "gi": 7}]}),
            "gpus[0]: a GPU in MIG mode takes processes and memory_used per instance",
        ),
        ({"gpus": [{}], "models": {}}, "name: required"),
    ],
)
def test_bad_topology_is_refused_with_every_problem_located(data: dict, expected: str) -> None:
    with pytest.raises(SimulatedTopologyError) as info:
        build_host(data, source="/etc/ds01/host.yaml")
    message = str(info.value)
    assert message.startswith("/etc/ds01/host.yaml: ")
    assert expected in message


def test_all_problems_are_listed_at_once() -> None:
    data = a100({"utilization": 140}, {"model": "Tesla K80"})
    with pytest.raises(SimulatedTopologyError) as info:
        build_host(data, source="x.yaml")
    assert [p.path for p in info.value.problems] == ["gpus[0].utilization", "gpus[1].model"]


def test_missing_or_broken_topology_file(tmp_path: Path) -> None:
    with pytest.raises(SimulatedTopologyError, match=r"nope\.yaml: .*file not found"):
        SimulatedProvider(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("gpus: [\n")
    with pytest.raises(SimulatedTopologyError, match=r"broken\.yaml: .*not valid YAML at line"):
        load_topology(broken)


def test_a_gpu_without_mig_profiles_is_one_whole_slice() -> None:
    data = {
        "name": "old",
        "models": {"Tesla V100-SXM2-32GB": {"memory": "32GiB"}},
        "gpus": [{"model": "Tesla V100-SXM2-32GB", "utilization": 10}],
    }
    (gpu,) = NvmlProvider(SimulatedNvml(build_host(data))).gpus()
    assert (gpu.mig_enabled, gpu.total_slices, gpu.slots[0].weight) == (False, 1, 1.0)
    data["gpus"] = [{"model": "Tesla V100-SXM2-32GB", "mig": []}]
    with pytest.raises(SimulatedTopologyError, match="lists no MIG profiles"):
        build_host(data)
