"""MIG layout as real drivers give it: sparse MIG indexes, several compute instances per GPU
instance, and device minor numbers that differ from NVML's index — on the simulated host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pynvml
import pytest
import yaml

from ds01_core.domain.container_facts import gpu_access, resolve_gpu_ids
from ds01_core.domain.gpu.nvml import NvmlProvider
from ds01_core.domain.gpu.simulated import (
    SimulatedProvider,
    SimulatedTopologyError,
    build_host,
    load_topology,
)
from ds01_core.domain.gpu.simulated.nvml import SimulatedNvml
from ds01_core.domain.model import GpuSlot

MIB = 1024**2
GIB = 1024**3


def a100(*gpus: dict[str, Any]) -> dict[str, Any]:
    data = yaml.safe_load(Path(load_topology().source).read_text())
    data["gpus"] = list(gpus)
    return data


def provider(data: dict[str, Any], **kwargs: Any) -> NvmlProvider:
    return NvmlProvider(SimulatedNvml(build_host(data), **kwargs))


def _inspect(host: dict[str, Any] | None = None, env: list[str] | None = None) -> dict[str, Any]:
    return {"HostConfig": host or {}, "Config": {"Env": env or []}}


#: a 7g GPU instance split into a 3-slice and a 4-slice compute instance, on GPU 0
SPLIT = {
    "mig": [
        {
            "profile": "7g.80gb",
            "gi": 0,
            "memory_used": "12GiB",
            "compute_instances": [
                {"ci": 0, "slices": 3, "processes": [{"pid": 4300001, "used_memory": "12GiB"}]},
                {"ci": 1, "slices": 4, "processes": [{"pid": 4300002}]},
            ],
        }
    ]
}


# -- MIG indexes: G:M is NVML's index, holes included --------------------------------------


def test_embedded_host_has_holes_in_its_mig_indexes() -> None:
    nvml = SimulatedNvml(load_topology())
    nvml.nvmlInit()
    gpu7 = nvml.nvmlDeviceGetHandleByIndex(7)
    names = {}
    for mig_index in range(nvml.nvmlDeviceGetMaxMigDeviceCount(gpu7)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu7, mig_index)
        except pynvml.NVMLError_NotFound:
            continue
        names[mig_index] = nvml.nvmlDeviceGetName(mig).rpartition(" MIG ")[2]
    assert names == {0: "4g.40gb", 2: "2g.20gb", 5: "1g.10gb"}


def test_slots_keep_nvmls_mig_index() -> None:
    slots = {s.slot_id: s for s in SimulatedProvider().slots()}
    assert [slots[i].mig_index for i in ("7.1", "7.5", "7.13")] == [0, 2, 5]
    assert [slots[f"4.{gi}"].mig_index for gi in range(7, 14)] == list(range(7))
    assert slots["0"].mig_index is None


def test_gpu_colon_mig_is_resolved_by_nvml_index_as_the_toolkit_does() -> None:
    slots = {s.slot_id: s for s in SimulatedProvider().slots()}
    all_slots = list(slots.values())
    found, unknown = resolve_gpu_ids(["7:2", "7:5", "7:0"], all_slots)
    assert found == [slots["7.5"].uuid, slots["7.13"].uuid, slots["7.1"].uuid]
    # a hole names no device: the toolkit would find none either, not the next one along
    found, unknown = resolve_gpu_ids(["7:1"], all_slots)
    assert (found, unknown) == ([], ["7:1"])
    access = gpu_access(_inspect({"Runtime": "nvidia"}, ["NVIDIA_VISIBLE_DEVICES=7:2"]), all_slots)
    assert access.slot_uuids == (slots["7.5"].uuid,)


def test_slots_without_a_known_mig_index_are_taken_by_position() -> None:
    def mig(gi: int) -> GpuSlot:
        return GpuSlot(f"MIG-{gi}", "mig", 0, "GPU-0", "A100", 1, 7, GIB, gpu_instance_id=gi)

    found, _ = resolve_gpu_ids(["0:1"], [mig(3), mig(9)])
    assert found == ["MIG-9"]


def test_topology_mig_indexes_are_checked() -> None:
    clash = a100(
        {"mig": [{"profile": "1g.10gb", "gi": 7}, {"profile": "1g.10gb", "gi": 8, "mig_index": 0}]}
    )
    with pytest.raises(
        SimulatedTopologyError, match=r"gpus\[0\]\.mig\[1\]\.mig_index: MIG index 0 is taken"
    ):
        build_host(clash)
    beyond = a100({"mig": [{"profile": "1g.10gb", "gi": 7, "mig_index": 7}]})
    with pytest.raises(
        SimulatedTopologyError, match=r"gpus\[0\]\.mig\[0\]\.mig_index: must be 0 to 6"
    ):
        build_host(beyond)


# -- several compute instances in one GPU instance -----------------------------------------


def test_compute_instances_weigh_their_own_slices() -> None:
    gpu = provider(a100(SPLIT)).gpus()[0]
    assert [s.slot_id for s in gpu.slots] == ["0.0", "0.0.1"]
    assert [s.compute_slices for s in gpu.slots] == [3, 4]
    assert [s.weight for s in gpu.slots] == [3 / 7, 4 / 7]
    assert sum(s.weight for s in gpu.slots) == pytest.approx(1.0)  # not 2.0: one GPU
    assert [s.profile for s in gpu.slots] == ["3c.7g.80gb", "4c.7g.80gb"]


def test_a_gpu_instances_memory_is_counted_once_across_its_compute_instances() -> None:
    sim = provider(a100(SPLIT))
    gpu = sim.gpus()[0]
    gi_memory = 80896 * MIB
    assert sum(s.memory_total for s in gpu.slots) == pytest.approx(gi_memory, abs=2)
    assert sum(s.memory_used for s in gpu.slots) == pytest.approx(12 * GIB, abs=2)
    assert [s.memory_total for s in gpu.slots] == [gi_memory * 3 // 7, gi_memory * 4 // 7]
    assert gpu.memory_used == 12 * GIB  # the whole GPU: the instance's use, once
    procs = {p.pid: p.slot_uuid for p in sim.processes()}
    assert procs == {4300001: gpu.slots[0].uuid, 4300002: gpu.slots[1].uuid}


def test_nvml_reports_the_gpu_instances_memory_on_each_compute_instance() -> None:
    nvml = SimulatedNvml(build_host(a100(SPLIT)))
    nvml.nvmlInit()
    gpu = nvml.nvmlDeviceGetHandleByIndex(0)
    first, second = (nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, i) for i in (0, 1))
    assert nvml.nvmlDeviceGetMemoryInfo(first).used == nvml.nvmlDeviceGetMemoryInfo(second).used
    assert nvml.nvmlDeviceGetAttributes(second).gpuInstanceSliceCount == 7
    assert nvml.nvmlDeviceGetAttributes(second).computeInstanceSliceCount == 4
    assert nvml.nvmlDeviceGetName(second) == "NVIDIA A100-SXM4-80GB MIG 4c.7g.80gb"


def test_gpm_samples_a_gpu_instance_once_per_round_for_all_its_compute_instances() -> None:
    split = {**SPLIT, "gpm": True}
    split["mig"] = [{**SPLIT["mig"][0], "sm_utilization": 60.0}]
    now = [0.0]
    sim = provider(a100(split), clock=lambda: now[0])
    slots = sim.slots()
    sim.mig_utilization()  # the first sample
    now[0] += 10
    second = sim.mig_utilization()
    assert [second[s.uuid] for s in slots] == [pytest.approx(60.0), pytest.approx(60.0)]


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        (
            {"compute_instances": [{"ci": 0, "slices": 4}, {"ci": 1, "slices": 4}]},
            "gpus[0].mig[0].compute_instances: take 8 slices; 7g.80gb has 7",
        ),
        (
            {"compute_instances": [{"ci": 0, "slices": 1}, {"ci": 0, "slices": 1}]},
            "gpus[0].mig[0].compute_instances[1]: gi 0 / ci 0 is listed twice",
        ),
        (
            {"processes": [{"pid": 5}], "compute_instances": [{"ci": 0, "slices": 1}]},
            "gpus[0].mig[0]: with compute_instances, give ci, uuid, mig_index and processes",
        ),
        ({"compute_instances": []}, "gpus[0].mig[0].compute_instances: lists no compute"),
        (
            {"compute_instances": [{"ci": 0, "slices": 0}]},
            "gpus[0].mig[0].compute_instances[0].slices: must be greater than 0",
        ),
    ],
)
def test_bad_compute_instances_are_refused(instance: dict[str, Any], expected: str) -> None:
    data = a100({"mig": [{"profile": "7g.80gb", "gi": 0, **instance}]})
    with pytest.raises(SimulatedTopologyError) as info:
        build_host(data)
    assert expected in str(info.value)


# -- /dev/nvidia<minor> ----------------------------------------------------------------------


def test_slots_carry_the_gpus_minor_number() -> None:
    gpus = SimulatedProvider().gpus()
    assert [g.minor_number for g in gpus] == [2, 3, 0, 1, 6, 7, 4, 5]
    assert {s.minor_number for s in gpus[4].slots} == {6}


def test_a_device_node_is_the_gpu_with_that_minor_number_not_that_index() -> None:
    slots = SimulatedProvider().slots()
    by_index = {s.gpu_index: s for s in slots if s.kind == "gpu"}
    access = gpu_access(_inspect({"Devices": [{"PathOnHost": "/dev/nvidia2"}]}), slots)
    assert access.slot_uuids == (by_index[0].uuid,)  # GPU 0's minor is 2
    migs = [s.uuid for s in slots if s.gpu_index == 6]  # minor 4: all its MIG instances
    access = gpu_access(_inspect({"Devices": [{"PathOnHost": "/dev/nvidia4"}]}), slots)
    assert list(access.slot_uuids) == migs
    some = [{"PathOnHost": f"/dev/nvidia{m}"} for m in range(7)]  # not minor 7 (GPU 5)
    assert not gpu_access(_inspect({"Devices": some}), slots).unrestricted
    every = [{"PathOnHost": f"/dev/nvidia{m}"} for m in range(8)]
    assert gpu_access(_inspect({"Devices": every}), slots).unrestricted


def test_a_gpu_whose_minor_number_is_unknown_is_taken_by_index() -> None:
    def whole(index: int, minor: int | None) -> GpuSlot:
        uuid = f"GPU-{index}"
        return GpuSlot(uuid, "gpu", index, uuid, "A100", 7, 7, GIB, minor_number=minor)

    slots = [whole(0, 1), whole(1, None)]
    access = gpu_access(_inspect({"Devices": [{"PathOnHost": "/dev/nvidia1"}]}), slots)
    assert access.slot_uuids == ("GPU-0",)  # minor 1 is GPU 0's, though GPU 1's is unknown
    access = gpu_access(_inspect({"Devices": [{"PathOnHost": "/dev/nvidia0"}]}), slots)
    assert access.slot_uuids == ()


def test_minor_numbers_in_a_topology_are_unique() -> None:
    data = a100({"minor_number": 1}, {})
    with pytest.raises(
        SimulatedTopologyError, match=r"gpus\[1\]\.minor_number: /dev/nvidia1 is also GPU 0's"
    ):
        build_host(data)
