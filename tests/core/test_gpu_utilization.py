"""Whole-GPU utilisation is the mean of the driver's samples since the last cycle, not one
instantaneous reading; the instantaneous reading stands in where there are no samples.

The simulated host's ``nvmlDeviceGetSamples`` (:mod:`ds01_core.domain.gpu.simulated.samples`)
keeps recorded samples per GPU; GPU 0 reads 97 % right now.
"""

from __future__ import annotations

import pytest

from ds01_core.domain.gpu.nvml import NvmlProvider
from ds01_core.domain.gpu.simulated import load_topology
from tests.helpers.fake_pynvml import FakeNvml


@pytest.fixture
def fake() -> FakeNvml:
    return FakeNvml(load_topology())


def util(provider: NvmlProvider, index: int = 0) -> float | None:
    return provider.gpus()[index].utilization


def test_utilisation_is_the_mean_of_the_samples_since_the_last_cycle(fake: FakeNvml) -> None:
    provider = NvmlProvider(fake)
    fake.samples.record(0, 1_000, 10)
    fake.samples.record(0, 2_000, 90)
    assert util(provider) == pytest.approx(50.0)  # not the instantaneous 97
    fake.samples.record(0, 3_000, 30)
    assert util(provider) == pytest.approx(30.0)  # only the sample since the last cycle
    assert provider.gpus()[0].slots[0].utilization is not None


def test_no_new_sample_falls_back_to_the_instantaneous_reading(fake: FakeNvml) -> None:
    provider = NvmlProvider(fake)
    fake.samples.record(0, 1_000, 10)
    assert util(provider) == pytest.approx(10.0)
    assert util(provider) == pytest.approx(97.0)  # NotFound: nothing newer


def test_unsupported_samples_fall_back_and_are_not_asked_again(fake: FakeNvml) -> None:
    fake.samples.unsupported = True
    provider = NvmlProvider(fake)
    for _ in range(3):
        assert util(provider) == pytest.approx(97.0)
    assert fake.samples.calls == 4  # once per whole GPU (GPUs 0-3), then never again


def test_gpus_in_mig_mode_give_no_utilisation_and_are_not_sampled(fake: FakeNvml) -> None:
    provider = NvmlProvider(fake)
    fake.samples.record(4, 1_000, 50)
    assert util(provider, 4) is None
    assert fake.samples.calls == 4


def test_by_default_the_simulated_host_samples_the_current_utilisation(fake: FakeNvml) -> None:
    provider = NvmlProvider(fake)
    assert util(provider) == pytest.approx(97.0)
    assert util(provider) == pytest.approx(97.0)
    assert fake.samples.calls == 8
