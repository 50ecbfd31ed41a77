"""The ``gpu-health`` cycle step: faults become one audit event each and a stored, drained state;
nothing is written while nothing changes; a cleared fault writes ``ok``; the GPUs unavailable
write nothing; the listing detection read in the cycle is reused."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import attrs
import pynvml
import pytest

from ds01_core.cycle.pipeline import run_cycle
from ds01_core.domain.gpu.access import write_release
from ds01_core.domain.gpu.simulated import SimulatedProvider
from ds01_core.framework.hookspecs import hookimpl
from tests.helpers.gpu_health import TelemetryHost, gpu_events, runtime_maker, stored


@pytest.fixture
def make_runtime(tmp_path):
    with runtime_maker(tmp_path) as make:
        yield make


def test_a_healthy_host_is_all_ok_with_no_event_and_fills_the_report(make_runtime):
    provider = TelemetryHost()
    runtime = make_runtime(provider)
    report = run_cycle(runtime, workloads=[])
    assert report.errors == []
    assert [g.index for g in report.gpus] == list(range(8))
    assert [(h.index, h.state) for h in report.health] == [(i, "ok") for i in range(8)]
    assert report.health[2].uuid == report.gpus[2].uuid
    assert report.health[2].telemetry.temperature_c == 41.0
    assert gpu_events(runtime) == []
    assert {i: s.known.health.state for i, s in stored(runtime).items()} == dict.fromkeys(
        range(8), "ok"
    )


@pytest.mark.parametrize(
    ("fault", "state", "code"),
    [
        ({"fell_off_bus": True}, "unhealthy", "fell_off_bus"),
        ({"ecc_volatile_uncorrected": 2}, "unhealthy", "ecc_uncorrected"),
        ({"remapped_rows_failed": True}, "unhealthy", "row_remap_failure"),
        ({"temperature_c": 86.0, "throttle_reasons": ("sw_thermal",)}, "degraded", "thermal"),
        ({"retired_pages_pending": True}, "degraded", "pending_retirement"),
    ],
)
def test_a_fault_is_one_event_then_silence_then_ok_when_it_clears(make_runtime, fault, state, code):
    provider = TelemetryHost()
    runtime = make_runtime(provider)
    run_cycle(runtime, workloads=[])
    provider.faults = {2: fault}
    report = run_cycle(runtime, workloads=[])
    changed = gpu_events(runtime)
    assert [e["event_type"] for e in changed] == ["gpu.health_changed"]
    details = changed[0]["details"]
    assert details["gpu"] == 2 and details["uuid"] == report.gpus[2].uuid
    assert details["state"] == state and details["previous_state"] == "ok"
    assert [r["code"] for r in details["reasons"]] == [code]
    assert details["drained"] is (state == "unhealthy")
    row = stored(runtime)[2].known.health
    assert row.state == state and row.drained is (state == "unhealthy")
    assert report.health[2].state == state and report.health[1].state == "ok"

    for _ in range(2):  # the fault holds: nothing more is written
        run_cycle(runtime, workloads=[])
    assert len(gpu_events(runtime)) == 1

    provider.faults = {}
    report = run_cycle(runtime, workloads=[])
    cleared = gpu_events(runtime)[1:]
    assert [e["event_type"] for e in cleared] == ["gpu.health_changed"]
    assert cleared[0]["details"]["state"] == "ok"
    assert cleared[0]["details"]["previous_state"] == state
    assert cleared[0]["details"]["reasons"] == [] and cleared[0]["details"]["drained"] is False
    assert not stored(runtime)[2].known.health.drained
    assert report.health[2].state == "ok"


def test_an_xid_is_one_xid_event_and_one_change(make_runtime):
    provider = TelemetryHost()
    runtime = make_runtime(provider)
    run_cycle(runtime, workloads=[])
    at = dt.datetime.now(dt.UTC)
    provider.faults = {5: {"last_xid": 79, "last_xid_at": at, "xid_errors": 1}}
    run_cycle(runtime, workloads=[])
    events = gpu_events(runtime)
    assert [e["event_type"] for e in events] == ["gpu.xid", "gpu.health_changed"]
    assert events[0]["details"]["xid"] == 79 and events[0]["details"]["gpu"] == 5
    assert events[1]["details"]["state"] == "unhealthy"
    assert "XID 79 (GPU fell off the bus)" in events[1]["details"]["reasons"][0]["detail"]
    run_cycle(runtime, workloads=[])  # the same XID read again: nothing new
    assert len(gpu_events(runtime)) == 2
    later = at + dt.timedelta(seconds=5)
    provider.faults = {5: {"last_xid": 79, "last_xid_at": later, "xid_errors": 2}}
    run_cycle(runtime, workloads=[])  # a second XID: its event, but the health is unchanged
    assert [e["event_type"] for e in gpu_events(runtime)[2:]] == ["gpu.xid"]


def test_a_failed_telemetry_read_keeps_every_gpus_state(make_runtime):
    provider = TelemetryHost()
    runtime = make_runtime(provider)
    provider.faults = {3: {"fell_off_bus": True}}
    run_cycle(runtime, workloads=[])
    provider.broken = True
    report = run_cycle(runtime, workloads=[])
    assert report.health[3].state == "unhealthy" and report.health[3].drained
    assert len(gpu_events(runtime)) == 1  # no flapping: neither "ok" nor a new event


class NoTelemetry(SimulatedProvider):
    """A provider that reads no telemetry (a third party's, or an older one)."""

    telemetry = None


def test_a_provider_without_telemetry_reports_failing_reads(make_runtime):
    provider = NoTelemetry()
    runtime = make_runtime(provider)
    run_cycle(runtime, workloads=[])
    provider.nvml.faults.process_errors[1] = pynvml.NVMLError_NoPermission
    provider.process_listing()  # the reads that fail (the detectors' and the idle step's)
    report = run_cycle(runtime, workloads=[])
    assert [h.state for h in report.health][:3] == ["ok", "degraded", "ok"]
    assert report.health[0].telemetry is None
    event = gpu_events(runtime)[-1]
    assert event["event_type"] == "gpu.health_changed" and event["details"]["gpu"] == 1
    assert event["details"]["reasons"][0]["code"] == "read_failed"
    assert "Insufficient Permissions" in event["details"]["reasons"][0]["detail"]
    assert event["details"]["drained"] is False  # degraded does not drain by default


def test_the_gpus_released_judge_nothing_and_write_nothing(make_runtime, tmp_path):
    runtime = make_runtime()  # the configured provider, through the GPU access
    run_dir = Path(runtime.config.paths.runtime_dir)
    write_release(run_dir, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1), "root", "MIG change")
    report = run_cycle(runtime, workloads=[])
    assert report.health == [] and report.gpus == []
    assert stored(runtime) == {}
    assert not [e for e in gpu_events(runtime) if e["event_type"].startswith("gpu.health")]


