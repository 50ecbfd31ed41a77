"""The exporter's snapshot from real cycles (``run_cycle`` on the simulated host, the state store
on disk): GPU, slot, capacity, user and workload series; a gone container's series vanish; a
partial cycle keeps the last full cycle's GPUs; a scrape calls neither NVML nor Docker."""

from __future__ import annotations

import datetime as dt
import importlib.util

import attrs
import pytest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import generate_latest

from ds01_core.cycle.pipeline import run_cycle
from ds01_core.domain.gpu.health import GpuHealth, GpuTelemetry, HealthReason
from ds01_core.domain.model import GpuRequest, QuotaLine, Workload
from ds01_core.domain.state.allocations import Allocations
from ds01_core.domain.state.gpu_queue import Waiter
from ds01_core.framework.hookspecs import hookimpl
from ds01_core.framework.runtime import load_runtime
from ds01_prometheus.collector import (
    CYCLE_BUCKETS,
    Exporter,
    exporter_of,
    load_process_metrics,
    running_exporter,
)
from ds01_prometheus.gpu_metrics import REASON_CODES as PLUGIN_REASON_CODES
from ds01_prometheus.gpu_metrics import THROTTLE_REASONS as PLUGIN_THROTTLE_REASONS
from ds01_prometheus.server import ExporterService
from tests.helpers.config import write_config
from tests.plugins.prometheus.exporter_helpers import (
    QUIET,
    NoDocker,
    count_nvml_calls,
    find,
    make_runtime,
    parse,
    running,
    scrape,
    value,
)

LIMITS = {
    "limits": {
        "defaults": {"max_gpu_equivalents": 2},
        "users": {"carol": {"max_gpu_equivalents": 3, "memory_max": "8GiB"}},
        "groups": {"student": {"members": ["alice"], "max_gpu_equivalents": 1}},
    }
}


def container(cid: str, name: str, owner: str, slots: list[str], **kw: object) -> Workload:
    return Workload(
        kind="container",
        id=cid,
        name=name,
        origin=kw.pop("origin", "ds01"),  # type: ignore[arg-type]
        owner=owner,
        owner_source="label:ds01.user",
        status=kw.pop("status", "running"),  # type: ignore[arg-type]
        gpu_slots=slots,
        **kw,  # type: ignore[arg-type]
    )


def allocate(runtime, user: str, cid: str, name: str, uuids: list[str], weight: float) -> None:
    with runtime.state.transaction() as db:
        Allocations.insert_bound(db, user, cid, name, uuids, weight, runtime.now())


def samples_of(runtime) -> dict:
    return parse(generate_latest(exporter_of(runtime).registry()).decode())


@pytest.fixture
def runtime(tmp_path):
    rt = make_runtime(tmp_path, LIMITS)
    yield rt
    rt.close()


