"""MIG utilisation through NVML GPM, against the simulated host (same API as pynvml)."""

from __future__ import annotations

import pynvml
import pytest
import yaml

from ds01_core.domain.gpu.nvml import NvmlProvider
from ds01_core.domain.gpu.simulated import SimulatedProvider, load_topology
from tests.helpers.fake_pynvml import FakeNvml


def host(tmp_path, gpm: bool):
    topology = tmp_path / "h100.yaml"
    topology.write_text(
        yaml.safe_dump(
            {
                "name": "h100-host",
                "default_model": "NVIDIA H100 80GB HBM3",
                "models": {
                    "NVIDIA H100 80GB HBM3": {
                        "memory": "81559MiB",
                        "profiles": {
                            "1g.10gb": {"id": 0, "slices": 1, "memory": "9856MiB"},
                            "3g.40gb": {"id": 2, "slices": 3, "memory": "40192MiB"},
                            "7g.80gb": {"id": 4, "slices": 7, "memory": "80896MiB"},
                        },
                    }
                },
                "gpus": [
                    {
                        "gpm": gpm,
                        "mig": [
                            {"profile": "3g.40gb", "gi": 1, "sm_utilization": 42.0},
                            {"profile": "1g.10gb", "gi": 9, "sm_utilization": 0.0},
                        ],
                    }
                ],
            }
        )
    )
    return topology


def test_gpm_reports_mig_sm_utilization_between_two_samples(tmp_path):
    clock = iter([float(t) for t in range(0, 1000, 10)])
    provider = SimulatedProvider(str(host(tmp_path, gpm=True)), clock=lambda: next(clock))
    slots = {s.gpu_instance_id: s for s in provider.slots()}
    assert all(s.utilization is None for s in slots.values())  # NVML gives none on MIG
    first = provider.mig_utilization()
    assert first == {slots[1].uuid: None, slots[9].uuid: None}  # one sample is no rate yet
    second = provider.mig_utilization()
    assert abs(second[slots[1].uuid] - 42.0) < 1e-9
    assert second[slots[9].uuid] == 0.0


def test_without_gpm_every_mig_slot_is_unknown(tmp_path):
    provider = SimulatedProvider(str(host(tmp_path, gpm=False)))
    provider.mig_utilization()
    assert set(provider.mig_utilization().values()) == {None}


def test_the_lifecycle_prefers_gpm_over_process_presence(tmp_path, tmp_config):
    from ds01_core.cycle.activity import gpu_active
    from ds01_core.cycle.idle import gpu_view
    from ds01_core.domain.model import GpuProcess
    from ds01_core.framework.runtime import load_runtime

    config = tmp_config({"gpu": {"simulated": {"topology": str(host(tmp_path, gpm=True))}}})
    runtime = load_runtime(str(config))
    idle_slot = next(s for s in runtime.gpu.slots() if s.gpu_instance_id == 9)
    gpu_view(runtime, [])  # the first GPM sample
    view = gpu_view(runtime, [])
    assert view.slots[idle_slot.uuid].utilization == 0.0
    # a process sits on the slot holding memory, but GPM says the SMs do nothing: idle
    sitting = [GpuProcess(pid=1234, slot_uuid=idle_slot.uuid, used_memory=1 << 30)]
    assert gpu_active([idle_slot.uuid], view.slots, sitting, frozenset({1234}), 5) is False


# -- every GPM sample is freed, on every path -----------------------------------------------------


def test_a_sample_whose_read_fails_is_freed(tmp_path):
    provider = SimulatedProvider(str(host(tmp_path, gpm=True)))
    faults = provider.nvml.faults
    faults.gpm_sample_error = pynvml.NVMLError_Unknown
    for _ in range(3):
        assert set(provider.mig_utilization().values()) == {None}
    assert faults.calls["nvmlGpmMigSampleGet"] == 6
    assert faults.gpm_samples == {}  # none leaked


def test_close_frees_the_samples_held(tmp_path):
    provider = SimulatedProvider(str(host(tmp_path, gpm=True)))
    provider.mig_utilization()
    provider.mig_utilization()
    faults = provider.nvml.faults
    assert len(faults.gpm_samples) == 2  # the latest sample of each GPU instance
    provider.close()
    assert faults.gpm_samples == {}


def test_a_failing_free_is_logged_not_raised(tmp_path):
    clock = iter([float(t) for t in range(0, 1000, 10)])
    fake = FakeNvml(load_topology(str(host(tmp_path, gpm=True))), clock=lambda: next(clock))
    provider = NvmlProvider(fake)
    provider.mig_utilization()
    fake.fail("nvmlGpmSampleFree", pynvml.NVMLError_Unknown)
    second = provider.mig_utilization()  # frees the first samples: both fail
    assert sorted(v for v in second.values() if v is not None) == [0.0, pytest.approx(42.0)]
    fake.heal()
    provider.close()
