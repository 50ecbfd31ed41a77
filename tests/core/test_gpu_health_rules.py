"""The rules from one GPU's readings to its health: each fault's state and words, the edges of
the thermal margin and the XID window, what counts as a change, and the ``gpu.health`` section
refused by its path."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

from ds01_core.domain.config import ConfigError, HealthConfig, build_config
from ds01_core.domain.gpu.health import GpuHealth, GpuTelemetry, HealthReason
from ds01_core.domain.gpu.health_rules import Known, SeenXid, evaluate
from ds01_core.domain.units import Duration

NOW = dt.datetime(2026, 11, 30, 14, 30, tzinfo=dt.UTC)
UUID = "GPU-1"
CONFIG = HealthConfig()


def reading(**kw) -> GpuTelemetry:
    base = {"temperature_c": 40.0, "slowdown_temperature_c": 85.0, "shutdown_temperature_c": 92.0}
    return GpuTelemetry(3, UUID, **{**base, **kw})


def judge(telemetry, before=None, config=CONFIG, now=NOW, **kw):
    return evaluate(3, UUID, telemetry, before, config, now, **kw)


def codes(verdict) -> list[str]:
    return [r.code for r in verdict.health.reasons]


def test_a_gpu_without_faults_is_ok_and_not_a_change():
    verdict = judge(reading())
    assert verdict.health.state == "ok" and verdict.health.reasons == ()
    assert not verdict.changed and not verdict.health.drained
    assert verdict.health.telemetry == reading()


@pytest.mark.parametrize(
    ("fault", "state", "code", "words"),
    [
        (
            {"ecc_volatile_uncorrected": 2},
            "unhealthy",
            "ecc_uncorrected",
            "2 uncorrected ECC errors since the driver loaded",
        ),
        (
            {"ecc_volatile_uncorrected": 1},
            "unhealthy",
            "ecc_uncorrected",
            "1 uncorrected ECC error since the driver loaded",
        ),
        ({"fell_off_bus": True}, "unhealthy", "fell_off_bus", "fell off the bus"),
        ({"remapped_rows_failed": True}, "unhealthy", "row_remap_failure", "needs service"),
        ({"retired_pages_pending": True}, "degraded", "pending_retirement", "retired pages"),
        ({"remapped_rows_pending": True}, "degraded", "pending_retirement", "remapped rows"),
        ({"temperature_c": 80.0}, "degraded", "thermal", "80 °C, within 5 °C of the slowdown"),
        ({"throttle_reasons": ("hw_thermal",)}, "degraded", "thermal", "throttled (hw_thermal)"),
        ({"throttle_reasons": ("sw_thermal",)}, "degraded", "thermal", "sw_thermal"),
        ({"throttle_reasons": ("hw_slowdown",)}, "degraded", "thermal", "hw_slowdown"),
        (
            {"last_xid": 79, "last_xid_at": NOW - dt.timedelta(minutes=1), "xid_errors": 1},
            "unhealthy",
            "xid",
            "XID 79 (GPU fell off the bus) at 14:29 UTC",
        ),
        (
            {"last_xid": 13, "last_xid_at": NOW - dt.timedelta(minutes=1), "xid_errors": 1},
            "degraded",
            "xid",
            "XID 13 (graphics engine exception) at 14:29 UTC",
        ),
    ],
)
def test_each_fault_gives_its_state_and_words(fault, state, code, words):
    verdict = judge(reading(**fault))
    assert verdict.health.state == state
    assert codes(verdict) == [code]
    assert words in verdict.health.reasons[0].detail
    assert verdict.changed  # from "ok" (never seen) to a fault
    assert verdict.health.drained is (state == "unhealthy")  # the default: drain unhealthy
    assert verdict.health.since == NOW


def test_corrected_ecc_errors_and_idle_throttling_are_not_faults():
    verdict = judge(
        reading(ecc_volatile_corrected=500, throttle_reasons=("gpu_idle", "sw_power_cap"))
    )
    assert verdict.health.state == "ok"


def test_the_thermal_margin_is_inclusive_at_its_edge():
    assert judge(reading(temperature_c=79.9)).health.state == "ok"
    assert judge(reading(temperature_c=80.0)).health.state == "degraded"
    wider = HealthConfig(thermal_margin=10.0)
    assert judge(reading(temperature_c=75.0), config=wider).health.state == "degraded"
    # no slowdown temperature known: the temperature alone says nothing
    assert judge(reading(temperature_c=99.0, slowdown_temperature_c=None)).health.state == "ok"


def test_the_worst_reason_decides_and_every_reason_is_listed_in_order():
    verdict = judge(
        reading(temperature_c=88.0, ecc_volatile_uncorrected=3, retired_pages_pending=True)
    )
    assert verdict.health.state == "unhealthy"
    assert codes(verdict) == ["ecc_uncorrected", "thermal", "pending_retirement"]


def test_failing_reads_degrade_a_gpu_with_the_providers_words():
    verdict = judge(
        reading(), read_error="degraded: nvmlDeviceGetComputeRunningProcesses: No permission"
    )
    assert verdict.health.state == "degraded"
    assert verdict.health.reasons == (
        HealthReason(
            "read_failed", "reads failing: nvmlDeviceGetComputeRunningProcesses: No permission"
        ),
    )


def test_a_lost_gpus_failing_reads_are_not_a_second_reason():
    verdict = judge(reading(fell_off_bus=True), read_error="degraded: reading the GPU: GPU is lost")
    assert codes(verdict) == ["fell_off_bus"]


def test_a_provider_without_telemetry_judges_only_failing_reads():
    plain = judge(None, telemetry_read=False)
    assert plain.health.state == "ok" and plain.health.telemetry is None
    failing = judge(None, telemetry_read=False, read_error="degraded: x: y")
    assert codes(failing) == ["read_failed"]


LOST = (HealthReason("fell_off_bus", "lost"),)


def known(state="unhealthy", reasons=LOST, **kw) -> Known:
    since = NOW - dt.timedelta(hours=1)
    health = GpuHealth(3, UUID, state, tuple(reasons), since, state == "unhealthy", reading())
    return Known(health, **kw)


def test_a_missing_reading_keeps_the_last_health_rather_than_clearing_it():
    before = known()
    verdict = judge(None, before)
    assert verdict.health == before.health and not verdict.changed


def test_an_unchanged_fault_is_not_a_change_and_keeps_its_since():
    before = known(reasons=(HealthReason("ecc_uncorrected", "1 uncorrected ECC error"),))
    verdict = judge(reading(ecc_volatile_uncorrected=4), before)
    assert not verdict.changed
    assert verdict.health.since == before.health.since
    # the words follow the readings, quietly
    assert verdict.health.reasons[0].detail.startswith("4 uncorrected ECC errors")


def test_a_cleared_fault_is_a_change_back_to_ok():
    verdict = judge(reading(), known())
    assert verdict.changed and verdict.health.state == "ok" and verdict.health.since == NOW
    assert not verdict.health.drained


def test_a_new_reason_in_the_same_state_is_a_change():
    before = known(reasons=LOST)
    verdict = judge(reading(fell_off_bus=True, ecc_volatile_uncorrected=1), before)
    assert verdict.health.state == "unhealthy" and verdict.changed
    assert verdict.health.since == before.health.since  # same state: since stays


def test_the_drain_follows_the_configuration():
    never = HealthConfig(drain=[])
    assert not judge(reading(fell_off_bus=True), config=never).health.drained
    both = HealthConfig(drain=["degraded", "unhealthy"])
    assert judge(reading(temperature_c=84.0), config=both).health.drained
    # a drain that changes (a reload) is a change, so the event says so
    before = known()
    assert judge(reading(fell_off_bus=True), before, config=never).changed


def xid(code, minutes_ago, errors=1) -> GpuTelemetry:
    return reading(
        last_xid=code, last_xid_at=NOW - dt.timedelta(minutes=minutes_ago), xid_errors=errors
    )


def test_an_xid_counts_within_the_window_and_clears_after_it():
    first = judge(xid(13, 1))
    assert first.new_xids == (SeenXid(13, NOW - dt.timedelta(minutes=1)),) and first.xid_count == 1
    before = Known(first.health, first.xids)
    # the same XID read again: not new, still in the window
    again = judge(xid(13, 1), before, now=NOW + dt.timedelta(minutes=10))
    assert again.new_xids == () and again.health.state == "degraded" and not again.changed
    # 15 minutes (the default window) after it: gone, the GPU is ok again
    edge = NOW - dt.timedelta(minutes=1) + dt.timedelta(minutes=15)
    assert judge(xid(13, 1), before, now=edge).health.state == "degraded"
    later = judge(xid(13, 1), before, now=edge + dt.timedelta(seconds=1))
    assert later.health.state == "ok" and later.changed and later.xids == ()


def test_a_critical_xid_outweighs_a_later_harmless_one_within_the_window():
    first = judge(xid(79, 5))
    before = Known(first.health, first.xids)
    second = judge(xid(13, 1, errors=2), before)
    assert second.new_xids == (SeenXid(13, NOW - dt.timedelta(minutes=1)),)
    assert second.health.state == "unhealthy"
    assert "XID 79 (GPU fell off the bus) at 14:25 UTC; XID 13" in second.health.reasons[0].detail


def test_critical_xids_are_configurable():
    lenient = HealthConfig(critical_xids=[])
    assert judge(xid(79, 1), config=lenient).health.state == "degraded"
    strict = HealthConfig(critical_xids=[13])
    assert judge(xid(13, 1), config=strict).health.state == "unhealthy"
    shorter = HealthConfig(xid_window=Duration(60))
    assert judge(xid(13, 2), config=shorter).health.state == "ok"


def test_several_xids_between_two_reads_are_counted():
    first = judge(xid(13, 5, errors=1))
    verdict = judge(xid(31, 1, errors=4), Known(first.health, first.xids))
    assert verdict.xid_count == 3 and len(verdict.new_xids) == 1


def test_an_xid_without_a_time_is_new_when_the_counter_grew():
    timeless = reading(last_xid=13, xid_errors=1)
    first = judge(timeless)
    assert first.new_xids == (SeenXid(13, NOW),)
    before = Known(first.health, first.xids)
    assert judge(timeless, before).new_xids == ()
    assert judge(attrs.evolve(timeless, xid_errors=2), before).new_xids != ()


# -- the configuration -------------------------------------------------------------------------


def test_the_section_is_read_with_its_defaults(tmp_path):
    config = build_config({"gpu": {"health": {"xid_window": "5m", "drain": []}}})
    health = config.gpu.health
    assert health.xid_window == 300 and health.drain == [] and 79 in health.critical_xids
    assert build_config({}).gpu.health.drain == ["unhealthy"]


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"drain": ["broken"]}, "gpu.health.drain[0]"),
        ({"drain": ["unhealthy", "unhealthy"]}, "gpu.health.drain[1]: 'unhealthy' listed twice"),
        ({"xid_window": "soon"}, "gpu.health.xid_window"),
        ({"xid_window": 0}, "gpu.health.xid_window: must be greater than 0"),
        ({"thermal_margin": -1}, "gpu.health.thermal_margin: must be between 0 and 50"),
        ({"critical_xids": [79, 0]}, "gpu.health.critical_xids[1]: not an XID code"),
        ({"critical_xids": "79"}, "gpu.health.critical_xids"),
        ({"drains": ["unhealthy"]}, "gpu.health.drains"),
    ],
)
def test_a_bad_section_is_refused_by_its_path(section, problem):
    with pytest.raises(ConfigError) as refused:
        build_config({"gpu": {"health": section}})
    assert any(problem in str(p) for p in refused.value.problems), refused.value.problems