def test_gpu_slot_and_capacity_series_from_a_real_cycle(runtime):
    run_cycle(runtime, workloads=[])
    s = samples_of(runtime)
    gpus = runtime.gpu.gpus()
    assert value(s, "ds01_gpus_available") == 1
    info = find(s, "ds01_gpu_info")
    assert len(info) == len(gpus) == 8
    assert dict(next(iter(find(s, "ds01_gpu_info", gpu="4")))) == {
        "gpu": "4",
        "uuid": gpus[4].uuid,
        "model": gpus[4].model,
        "mig": "true",
    }
    # utilisation as a ratio, memory in bytes
    assert value(s, "ds01_gpu_utilization_ratio", gpu="0") == pytest.approx(
        gpus[0].utilization / 100
    )
    assert value(s, "ds01_gpu_memory_total_bytes", gpu="0") == gpus[0].memory_total
    slots = [slot for gpu in gpus for slot in gpu.slots]
    assert len(find(s, "ds01_slot_info")) == len(slots)
    two_g = next(slot for slot in slots if slot.profile == "2g.20gb")
    assert (
        value(
            s,
            "ds01_slot_info",
            gpu=str(two_g.gpu_index),
            slot=two_g.slot_id,
            uuid=two_g.uuid,
            profile="2g.20gb",
            kind="mig",
        )
        == 1
    )
    assert value(s, "ds01_slot_weight", gpu=str(two_g.gpu_index), slot=two_g.slot_id) == (
        pytest.approx(2 / 7)
    )
    assert value(s, "ds01_gpu_capacity_gpu_equivalents") == pytest.approx(
        sum(slot.weight for slot in slots)
    )
    assert value(s, "ds01_gpu_allocated_gpu_equivalents") == 0
    assert find(s, "ds01_slot_allocated") == {}
    # the daemon's own series
    assert value(s, "ds01_cycle_duration_seconds_count", cycle="full") == 1
    assert value(s, "ds01_cycle_duration_seconds_count", cycle="partial") == 0
    assert (
        len(find(s, "ds01_cycle_duration_seconds_bucket", cycle="full")) == len(CYCLE_BUCKETS) + 1
    )
    assert value(s, "ds01_cycle_errors_total") == 0
    assert abs(value(s, "ds01_last_cycle_timestamp_seconds") - runtime.now().timestamp()) < 60
    assert find(s, "ds01_build_info")


def test_an_allocation_shows_with_its_holder_and_vanishes_when_the_container_is_gone(runtime):
    slots = {slot.slot_id: slot for slot in runtime.gpu.slots()}
    whole, mig = slots["0"], next(s for s in slots.values() if s.profile == "2g.20gb")
    allocate(runtime, "alice", "c" * 64, "train", [whole.uuid], 1.0)
    allocate(runtime, "bob", "d" * 64, "notebook", [mig.uuid], mig.weight)
    box_a = container("c" * 64, "train", "alice", [whole.uuid])
    box_b = container("d" * 64, "notebook", "bob", [mig.uuid], origin="devcontainer")
    run_cycle(runtime, workloads=[box_a, box_b])
    s = samples_of(runtime)
    assert (
        value(
            s,
            "ds01_slot_allocated",
            gpu="0",
            slot="0",
            uuid=whole.uuid,
            profile="",
            user="alice",
            container="train",
        )
        == 1
    )
    assert (
        value(
            s,
            "ds01_slot_allocated",
            gpu=str(mig.gpu_index),
            slot=mig.slot_id,
            uuid=mig.uuid,
            profile="2g.20gb",
            user="bob",
            container="notebook",
        )
        == 1
    )
    assert value(s, "ds01_gpu_allocated_gpu_equivalents") == pytest.approx(1 + 2 / 7)
    assert value(s, "ds01_user_gpu_equivalents", user="alice") == 1
    assert value(s, "ds01_user_gpu_equivalents", user="bob") == pytest.approx(2 / 7)
    assert value(s, "ds01_user_containers", user="alice") == 1
    assert value(s, "ds01_workloads", kind="container", origin="devcontainer") == 1
    assert value(s, "ds01_workloads", kind="container", origin="compose") == 0
    # limits and groups: alice's group's quota, carol's own (she has limits, no workload)
    assert value(s, "ds01_user_gpu_quota", user="alice") == 1
    assert value(s, "ds01_user_gpu_quota", user="bob") == 2
    assert value(s, "ds01_user_gpu_quota", user="carol") == 3
    assert value(s, "ds01_user_memory_limit_bytes", user="carol") == 8 * 1024**3
    assert value(s, "ds01_user_group_info", user="alice", group="student") == 1
    assert value(s, "ds01_user_group_info", user="bob", group="") == 1
    assert value(s, "ds01_user_gpu_equivalents", user="carol") == 0

    # alice's container is removed: reconcile releases its allocation, her series go
    run_cycle(runtime, workloads=[box_b])
    s = samples_of(runtime)
    assert not find(s, "ds01_slot_allocated", container="train")
    assert not find(s, "ds01_slot_idle", container="train")
    assert find(s, "ds01_slot_allocated", container="notebook")
    assert value(s, "ds01_gpu_allocated_gpu_equivalents") == pytest.approx(2 / 7)
    assert value(s, "ds01_user_gpu_equivalents", user="alice") == 0  # she is in a group
    assert value(s, "ds01_user_containers", user="alice") == 0


