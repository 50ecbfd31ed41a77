"""Cross-process telemetry: counters and histograms count exactly (also from many threads), the
snapshot file is written atomically and world-readable, another process reads it back, and the
gateway's refusals map to their bounded reason codes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ds01_core.framework import telemetry
from ds01_core.framework.telemetry import (
    MAX_SERIES,
    OTHER,
    Counter,
    Histogram,
    Registry,
    read_process_telemetry,
)
from ds01_core.transports.gateway.create_policy import CreateRules, refusals
from ds01_core.transports.gateway.outcomes import DENIAL_REASONS, denial_reason


def test_counter_counts_exactly_from_many_threads():
    counter = Counter("x_total", "x", ("outcome",), seed=[("error",)])
    allowed = counter.incrementer("allowed")

    def work() -> None:
        for _ in range(20_000):
            counter.inc("denied")
            allowed()
            counter.inc("big", amount=0.5)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.values() == {
        ("allowed",): 80_000.0,
        ("denied",): 80_000.0,
        ("big",): 40_000.0,
        ("error",): 0.0,
    }


def test_counter_keeps_at_most_max_series_then_counts_other():
    counter = Counter("x_total", "x", ("type",))
    for i in range(MAX_SERIES + 5):
        counter.inc(f"t{i}")
    values = counter.values()
    assert len(values) == MAX_SERIES + 1
    assert values[(OTHER,)] == 5.0


def test_histogram_buckets_are_upper_bounds_inclusive():
    hist = Histogram("h_seconds", "h", (0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 3.0):
        hist.observe(value)
    counts, total = hist.state()
    assert counts == [2, 2, 1]  # <=0.1, <=1, above
    assert total == pytest.approx(4.65)


def test_snapshot_file_is_atomic_world_readable_and_read_by_another_process(tmp_path):
    registry = Registry()
    registry.counter("ds01_gateway_requests_total", "req", ("outcome",)).inc("denied")
    registry.histogram("ds01_allocation_duration_seconds", "alloc", (0.01, 0.1)).observe(0.05)
    with telemetry.writing(tmp_path, "ds01-test", interval=0.05, registry=registry) as writer:
        registry.counters["ds01_gateway_requests_total"].inc("denied")
    path = writer.path
    assert path == tmp_path / "telemetry" / "ds01-test.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    assert [p.name for p in path.parent.iterdir()] == ["ds01-test.json"]  # no temporary left
    # another process reads what this one wrote (after the final write at the end of `with`)
    code = (
        "import json,sys; from ds01_core.api import read_process_telemetry as r; "
        "(s,)=r(sys.argv[1]); c=s.counters['ds01_gateway_requests_total']; "
        "h=s.histograms['ds01_allocation_duration_seconds']; "
        "print(json.dumps([s.process, s.pid, c.values[('denied',)], list(h.counts), h.sum]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == ["ds01-test", os.getpid(), 2.0, [0, 1, 0], 0.05]


def test_the_writer_thread_writes_while_running(tmp_path):
    registry = Registry()
    counter = registry.counter("c_total", "c", ("k",))
    with telemetry.writing(tmp_path, "p", interval=0.05, registry=registry):
        counter.inc("a")
        deadline = 100
        while deadline and not _value(tmp_path, "c_total", ("a",)):
            threading.Event().wait(0.05)
            deadline -= 1
        assert _value(tmp_path, "c_total", ("a",)) == 1.0


def _value(runtime_dir: Path, name: str, key: tuple[str, ...]) -> float | None:
    snaps = read_process_telemetry(runtime_dir)
    return snaps[0].counters[name].values.get(key) if snaps else None


def test_a_broken_file_is_skipped_and_the_others_read(tmp_path, caplog):
    (tmp_path / "telemetry").mkdir()
    (tmp_path / "telemetry" / "bad.json").write_text("{not json")
    (tmp_path / "telemetry" / "short.json").write_text(json.dumps({"process": "x"}))
    registry = Registry()
    registry.counter("c_total", "c").inc()
    telemetry.write_snapshot(tmp_path / "telemetry" / "good.json", registry.snapshot("good"))
    assert [s.process for s in read_process_telemetry(tmp_path)] == ["good"]
    assert "bad.json" in caplog.text and "short.json" in caplog.text


RULES = CreateRules(home="/home/alice")


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ({"Privileged": True}, "privileged"),
        ({"Binds": ["/etc:/x"]}, "host_mount"),
        ({"Binds": ["/home/bob/data:/x"]}, "host_mount"),
        ({"CapAdd": ["SYS_ADMIN"]}, "host_access"),
        ({"PidMode": "host"}, "host_access"),
        ({"Devices": [{"PathOnHost": "/dev/sda"}]}, "host_access"),
        ({"DeviceRequests": [{"Count": -1}]}, "gpu_request"),
        ({"VolumesFrom": ["bobs"]}, "not_owner"),
        ({"Privileged": True, "Binds": ["/etc:/x"]}, "privileged"),  # the first reason wins
    ],
)
def test_create_policy_refusals_map_to_their_reason(host, reason):
    message = "; ".join(refusals({"HostConfig": host}, RULES))
    assert message
    assert denial_reason(message) == reason


@pytest.mark.parametrize(
    ("message", "status", "reason"),
    [
        ("uid 4242 has no account on this host", 403, "no_account"),
        ("container web belongs to another user; you may only use your own", 403, "not_owner"),
        (
            "POST /containers/prune is for admins only (it acts on everyone's objects)",
            403,
            "forbidden_endpoint",
        ),
        (
            "GET /swarm is not an endpoint the ds01 gateway allows (ask an admin if you need it)",
            403,
            "forbidden_endpoint",
        ),
        (
            "GPU quota: 1.00 of 1 GPU-equivalents in use (x); this request needs 1.00",
            403,
            "quota",
        ),
        ("no free whole GPU: 0 free, 1 requested", 403, "gpu_unavailable"),
        (
            "you have 64 connections open to the gateway (the limit is 64); close some",
            429,
            "connection_cap",
        ),
        ("HostConfig.Privileged: expected a boolean", 400, "bad_request"),
        ("No such image: ds01/bob/x:1", 404, "not_owner"),
        (
            "building ds01/bob/x: bob's namespace (ds01/bob/) belongs to another user",
            403,
            "not_owner",
        ),
        ("you have 3 images and may have 3 (max_images): remove one first", 403, "image_limit"),
        (
            "your images take 2.0G, your image storage limit (max_image_storage) is 2.0G",
            403,
            "image_limit",
        ),
        ("the image archive is larger than 1.0G (gateway.max_image_upload)", 413, "image_limit"),
        ("something new", 403, "other"),
    ],
)
def test_gateway_messages_map_to_bounded_reasons(message, status, reason):
    assert denial_reason(message, status) == reason
    assert reason in DENIAL_REASONS
