"""The hooks that let a plugin publish the server's state: ``cycle_finished`` after every cycle
and ``daemon_services`` run inside ``ds01d``, each failure isolated and written to the audit log."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ds01_core.cycle.daemon import Daemon
from ds01_core.cycle.pipeline import run_cycle
from ds01_core.domain.config import build_config
from ds01_core.framework.daemon_services import start_services, stop_services
from ds01_core.framework.hookspecs import hookimpl
from ds01_core.framework.manager import make_plugin_host
from ds01_core.framework.runtime import Runtime


def base(tmp_path: Path) -> dict:
    return {
        "paths": {k: str(tmp_path / k) for k in ("state_dir", "log_dir", "runtime_dir")},
        "gpu": {"backend": "simulated"},
    }


@pytest.fixture
def make_runtime(tmp_path):
    def make(*plugins: tuple[str, object]) -> Runtime:
        host = make_plugin_host(
            extra=plugins,
            disabled=["docker-detector", "gpu-process-detector"],
            load_entry_points=False,
        )
        return Runtime(build_config(base(tmp_path), sections=host.config_sections()), host)

    return make


class Watcher:
    def __init__(self) -> None:
        self.reports: list = []

    @hookimpl
    def cycle_finished(self, runtime, report):
        self.reports.append(report)


def test_hook_cycle_finished(make_runtime):
    watcher = Watcher()
    runtime = make_runtime(("watcher", watcher))
    full = run_cycle(runtime, workloads=[])
    partial = run_cycle(runtime, partial=True, workloads=[])
    assert watcher.reports == [full, partial]
    assert (full.partial, partial.partial) == (False, True)
    assert full.started_at is not None and full.seconds > 0
    # every step that ran was timed
    assert set(full.step_seconds) == set(full.steps) and "idle" in full.step_seconds
    assert all(s >= 0 for s in full.step_seconds.values())


def test_the_report_carries_the_limits_the_cycle_resolved(make_runtime, tmp_path):
    """A plugin publishing per-user figures reuses them instead of resolving each user again."""
    from ds01_core.domain.model import Workload

    watcher = Watcher()
    runtime = make_runtime(("watcher", watcher))
    box = Workload("container", "c1" * 8, "box", "ds01", "alice", "label", "running")
    report = run_cycle(runtime, workloads=[box])
    assert "alice" in report.limits
    assert report.limits["alice"].get("max_gpu_equivalents") is not None


def test_a_failing_cycle_finished_costs_only_itself(make_runtime):
    class Broken:
        @hookimpl
        def cycle_finished(self):
            raise RuntimeError("exporter broke")

    watcher = Watcher()
    runtime = make_runtime(("broken", Broken()), ("watcher", watcher))
    report = run_cycle(runtime, workloads=[])
    assert watcher.reports == [report]
    failed = runtime.events.query(type_prefix="plugin.failed")
    assert [(e["details"]["plugin"], e["details"]["hook"]) for e in failed] == [
        ("broken", "cycle_finished")
    ]


class Service:
    def __init__(self, name: str, log: list, fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    def start(self) -> None:
        self.log.append(("start", self.name))
        if self.fail:
            raise OSError("address already in use")

    def stop(self) -> None:
        self.log.append(("stop", self.name))


def test_hook_daemon_services(make_runtime):
    log: list = []

    class Plugin:
        @hookimpl
        def daemon_services(self, runtime):
            return [Service("a", log), Service("busy", log, fail=True), Service("b", log)]

    class Broken:
        @hookimpl
        def daemon_services(self):
            raise RuntimeError("no services today")

    runtime = make_runtime(("plugin", Plugin()), ("broken", Broken()))
    running = start_services(runtime)
    assert [s.name for s in running] == ["a", "b"]
    # the one that could not start was asked to stop (to let go of what it took)
    assert log == [("start", "a"), ("start", "busy"), ("stop", "busy"), ("start", "b")]
    failed = runtime.events.query(type_prefix="plugin.failed")
    assert sorted((e["details"]["plugin"], e["details"]["error"]) for e in failed) == [
        ("broken", "RuntimeError: no services today"),
        ("busy", "cannot start: address already in use"),
    ]
    log.clear()
    stop_services(running)
    assert log == [("stop", "b"), ("stop", "a")] and running == []


def test_the_daemon_runs_services_and_restarts_them_on_reload(tmp_path, monkeypatch):
    """ds01d starts the services before its first cycle, restarts them with the new runtime on
    a reload, and stops them when it exits."""
    import yaml

    log: list = []
    seen_runtimes: list = []

    class Plugin:
        @hookimpl
        def daemon_services(self, runtime):
            seen_runtimes.append(runtime)
            return [Service(f"svc{len(seen_runtimes)}", log)]

    def host(*_a, **_k):
        return make_plugin_host(
            extra=[("plugin", Plugin())],
            disabled=["docker-detector", "gpu-process-detector"],
            load_entry_points=False,
        )

    monkeypatch.setattr("ds01_core.framework.runtime.make_plugin_host", host)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**base(tmp_path), "lifecycle": {"interval": "1h"}}))
    daemon = Daemon(str(path))
    thread = threading.Thread(target=daemon.run_forever)
    thread.start()
    try:
        for _ in range(100):
            if daemon.cycles:
                break
            threading.Event().wait(0.05)
        assert log == [("start", "svc1")] and seen_runtimes == [daemon.runtime]
        assert daemon.reload()
        assert log == [("start", "svc1"), ("stop", "svc1"), ("start", "svc2")]
        assert seen_runtimes[-1] is daemon.runtime
    finally:
        daemon.stop_requested.set()
        daemon.wake.set()
        thread.join(10)
    assert log[-1] == ("stop", "svc2")