def test_a_partial_cycle_keeps_the_gpus_and_updates_the_allocations(runtime, monkeypatch):
    slot = runtime.gpu.slots()[1]
    allocate(runtime, "alice", "e" * 64, "job", [slot.uuid], 1.0)
    box = container("e" * 64, "job", "alice", [slot.uuid])
    run_cycle(runtime, workloads=[box])
    before = samples_of(runtime)
    assert find(before, "ds01_slot_allocated", container="job", slot="1")
    # a partial cycle carries no GPU listing, and must not read one
    monkeypatch.setattr(type(runtime.gpu), "gpus", lambda self: pytest.fail("GPUs read"))
    report = run_cycle(runtime, partial=True, workloads=[])
    assert report.partial and report.gpus == []
    after = samples_of(runtime)
    for name in ("ds01_gpu_info", "ds01_slot_info", "ds01_gpu_power_watts"):
        assert find(after, name) == find(before, name) != {}
    assert not find(after, "ds01_slot_allocated", container="job")  # released: container gone
    assert value(after, "ds01_cycle_duration_seconds_count", cycle="partial") == 1


def test_health_and_telemetry_series_follow_the_report(runtime):
    """``report.health`` as the gpu-health step fills it: readings, reasons, drained GPUs;
    a reason that clears goes to 0, so an alert on it resolves."""
    report = run_cycle(runtime, workloads=[])
    gpus = runtime.gpu.gpus()
    hot = GpuTelemetry(
        index=2,
        uuid=gpus[2].uuid,
        temperature_c=91.0,
        slowdown_temperature_c=88.0,
        shutdown_temperature_c=95.0,
        power_watts=300.0,
        power_limit_watts=400.0,
        energy_joules=1234.0,
        sm_clock_hz=1.41e9,
        memory_clock_hz=1.593e9,
        throttle_reasons=("sw_thermal", "hw_slowdown"),
        ecc_volatile_corrected=3,
        ecc_volatile_uncorrected=1,
        ecc_aggregate_corrected=10,
        ecc_aggregate_uncorrected=2,
        retired_pages_single_bit=4,
        retired_pages_double_bit=1,
        retired_pages_pending=True,
        remapped_rows_correctable=5,
        remapped_rows_uncorrectable=0,
        remapped_rows_pending=False,
        remapped_rows_failed=False,
        xid_errors=2,
        last_xid=79,
        last_xid_at=dt.datetime.now(dt.UTC),
    )
    sick = GpuHealth(
        index=2,
        uuid=gpus[2].uuid,
        state="unhealthy",
        reasons=(HealthReason("thermal", "91 C"), HealthReason("ecc_uncorrected", "1")),
        drained=True,
        telemetry=hot,
    )
    fine = GpuHealth(
        index=0,
        uuid=gpus[0].uuid,
        state="ok",
        telemetry=GpuTelemetry(0, gpus[0].uuid, temperature_c=40.0),
    )
    report.gpus, report.health = gpus, [fine, sick]
    report.steps.append("gpu-health")
    exporter_of(runtime).update(runtime, report)
    s = samples_of(runtime)
    assert value(s, "ds01_gpu_temperature_celsius", gpu="2") == 91
    assert value(s, "ds01_gpu_slowdown_temperature_celsius", gpu="2") == 88
    assert value(s, "ds01_gpu_power_limit_watts", gpu="2") == 400
    assert value(s, "ds01_gpu_energy_joules_total", gpu="2") == 1234
    assert value(s, "ds01_gpu_clock_hertz", gpu="2", clock="sm") == 1.41e9
    assert value(s, "ds01_gpu_throttled", gpu="2", reason="sw_thermal") == 1
    assert value(s, "ds01_gpu_throttled", gpu="2", reason="gpu_idle") == 0
    assert len(find(s, "ds01_gpu_throttled", gpu="2")) == len(PLUGIN_THROTTLE_REASONS)
    assert value(s, "ds01_gpu_throttled", gpu="0", reason="sw_thermal") == 0
    assert (
        value(s, "ds01_gpu_ecc_errors_total", gpu="2", counter="volatile", type="uncorrected") == 1
    )
    assert (
        value(s, "ds01_gpu_ecc_errors_total", gpu="2", counter="aggregate", type="corrected") == 10
    )
    assert value(s, "ds01_gpu_retired_pages", gpu="2", cause="double_bit") == 1
    assert value(s, "ds01_gpu_retired_pages_pending", gpu="2") == 1
    assert value(s, "ds01_gpu_remapped_rows", gpu="2", type="correctable") == 5
    assert value(s, "ds01_gpu_remapped_rows_failed", gpu="2") == 0
    assert value(s, "ds01_gpu_xid_errors_total", gpu="2") == 2
    assert value(s, "ds01_gpu_last_xid", gpu="2") == 79
    assert not find(s, "ds01_gpu_last_xid", gpu="0")  # absent when none
    assert value(s, "ds01_gpu_fell_off_bus", gpu="2") == 0
    assert value(s, "ds01_gpu_healthy", gpu="2") == 0 and value(s, "ds01_gpu_healthy", gpu="0") == 1
    assert value(s, "ds01_gpu_drained", gpu="2") == 1
    assert value(s, "ds01_gpu_health_problem", gpu="2", reason="thermal") == 1
    assert value(s, "ds01_gpu_health_problem", gpu="2", reason="xid") == 0
    # drained GPUs leave the capacity
    assert value(s, "ds01_gpu_drained_gpu_equivalents") == 1
    slots = [slot for gpu in gpus for slot in gpu.slots]
    assert value(s, "ds01_gpu_capacity_gpu_equivalents") == pytest.approx(
        sum(slot.weight for slot in slots) - 1
    )
    # the reason clears: its series reads 0 (the alert resolves), the GPU is healthy again
    report.health = [fine, attrs.evolve(sick, state="ok", reasons=(), drained=False)]
    exporter_of(runtime).update(runtime, report)
    s = samples_of(runtime)
    assert value(s, "ds01_gpu_health_problem", gpu="2", reason="thermal") == 0
    assert value(s, "ds01_gpu_healthy", gpu="2") == 1
    assert value(s, "ds01_gpu_drained_gpu_equivalents") == 0


