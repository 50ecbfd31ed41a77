"""Each GPU's sensors and error counters through the provider: every field, what a GPU does not
support (asked once), a lost GPU (never an exception), XID events (once each), old drivers.

Read through the ordinary NVML provider over the simulated host, with faults injected in-process
(``nvml.faults.health``) and driver errors through ``tests/helpers/fake_pynvml.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pynvml
import pytest

from ds01_core.domain.gpu.health import THROTTLE_REASONS, GpuTelemetry
from ds01_core.domain.gpu.nvml import NvmlProvider
from ds01_core.domain.gpu.nvml.telemetry import throttle_names
from ds01_core.domain.gpu.simulated import build_host, load_topology
from ds01_core.domain.gpu.simulated.health_faults import HealthFault
from tests.helpers.fake_pynvml import FakeNvml, a30_topology


@pytest.fixture
def fake() -> FakeNvml:
    return FakeNvml(load_topology())


@pytest.fixture
def provider(fake: FakeNvml) -> Any:
    provider = NvmlProvider(fake, name="simulated")
    yield provider
    provider.close()


def by_index(readings: list[GpuTelemetry]) -> dict[int, GpuTelemetry]:
    return {t.index: t for t in readings}


def v100_topology() -> dict[str, Any]:
    """Two V100s: pages are retired, rows are not remapped (before Ampere)."""
    return {
        "name": "V100-box",
        "models": {"Tesla V100-SXM2-32GB": {"memory": "32GiB"}},
        "default_model": "Tesla V100-SXM2-32GB",
        "gpus": [{"power_watts": 250.5, "energy_joules": 1000}, {}],
    }


# -- every field, from the simulated host ---------------------------------------------------


def test_every_field_of_a_healthy_a100_is_read(provider: NvmlProvider) -> None:
    readings = provider.telemetry()
    gpus = provider.gpus()
    assert [t.index for t in readings] == list(range(8))  # whole GPUs, MIG ones too, no MIG device
    assert [t.uuid for t in readings] == [g.uuid for g in gpus]
    first = readings[0]
    assert first == GpuTelemetry(
        index=0,
        uuid=gpus[0].uuid,
        temperature_c=40.0,
        slowdown_temperature_c=90.0,
        shutdown_temperature_c=95.0,
        power_watts=386.2,
        power_limit_watts=400.0,
        energy_joules=first.energy_joules,  # grows with time: checked below
        sm_clock_hz=1410e6,
        memory_clock_hz=1593e6,
        throttle_reasons=(),
        ecc_volatile_corrected=0,
        ecc_volatile_uncorrected=0,
        ecc_aggregate_corrected=0,
        ecc_aggregate_uncorrected=0,
        retired_pages_single_bit=None,  # Ampere remaps rows: no page retirement
        retired_pages_double_bit=None,
        retired_pages_pending=None,
        remapped_rows_correctable=0,
        remapped_rows_uncorrectable=0,
        remapped_rows_pending=False,
        remapped_rows_failed=False,
        xid_errors=0,
        last_xid=None,
        last_xid_at=None,
        fell_off_bus=False,
    )
    assert first.energy_joules is not None and 912004511 <= first.energy_joules < 912004511 + 400
    mig_gpu = readings[5]  # in MIG mode: still read as a whole GPU
    assert (mig_gpu.temperature_c, mig_gpu.power_limit_watts) == (40.0, 400.0)


def test_a_gpu_before_ampere_retires_pages_and_remaps_no_rows() -> None:
    fake = FakeNvml(build_host(v100_topology(), source="v100"))
    fake.faults.health[1] = HealthFault(ecc_uncorrected=2, pending_retirement=True)
    with NvmlProvider(fake) as provider:
        first, second = provider.telemetry()
    assert (first.power_watts, first.power_limit_watts) == (250.5, 300.0)
    assert (first.sm_clock_hz, first.memory_clock_hz) == (1530e6, 877e6)
    assert (first.retired_pages_single_bit, first.retired_pages_double_bit) == (0, 0)
    assert first.retired_pages_pending is False
    assert (second.retired_pages_double_bit, second.retired_pages_pending) == (2, True)
    for reading in (first, second):
        assert reading.remapped_rows_correctable is None
        assert reading.remapped_rows_uncorrectable is None
        assert reading.remapped_rows_pending is None
        assert reading.remapped_rows_failed is None
    assert second.power_watts is None  # the topology gives it none: NotSupported
    assert second.energy_joules is None


# -- each fault -------------------------------------------------------------------------------


def test_each_fault_is_visible_in_the_telemetry(fake: FakeNvml, provider: NvmlProvider) -> None:
    health = fake.faults.health
    health[0] = HealthFault(temperature=93, throttle=["hw_thermal", "sw_thermal"])
    health[1] = HealthFault(ecc_corrected=12, ecc_uncorrected=2)
    health[2] = HealthFault(xid=[79, 48])
    health[3] = HealthFault(fell_off_bus=True)
    health[4] = HealthFault(remap_failure=True, pending_retirement=True)
    got = by_index(provider.telemetry())
    assert got[0].temperature_c == 93.0
    assert got[0].throttle_reasons == ("sw_thermal", "hw_thermal")  # NVML's bit order
    assert got[0].sm_clock_hz == 705e6  # thermally slowed: half the clock
    assert (got[1].ecc_volatile_corrected, got[1].ecc_volatile_uncorrected) == (12, 2)
    assert (got[1].ecc_aggregate_corrected, got[1].ecc_aggregate_uncorrected) == (12, 2)
    assert got[1].remapped_rows_uncorrectable == 2
    assert (got[2].xid_errors, got[2].last_xid) == (2, 48)
    assert got[3].fell_off_bus and got[3].temperature_c is None and got[3].power_watts is None
    assert (got[4].remapped_rows_failed, got[4].remapped_rows_pending) == (True, True)
    assert got[5].temperature_c == 40.0 and got[5].ecc_volatile_uncorrected == 0  # untouched
    health.clear()  # faults that are states clear; counters that only grow stay
    got = by_index(provider.telemetry())
    assert got[0].temperature_c == 40.0 and got[0].throttle_reasons == ()
    assert not got[3].fell_off_bus and got[3].temperature_c == 40.0
    assert got[1].ecc_volatile_uncorrected == 2  # until a driver reload
    assert (got[2].xid_errors, got[2].last_xid) == (2, 48)  # a counter since the provider opened


def test_ecc_counters_only_grow_until_a_driver_reload(fake: FakeNvml) -> None:
    with NvmlProvider(fake) as provider:

        def counts() -> tuple[int | None, int | None]:
            got = provider.telemetry()[1]
            return got.ecc_volatile_uncorrected, got.ecc_aggregate_uncorrected

        fake.faults.health[1] = HealthFault(ecc_uncorrected=2)
        assert counts() == (2, 2)
        fake.faults.health[1] = HealthFault(ecc_uncorrected=5)  # three more
        assert counts() == (5, 5)
        del fake.faults.health[1]  # the fault removed: the count stays
        assert counts() == (5, 5)
        fake.faults.health[1] = HealthFault(ecc_uncorrected=0)  # a driver reload
        assert counts() == (0, 5)
        fake.faults.health[1] = HealthFault(ecc_uncorrected=1)
        assert counts() == (1, 6)


def test_throttle_bits_map_to_the_shared_reason_names() -> None:
    assert throttle_names(0) == ()
    assert throttle_names(pynvml.nvmlClocksEventReasonGpuIdle) == ("gpu_idle",)
    assert throttle_names(pynvml.nvmlClocksEventReasonSwPowerCap) == ("sw_power_cap",)
    assert throttle_names(pynvml.nvmlClocksEventReasonHwThermalSlowdown) == ("hw_thermal",)
    assert throttle_names(pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown) == ("hw_power_brake",)
    assert throttle_names(pynvml.nvmlClocksEventReasonDisplayClockSetting) == ("display_clocks",)
    assert throttle_names(pynvml.nvmlClocksEventReasonAll) == THROTTLE_REASONS
    # bits ds01 has no name for (board limit, reliability) are left out
    assert throttle_names(pynvml.nvmlClocksThrottleReasonBoardLimit | 0x400) == ()


# -- what a GPU does not support, and failures --------------------------------------------------


def test_a_reading_the_gpu_does_not_support_is_asked_once(
    fake: FakeNvml, provider: NvmlProvider
) -> None:
    fake.fail("nvmlDeviceGetTemperature", pynvml.NVMLError_NotSupported, gpu=2)
    for _ in range(3):
        readings = provider.telemetry()
        assert readings[2].temperature_c is None and readings[2].power_watts == 61.3
        assert readings[1].temperature_c == 40.0
    assert fake.calls["nvmlDeviceGetTemperature"] == 8 + 7 + 7  # GPU 2 only in the first round
    # A100: retired pages are not supported (2 causes + the pending status per GPU), asked once;
    # remapped rows are, asked every time
    assert fake.calls["nvmlDeviceGetRetiredPages"] == 16
    assert fake.calls["nvmlDeviceGetRetiredPagesPendingStatus"] == 8
    assert fake.calls["nvmlDeviceGetRemappedRows"] == 24


def test_another_error_is_none_for_that_round_and_asked_again(
    fake: FakeNvml, provider: NvmlProvider
) -> None:
    fake.fail("nvmlDeviceGetTotalEccErrors", pynvml.NVMLError_Unknown, gpu=1)
    fake.fail("nvmlDeviceGetPowerUsage", pynvml.NVMLError_NoPermission)
    got = provider.telemetry()[1]
    assert got.ecc_volatile_uncorrected is None and got.ecc_aggregate_corrected is None
    assert got.power_watts is None
    assert got.temperature_c == 40.0  # the rest of the GPU is read
    fake.heal()
    got = provider.telemetry()[1]
    assert (got.ecc_volatile_uncorrected, got.power_watts) == (0, 241.7)


def test_a_lost_gpu_fell_off_the_bus_and_the_others_are_still_read(
    fake: FakeNvml, provider: NvmlProvider
) -> None:
    before = by_index(provider.telemetry())
    fake.faults.health[3] = HealthFault(fell_off_bus=True)
    got = by_index(provider.telemetry())  # the cached handle answers GpuIsLost
    assert got[3] == GpuTelemetry(index=3, uuid=before[3].uuid, fell_off_bus=True)
    assert all(not got[i].fell_off_bus and got[i].temperature_c == 40.0 for i in got if i != 3)
    handles = fake.calls["nvmlDeviceGetHandleByIndex"]
    got = by_index(provider.telemetry())  # now the handle query itself says it is lost
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == handles + 1
    assert got[3] == GpuTelemetry(index=3, uuid=before[3].uuid, fell_off_bus=True)
    fake.faults.health[3] = HealthFault(xid=[79])  # back (a reset): read, registered again
    got = by_index(provider.telemetry())
    assert not got[3].fell_off_bus and got[3].temperature_c == 40.0
    assert (got[3].xid_errors, got[3].last_xid) == (1, 79)
    assert fake.calls["nvmlDeviceRegisterEvents"] == 8 + 1


def test_a_gpu_lost_in_the_middle_of_a_reading_is_lost_not_half_read(
    fake: FakeNvml, provider: NvmlProvider
) -> None:
    fake.fail("nvmlDeviceGetRemappedRows", pynvml.NVMLError_GpuIsLost, gpu=6)
    got = by_index(provider.telemetry())
    assert got[6].fell_off_bus and got[6].ecc_volatile_corrected is None
    assert got[7].remapped_rows_failed is False


def test_a_gpu_lost_from_the_start_has_no_uuid_yet() -> None:
    fake = FakeNvml(load_topology())
    fake.faults.health[0] = HealthFault(fell_off_bus=True)
    with NvmlProvider(fake) as provider:
        assert [g.index for g in provider.gpus()] == [1, 2, 3, 4, 5, 6, 7]  # left out
        got = provider.telemetry()
    assert got[0] == GpuTelemetry(index=0, uuid="", fell_off_bus=True)
    assert len(got) == 8 and got[1].temperature_c == 40.0


def test_a_binding_bug_on_one_gpu_does_not_stop_the_others(
    fake: FakeNvml, provider: NvmlProvider
) -> None:
    def broken(*_args: Any) -> Any:
        raise RuntimeError("binding bug")

    fake.answer("nvmlDeviceGetClockInfo", broken, gpu=4)
    got = by_index(provider.telemetry())
    assert got[4] == GpuTelemetry(index=4, uuid=got[4].uuid)  # nothing read, not lost
    assert got[5].sm_clock_hz == 1410e6


# -- XID events ---------------------------------------------------------------------------------


def test_each_xid_is_delivered_once_in_order(fake: FakeNvml, provider: NvmlProvider) -> None:
    start = dt.datetime.now(dt.UTC)
    fake.faults.health[2] = HealthFault(xid=[79, 48])
    got = provider.telemetry()[2]
    assert (got.xid_errors, got.last_xid) == (2, 48)
    assert got.last_xid_at is not None and start <= got.last_xid_at <= dt.datetime.now(dt.UTC)
    assert provider.telemetry()[2].xid_errors == 2  # not delivered again
    fake.faults.health[2] = HealthFault(xid=[79, 48, 63])  # a list that grows: the new one only
    got = provider.telemetry()[2]
    assert (got.xid_errors, got.last_xid) == (3, 63)
    fake.faults.health[2] = HealthFault(xid=[13])  # a new list: new faults from its start
    assert (provider.telemetry()[2].xid_errors, provider.telemetry()[2].last_xid) == (4, 13)
    assert all(t.xid_errors == 0 for t in provider.telemetry() if t.index != 2)
    assert fake.calls["nvmlEventSetCreate"] == 1  # once per session
    assert fake.calls["nvmlDeviceRegisterEvents"] == 8  # once per GPU


def test_the_event_set_is_freed_on_close(fake: FakeNvml) -> None:
    provider = NvmlProvider(fake)
    provider.telemetry()
    assert len(fake.health.event_sets) == 1
    provider.close()
    assert fake.health.event_sets == {}
    assert fake.calls["nvmlEventSetFree"] == 1
    provider.close()  # once: no double free
    assert fake.calls["nvmlEventSetFree"] == 1


def test_a_provider_that_never_read_telemetry_creates_no_event_set(fake: FakeNvml) -> None:
    with NvmlProvider(fake) as provider:
        provider.gpus()
    assert fake.calls["nvmlEventSetCreate"] == 0 and fake.calls["nvmlEventSetFree"] == 0


def test_without_event_sets_xids_are_not_counted_and_not_asked_again(fake: FakeNvml) -> None:
    fake.fail("nvmlEventSetCreate", pynvml.NVMLError_NotSupported)
    fake.faults.health[2] = HealthFault(xid=[79])
    with NvmlProvider(fake) as provider:
        provider.telemetry()
        got = provider.telemetry()
    assert got[2].xid_errors == 0 and got[2].temperature_c == 40.0
    assert fake.calls["nvmlEventSetCreate"] == 1


def test_a_gpu_that_cannot_report_xids_is_not_registered_again(fake: FakeNvml) -> None:
    fake.fail("nvmlDeviceRegisterEvents", pynvml.NVMLError_NotSupported, gpu=1)
    fake.faults.health[2] = HealthFault(xid=[48])
    with NvmlProvider(fake) as provider:
        provider.telemetry()
        got = provider.telemetry()
    assert got[2].last_xid == 48
    assert fake.calls["nvmlDeviceRegisterEvents"] == 8


# -- old drivers and bindings -------------------------------------------------------------------


def test_an_old_driver_reads_throttle_reasons_from_the_older_call() -> None:
    fake = FakeNvml(build_host(a30_topology(), source="a30"))
    fake.faults.old_driver = True
    fake.faults.health[0] = HealthFault(throttle=["hw_slowdown", "sw_power_cap"])
    with NvmlProvider(fake) as provider:
        for _ in range(2):
            got = provider.telemetry()
            assert got[0].throttle_reasons == ("sw_power_cap", "hw_slowdown")
            assert got[1].throttle_reasons == ()
    assert fake.calls["nvmlDeviceGetCurrentClocksEventReasons"] == 1  # once for the session
    assert fake.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 4
    assert got[0].power_limit_watts == 165.0  # A30


def test_a_binding_without_the_new_calls_falls_back_and_reads_the_rest() -> None:
    fake = FakeNvml(build_host(a30_topology(), source="a30"))
    fake.faults.health[1] = HealthFault(throttle=["sw_thermal"])
    module = fake.as_module()
    del module.nvmlDeviceGetCurrentClocksEventReasons  # an old nvidia-ml-py
    del module.nvmlDeviceGetRemappedRows
    with NvmlProvider(module) as provider:
        got = provider.telemetry()
    assert got[1].throttle_reasons == ("sw_thermal",)
    assert got[1].remapped_rows_failed is None and got[1].ecc_volatile_corrected == 0
