"""ds01d against the real engine: Docker events become audit events and partial cycles within a
second or two, reloads keep the last good configuration, the engine going away is survived."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ds01_core.domain.audit_log import EventLog, event_time
from ds01_core.transports.cli import cli
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as

DAEMON = [sys.executable, "-c", "from ds01_core.cycle.daemon import main; main()"]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="ds01-daemon-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_config(directory: Path, extra: dict | None = None) -> Path:
    data = {
        "paths": {
            "state_dir": str(directory / "state"),
            "log_dir": str(directory / "log"),
            "runtime_dir": str(directory / "run"),
        },
        "gpu": {"backend": "simulated"},
        "lifecycle": {"interval": "30s"},  # long: event-driven updates must not wait for it
    }
    data.update(extra or {})
    path = directory / "ds01.yaml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o644)
    return path


class Running:
    def __init__(self, config: Path, env: dict[str, str] | None = None):
        self.config = config
        self.log_file = open(config.parent / "ds01d.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*DAEMON, "--config", str(config)],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.events = EventLog(config.parent / "log" / "events.jsonl")

    def wait_event(self, predicate, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            for record in self.events.read(warn=lambda _m: None):
                if predicate(record):
                    return record
            time.sleep(0.05)
        raise AssertionError(f"no matching event within {timeout}s\n{self.output()}")

    def wait_output(self, text: str, timeout: float = 15.0) -> None:
        """Until the daemon has logged ``text`` (polled, never a fixed sleep)."""
        deadline = time.monotonic() + timeout
        while text not in self.output(tail=None):
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, f"no {text!r} within {timeout}s\n{self.output()}"
            time.sleep(0.05)

    def output(self, tail: int | None = 3000) -> str:
        self.log_file.flush()
        text = (self.config.parent / "ds01d.log").read_text()
        return text if tail is None else text[-tail:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        self.log_file.close()


def about(container_id: str, event_type: str):
    return lambda r: (
        r["event_type"] == event_type and ((r["details"] or {}).get("container_id") == container_id)
    )


def test_once_writes_a_snapshot_and_logs_what_changed(tmp_config, container_factory):
    config = tmp_config()
    run = subprocess.run(
        [*DAEMON, "--once", "--config", str(config)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    snapshot = json.loads((config.parent / "run" / "inventory.json").read_text())
    assert snapshot["version"] == 1 and "taken_at" in snapshot
    box = container_factory({"Labels": {"ds01.user": "alice"}})
    run = subprocess.run(
        [*DAEMON, "--once", "--config", str(config)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    log = EventLog(config.parent / "log" / "events.jsonl")
    found = [r for r in log.read() if about(box.id, "detection.container_discovered")(r)]
    assert len(found) == 1
    assert found[0]["user"] == "alice"
    assert found[0]["details"]["origin"] == "docker"
    assert found[0]["details"]["owner_source"] == "label:ds01.user"


def test_once_runs_the_steps_the_cycle_section_chooses(tmp_config, container_factory):
    """A step in ``cycle.disabled`` does not do its work; ``cycle.order`` may move it; an order
    that puts a step before ``detect`` stops start-up, named by its path."""
    box = container_factory({"Labels": {"aime.mlc.USER": "alice"}})  # label-migration's work

    def once(cycle: dict) -> subprocess.CompletedProcess:
        config = tmp_config({"cycle": cycle})  # same state and log directories each time
        return subprocess.run(
            [*DAEMON, "--once", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def recorded() -> list[dict]:
        log = EventLog(box_log)
        return [r for r in log.read() if about(box.id, "labels.migration_recorded")(r)]

    box_log = tmp_config().parent / "log" / "events.jsonl"
    run = once({"disabled": ["label-migration"]})
    assert run.returncode == 0, run.stderr
    assert recorded() == []
    run = once({"order": ["detect", "label-migration"]})
    assert run.returncode == 0, run.stderr
    assert len(recorded()) == 1
    run = once({"order": ["label-migration", "detect"]})
    assert run.returncode == 2
    assert "cycle.order[0]: 'label-migration' must run after 'detect', which it needs" in run.stderr


def test_docker_events_are_logged_and_picked_up_between_cycles(
    shared_dir, container_factory, unix_users, user_cli
):
    config = write_config(shared_dir)
    daemon = Running(config)
    try:
        daemon.wait_event(lambda r: r["event_type"] == "daemon.started")
        # the watcher sees what comes next, and the first full cycle (which has no earlier
        # inventory to compare with, so logs no discoveries) is over
        daemon.wait_output("following Docker events")
        daemon.wait_output("INFO ds01d: full cycle:")
        a = unix_users["ds01ta"]
        box = container_factory(
            {"Labels": {"ds01.user": a.name, "devcontainer.config_file": "/x.json"}}
        )
        created = daemon.wait_event(about(box.id, "container.created"))
        assert created["user"] == a.name
        assert created["details"]["origin"] == "devcontainer"
        started = daemon.wait_event(about(box.id, "container.started"))
        discovered = daemon.wait_event(about(box.id, "detection.container_discovered"))
        # the partial cycle runs within about a second of the event, not at the 30 s interval
        lag = (event_time(discovered) - event_time(started)).total_seconds()
        assert lag < 3.0, f"partial cycle took {lag:.2f}s"

        # users ask the API (a live look); admins may read the daemon's snapshot, with its age
        with running_api(config) as sock:
            seen = run_as(a, user_cli, ["workloads", "--json"], env={"DS01_API_SOCKET": sock})
        assert seen.returncode == 0, seen.stderr
        data = json.loads(seen.stdout)
        assert data["source"] == "live"
        assert box.id in {w["id"] for w in data["workloads"] if w["owner"] == a.name}
        result = CliRunner().invoke(cli, ["--config", str(config), "workloads", "--snapshot"])
        assert result.exit_code == 0 and result.output.startswith("snapshot from "), result.output
        snapshot = CliRunner().invoke(
            cli, ["--config", str(config), "workloads", "--snapshot", "--json"]
        )
        assert box.id in {w["id"] for w in json.loads(snapshot.output)["workloads"]}

        container_factory.engine.stop(box.id, timeout=1)
        stopped = daemon.wait_event(about(box.id, "container.stopped"))
        assert stopped["user"] == a.name and stopped["details"]["exit_code"] is not None
        daemon.wait_event(about(box.id, "detection.container_exited"))
        container_factory.engine.remove(box.id)
        removed = daemon.wait_event(about(box.id, "container.removed"))
        assert removed["user"] == a.name  # known from the cache even though it is gone
    finally:
        daemon.stop()


def test_sighup_reload_keeps_the_last_good_configuration(shared_dir):
    config = write_config(shared_dir)
    daemon = Running(config)
    try:
        daemon.wait_event(lambda r: r["event_type"] == "daemon.started")
        good = config.read_text()
        config.write_text(good + "limits:\n  defaults:\n    max_gpu_equivalents: two\n")
        daemon.proc.send_signal(signal.SIGHUP)
        refused = daemon.wait_event(lambda r: r["event_type"] == "config.reload_refused")
        assert (
            "limits.defaults.max_gpu_equivalents: expected a number, got 'two'"
            in (refused["details"]["error"])
        )
        assert daemon.proc.poll() is None
        config.write_text(good + "lifecycle:\n  interval: 20s\n")
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_event(lambda r: r["event_type"] == "config.reloaded")
    finally:
        daemon.stop()
    assert daemon.proc.returncode == 0
    assert any(r["event_type"] == "daemon.stopped" for r in daemon.events.read())


class SocketProxy:
    """A unix socket forwarding to the real engine socket, that the test can cut and restore:
    to the daemon it looks exactly like the engine going away and coming back."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock"):
        self.path, self.target = path, target
        self.server: socket.socket | None = None
        self.conns: list[socket.socket] = []

    def start(self) -> None:
        self.server = socket.socket(socket.AF_UNIX)
        if self.path.exists():
            self.path.unlink()
        self.server.bind(str(self.path))
        self.server.listen(16)
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.conns.clear()
        self.path.unlink()


def test_daemon_survives_the_engine_going_away(shared_dir, docker_engine):
    proxy = SocketProxy(shared_dir / "docker.sock")
    proxy.start()
    config = write_config(shared_dir)
    daemon = Running(config, env={"DOCKER_HOST": f"unix://{proxy.path}"})
    try:
        daemon.wait_event(lambda r: r["event_type"] == "daemon.started")
        daemon.wait_output("following Docker events")  # connected: cutting it is an outage
        proxy.cut()
        daemon.wait_event(lambda r: r["event_type"] == "daemon.docker_unreachable")
        assert daemon.proc.poll() is None
        proxy.start()
        daemon.wait_event(lambda r: r["event_type"] == "daemon.docker_reconnected", timeout=30)
    finally:
        daemon.stop()