def test_a_process_without_a_listener_builds_nothing(tmp_path):
    """``ds01d --once`` or a command running a cycle: the hook leaves the GPUs and the store
    alone (no snapshot nobody would read)."""
    runtime = load_runtime(str(write_config(tmp_path, {"plugins": {"disabled": QUIET}})))
    report = run_cycle(runtime, workloads=[])
    assert report.errors == [] and running_exporter(runtime) is None
    # once a listener has made the exporter, the same hook builds the snapshot
    exporter = exporter_of(runtime)
    run_cycle(runtime, workloads=[])
    assert running_exporter(runtime) is exporter and exporter.updates == 1


def test_the_reason_codes_match_the_core():
    """The plugin keeps its own copy (it may import only ds01_core.api): the same codes."""
    from ds01_core.domain.gpu.health import REASON_CODES, THROTTLE_REASONS

    assert PLUGIN_REASON_CODES == REASON_CODES
    assert PLUGIN_THROTTLE_REASONS == THROTTLE_REASONS


def test_workload_counts_unmanaged_and_ungranted(runtime):
    uuid = runtime.gpu.slots()[3].uuid
    rogue = container("f" * 64, "rogue", "bob", [uuid], origin="docker", flags=["unmanaged_gpu"])
    proc = Workload(
        kind="process",
        id="4242",
        name="python",
        origin="host",
        owner="bob",
        owner_source="process_uid",
        status="running",
        gpu_slots=[uuid],
        pids=[4242],
        flags=["unmanaged_gpu", "no_grant"],
    )
    run_cycle(runtime, workloads=[rogue, proc])
    s = samples_of(runtime)
    assert value(s, "ds01_unmanaged_gpu_workloads", origin="docker") == 1
    assert value(s, "ds01_unmanaged_gpu_workloads", origin="host") == 1
    assert value(s, "ds01_unmanaged_gpu_workloads", origin="ds01") == 0
    assert value(s, "ds01_workloads", kind="process", origin="host") == 1
    assert value(s, "ds01_host_gpu_processes_without_grant") == 1