class SlotsDetector:
    """A detector that reads the slots, as the built-in docker detector does."""

    @hookimpl
    def detect_workloads(self, runtime):
        runtime.gpu.slots()
        return []


def test_the_listing_detection_read_is_reused(make_runtime):
    provider = TelemetryHost()
    runtime = make_runtime(provider, ("slots-detector", SlotsDetector()))
    report = run_cycle(runtime, workloads=None)
    assert provider.listed_before_telemetry == 1  # detection's, not a second walk
    assert len(report.gpus) == 8 and len(report.health) == 8
    # without a listing in this cycle the step reads one itself
    alone = TelemetryHost()
    runtime = make_runtime(alone)
    alone.gpus()  # an earlier cycle's listing: too old
    alone.listings = 0
    run_cycle(runtime, workloads=[])
    assert alone.listed_before_telemetry == 1


def test_a_partial_cycle_does_not_judge(make_runtime):
    provider = TelemetryHost()
    provider.faults = {0: {"fell_off_bus": True}}
    runtime = make_runtime(provider)
    report = run_cycle(runtime, partial=True, workloads=[])
    assert "gpu-health" not in report.steps and report.health == []
    assert stored(runtime) == {}


def test_the_stored_readings_round_trip(make_runtime):
    provider = TelemetryHost()
    at = dt.datetime(2026, 11, 30, 14, 2, tzinfo=dt.UTC)
    provider.faults = {
        4: {
            "throttle_reasons": ("hw_thermal", "gpu_idle"),
            "last_xid": 13,
            "last_xid_at": at,
            "xid_errors": 1,
            "ecc_aggregate_corrected": 7,
        }
    }
    runtime = make_runtime(provider)
    report = run_cycle(runtime, workloads=[])
    row = stored(runtime)[4].known
    assert row.health.telemetry == report.health[4].telemetry
    assert attrs.asdict(row.health) == attrs.asdict(report.health[4])
