"""The exporter's process metrics: audit events written by other processes are counted from the
exporter's start and across a rotation, labels stay bounded, the gateway probe and the
filesystem sizes come from the real socket and ``statvfs``, and the output passes
``promtool check metrics``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ds01_core.framework.runtime import load_runtime
from ds01_core.framework.telemetry import Registry, telemetry_path, write_snapshot
from ds01_prometheus.process_metrics import MAX_LABEL_VALUES, ProcessMetrics
from tests.helpers.config import write_config

WRITER = """
import sys
from ds01_core.domain.audit_log import EventLog
from ds01_core.domain.model import Event
log = EventLog(sys.argv[1])
for spec in sys.argv[2:]:
    kind, source, plugin = (spec.split(",") + ["", ""])[:3]
    log.append(Event(kind, "ds01ta", source or "test", {"plugin": plugin} if plugin else {}))
"""


def write_events(path: Path, *specs: str) -> None:
    """Events appended by another process (``type[,source[,plugin]]`` each)."""
    subprocess.run([sys.executable, "-c", WRITER, str(path), *specs], check=True)


def samples(metrics: ProcessMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = render(metrics)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def render(metrics: ProcessMetrics) -> str:
    registry = CollectorRegistry()
    registry.register(metrics)  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: bash scripts/ci/setup-monitoring.sh installs it")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def runtime(tmp_path):
    config = write_config(tmp_path, {"gateway": {"socket": str(tmp_path / "run" / "gw.sock")}})
    return load_runtime(str(config))


def test_events_from_other_processes_are_counted_from_the_exporter_start(runtime, tmp_path):
    log = runtime.events.path
    write_events(log, "container.discovered")  # before the exporter: not counted
    metrics = ProcessMetrics([str(tmp_path)])
    metrics.update(runtime, None)
    write_events(
        log,
        "container.discovered",
        "container.discovered",
        "plugin.failed,ds01-mig,ds01-mig",
        "notify.delivered,email",
        "notify.failed,email",
        "notify.failed,teams",
        "lifecycle.idle_warning",
        "lifecycle.runtime_stop",
        "lifecycle.keepalive",
    )
    metrics.update(runtime, None)
    got = samples(metrics)
    assert got[("ds01_events_total", (("type", "container.discovered"),))] == 2.0
    assert got[("ds01_events_total", (("type", "lifecycle.keepalive"),))] == 1.0
    assert got[("ds01_plugin_errors_total", (("plugin", "ds01-mig"),))] == 1.0
    assert got[("ds01_notices_total", (("channel", "email"), ("outcome", "delivered")))] == 1.0
    assert got[("ds01_notices_total", (("channel", "email"), ("outcome", "failed")))] == 1.0
    assert got[("ds01_notices_total", (("channel", "teams"), ("outcome", "failed")))] == 1.0
    assert got[("ds01_lifecycle_actions_total", (("action", "idle_warning"),))] == 1.0
    assert got[("ds01_lifecycle_actions_total", (("action", "runtime_stop"),))] == 1.0
    assert got[("ds01_lifecycle_actions_total", (("action", "idle_stop"),))] == 0.0
    assert ("ds01_lifecycle_actions_total", (("action", "keepalive"),)) not in got
    metrics.update(runtime, None)  # nothing new: nothing counted twice
    again = samples(metrics)
    counted = [k for k in got if not k[0].startswith(("ds01_filesystem", "ds01_gateway_up"))]
    assert {k: again[k] for k in counted} == {k: got[k] for k in counted}


def test_the_follower_survives_a_rotation_by_rename(runtime, tmp_path):
    log = runtime.events.path
    write_events(log, "a.start")
    metrics = ProcessMetrics([str(tmp_path)])
    metrics.update(runtime, None)
    write_events(log, "a.before_rotation")  # not read yet when the file is renamed
    os.rename(log, f"{log}.1")
    write_events(log, "a.after_rotation", "a.after_rotation")  # a fresh file
    metrics.update(runtime, None)
    write_events(log, "a.later")
    os.rename(log, f"{log}.2")
    metrics.update(runtime, None)  # the renamed file is read; no live file now
    write_events(log, "a.later")
    metrics.update(runtime, None)
    got = samples(metrics)
    assert got[("ds01_events_total", (("type", "a.before_rotation"),))] == 1.0
    assert got[("ds01_events_total", (("type", "a.after_rotation"),))] == 2.0
    assert got[("ds01_events_total", (("type", "a.later"),))] == 2.0
    assert ("ds01_events_total", (("type", "a.start"),)) not in got


def test_distinct_label_values_are_capped(runtime, tmp_path):
    metrics = ProcessMetrics([str(tmp_path)])
    metrics.update(runtime, None)
    write_events(runtime.events.path, *(f"many.t{i}" for i in range(MAX_LABEL_VALUES + 3)))
    metrics.update(runtime, None)
    events = {k: v for k, v in samples(metrics).items() if k[0] == "ds01_events_total"}
    assert len(events) == MAX_LABEL_VALUES + 1
    assert events[("ds01_events_total", (("type", "other"),))] == 3.0


def test_gateway_probe_and_filesystems(runtime, tmp_path):
    metrics = ProcessMetrics([str(tmp_path), "/nonexistent-ds01"])
    metrics.update(runtime, None)
    metrics.wait_for_probe()
    got = samples(metrics)
    assert got[("ds01_gateway_up", ())] == 0.0  # nothing listens on the socket
    st = os.statvfs(tmp_path)
    assert got[("ds01_filesystem_size_bytes", (("path", str(tmp_path)),))] == float(
        st.f_blocks * st.f_frsize
    )
    avail = got[("ds01_filesystem_avail_bytes", (("path", str(tmp_path)),))]
    assert abs(avail - st.f_bavail * st.f_frsize) < 64 * 1024 * 1024  # others write meanwhile
    assert not [k for k in got if ("path", "/nonexistent-ds01") in k[1]]

    # a socket that answers HTTP: up
    path = str(tmp_path / "run" / "gw.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
        conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    metrics.update(runtime, None)
    metrics.wait_for_probe()
    assert samples(metrics)[("ds01_gateway_up", ())] == 1.0
    server.close()


def test_process_telemetry_is_summed_and_passes_promtool(runtime, tmp_path):
    run = runtime.config.paths.runtime_dir
    for process, denied, alloc in (("ds01-gateway", 3, 0.02), ("ds01-api", 2, 0.3)):
        registry = Registry()
        registry.counter("ds01_gateway_requests_total", "Requests.", ("outcome",)).inc(
            "denied", amount=denied
        )
        registry.counter("ds01_gateway_denials_total", "Denials.", ("reason",)).inc("quota")
        hist = registry.histogram(
            "ds01_allocation_duration_seconds", "Alloc.", (0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
        )
        hist.observe(alloc)
        write_snapshot(telemetry_path(run, process), registry.snapshot(process))
    metrics = ProcessMetrics([str(tmp_path)])
    metrics.update(runtime, None)
    write_events(runtime.events.path, "plugin.failed,x,ds01-x", "notify.delivered,email")
    metrics.update(runtime, None)
    metrics.wait_for_probe()
    text = render(metrics)
    promtool_check(text)
    got = samples(metrics)
    assert got[("ds01_gateway_requests_total", (("outcome", "denied"),))] == 5.0
    assert got[("ds01_gateway_denials_total", (("reason", "quota"),))] == 2.0
    assert got[("ds01_allocation_duration_seconds_count", ())] == 2.0
    assert got[("ds01_allocation_duration_seconds_bucket", (("le", "0.025"),))] == 1.0
    assert got[("ds01_allocation_duration_seconds_bucket", (("le", "+Inf"),))] == 2.0
    assert got[("ds01_allocation_duration_seconds_sum", ())] == pytest.approx(0.32)
    for name in (
        "ds01_events_total",
        "ds01_plugin_errors_total",
        "ds01_lifecycle_actions_total",
        "ds01_notices_total",
        "ds01_gateway_up",
        "ds01_filesystem_avail_bytes",
    ):
        assert f"# TYPE {name} " in text, name


def test_filesystems_come_from_the_plugin_section_by_default(tmp_path):
    config = write_config(tmp_path, {"plugins": {"prometheus": {"filesystems": [str(tmp_path)]}}})
    runtime = load_runtime(str(config))
    metrics = ProcessMetrics()  # as the exporter makes it
    metrics.update(runtime, None)
    metrics.wait_for_probe()
    paths = {dict(k[1])["path"] for k in samples(metrics) if k[0] == "ds01_filesystem_size_bytes"}
    assert paths == {str(tmp_path)}

    (tmp_path / "plain").mkdir()
    unset = load_runtime(str(write_config(tmp_path / "plain")))
    metrics = ProcessMetrics()
    metrics.update(unset, None)
    metrics.wait_for_probe()
    paths = {dict(k[1])["path"] for k in samples(metrics) if k[0] == "ds01_filesystem_size_bytes"}
    cfg = unset.config.paths
    assert {str(cfg.state_dir), str(cfg.log_dir)} <= paths
    assert paths <= {str(cfg.state_dir), str(cfg.log_dir), "/var/lib/docker"}