def test_idle_allocated_slots_and_users(runtime):
    slot = runtime.gpu.slots()[0]
    allocate(runtime, "alice", "a" * 64, "sleepy", [slot.uuid], 1.0)
    box = container("a" * 64, "sleepy", "alice", [slot.uuid])
    exporter = exporter_of(runtime)
    report = run_cycle(runtime, workloads=[box])
    assert (
        value(
            samples_of(runtime),
            "ds01_slot_idle",
            gpu="0",
            slot="0",
            user="alice",
            container="sleepy",
        )
        == 0
    )
    report.workloads[0].idle_seconds = 900.0  # what the idle step sets for a container in a streak
    exporter.update(runtime, report)
    s = samples_of(runtime)
    assert value(s, "ds01_slot_idle", gpu="0", slot="0", user="alice", container="sleepy") == 1
    assert value(s, "ds01_user_idle_gpu_equivalents", user="alice") == 1


class Usage:
    """A plugin reporting usage the way the cgroups plugin does, through ``quota_usage``."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    @hookimpl
    def quota_usage(self, user, limits):
        self.asked.append(user)
        if user != "alice":
            return []
        return [
            QuotaLine("memory", 3 * 1024**3, limits.get("memory_max"), "bytes"),
            QuotaLine("processes", 12, None, "count"),
            QuotaLine("cpu time", 4.5, None, "seconds"),
        ]


def test_user_memory_and_cpu_from_the_quota_lines(tmp_path):
    usage = Usage()
    runtime = make_runtime(tmp_path, LIMITS, plugins=(("usage", usage),))
    run_cycle(runtime, workloads=[container("a" * 64, "box", "alice", [])])
    s = samples_of(runtime)
    assert value(s, "ds01_user_memory_bytes", user="alice") == 3 * 1024**3
    assert value(s, "ds01_user_cpu_seconds_total", user="alice") == 4.5
    assert not find(s, "ds01_user_memory_bytes", user="carol")  # no line: absent, not 0
    assert sorted(set(usage.asked)) == ["alice", "carol"]
    # a partial cycle keeps the full cycle's readings without asking again
    usage.asked.clear()
    run_cycle(runtime, partial=True, workloads=[container("a" * 64, "box", "alice", [])])
    assert usage.asked == []
    assert value(samples_of(runtime), "ds01_user_memory_bytes", user="alice") == 3 * 1024**3


def test_a_scrape_calls_neither_nvml_nor_docker(runtime):
    """Counted on the simulated driver itself: a cycle calls NVML, a scrape never does."""
    provider = runtime.gpu
    calls = count_nvml_calls(provider.nvml)
    slot = provider.slots()[0]
    allocate(runtime, "alice", "b" * 64, "busy", [slot.uuid], 1.0)
    run_cycle(runtime, workloads=[container("b" * 64, "busy", "alice", [slot.uuid])])
    assert sum(calls.values()) > 0  # the counter sees the cycle's reads
    service = ExporterService(runtime, runtime.plugin_config("prometheus"))
    with running(service):
        calls.clear()
        runtime.__dict__["docker"] = no_docker = NoDocker()
        for _ in range(3):
            status, _headers, body = scrape(f"http://127.0.0.1:{service.address[1]}/metrics")
            assert status == 200
        assert "ds01_slot_allocated{" in body.decode()
    del runtime.__dict__["docker"]
    assert calls == {} and no_docker.used == []
    assert value(parse(body.decode()), "ds01_exporter_scrape_duration_seconds") > 0


class Telemetry:
    """The interface ``ds01_prometheus.process_metrics.ProcessMetrics`` offers the exporter."""

    def __init__(self, broken: bool = False) -> None:
        self.reports: list = []
        self.broken = broken

    def update(self, runtime, report) -> None:
        self.reports.append(report)

    def collect(self):
        if self.broken:
            raise RuntimeError("telemetry broke")
        family = CounterMetricFamily("ds01_events", "Events.", labels=["type"])
        family.add_metric(["gpu.allocated"], len(self.reports))
        yield family


def test_the_process_metrics_are_updated_each_cycle_and_served(runtime):
    telemetry = Telemetry()
    exporter = Exporter(telemetry)
    report = run_cycle(runtime, workloads=[])
    exporter.update(runtime, report)
    exporter.update(runtime, report)
    assert telemetry.reports == [report, report]
    body, _type = exporter.render("")
    assert value(parse(body.decode()), "ds01_events_total", type="gpu.allocated") == 2
    assert value(parse(body.decode()), "ds01_gpus_available") == 1
    # a broken telemetry part costs only itself
    telemetry.broken = True
    body, _type = exporter.render("application/openmetrics-text;version=1.0.0")
    assert b"ds01_events_total" not in body and b"ds01_slot_info{" in body


def test_the_process_metrics_module_is_optional():
    found = importlib.util.find_spec("ds01_prometheus.process_metrics") is not None
    loaded = load_process_metrics()
    assert (loaded is not None) == found
    if loaded is not None:
        assert callable(loaded.update) and callable(loaded.collect)


def test_an_allocation_keeps_its_slot_labels_while_the_gpus_cannot_be_read(runtime, monkeypatch):
    slot = runtime.gpu.slots()[2]
    allocate(runtime, "alice", "9" * 64, "steady", [slot.uuid], 1.0)
    box = container("9" * 64, "steady", "alice", [slot.uuid])
    run_cycle(runtime, workloads=[box])
    labels = dict(slot="2", gpu="2", uuid=slot.uuid, profile="", user="alice", container="steady")
    assert value(samples_of(runtime), "ds01_slot_allocated", **labels) == 1
    # NVML stops answering: no GPU series, ds01_gpus_available 0, the allocation's labels kept
    outage = {"state": "unavailable", "error": "NVML: GPU is lost", "since": None, "retry_in": 5}
    monkeypatch.setattr(type(runtime), "gpu_state", lambda self: outage)
    run_cycle(runtime, workloads=[box])
    s = samples_of(runtime)
    assert value(s, "ds01_gpus_available") == 0
    assert find(s, "ds01_gpu_info") == {} and find(s, "ds01_slot_info") == {}
    assert find(s, "ds01_slot_allocated") == {frozenset(labels.items()): 1.0}


def test_queue_tickets_per_user(runtime):
    """Two live tickets of bob's (this process holds them), then one left: the series follows."""
    first = Waiter(runtime, GpuRequest(user="bob", container="wait-1"))
    second = Waiter(runtime, GpuRequest(user="bob", container="wait-2"))
    try:
        run_cycle(runtime, workloads=[])
        s = samples_of(runtime)
        assert value(s, "ds01_user_queue_tickets", user="bob") == 2
        assert value(s, "ds01_user_queue_tickets", user="carol") == 0
        first.leave("gave up")
        run_cycle(runtime, partial=True, workloads=[])
        assert value(samples_of(runtime), "ds01_user_queue_tickets", user="bob") == 1
    finally:
        second.leave("gave up")
