"""The exporter in a real ``ds01d`` (real Docker engine, simulated GPUs): a container created with
a GPU shows up in a scrape over HTTP with its holder, and its series vanish once it is removed;
``promtool check metrics`` accepts the page."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ds01_core.domain.audit_log import EventLog
from ds01_core.transports.cli import cli
from tests.conftest import unavailable
from tests.helpers.waiting import wait_until
from tests.plugins.prometheus.exporter_helpers import (
    Daemon,
    find,
    free_port,
    parse,
    scrape,
    value,
)

IMAGE = "ds01-test:busybox"


@pytest.fixture
def daemon(tmp_config, cgroup_test_root, docker_engine) -> Iterator[Daemon]:
    port = free_port()
    config = tmp_config(
        {
            "lifecycle": {"interval": "2s"},
            "limits": {"defaults": {"max_gpu_equivalents": 2, "allow_full_gpu": True}},
            "plugins": {
                "disabled": ["mig"],  # the built-in whole-GPU allocator: slot "0" first
                "cgroups": {"root": cgroup_test_root},
                "prometheus": {"listen": f"127.0.0.1:{port}"},
            },
        }
    )
    running = Daemon(config, port)
    try:
        running.wait_metrics(
            lambda s: find(s, "ds01_last_cycle_timestamp_seconds") != {}, "first full cycle"
        )
        yield running
    finally:
        running.stop()


def ds01(config: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool is not installed (bash scripts/ci/setup-monitoring.sh)")
    assert path is not None
    return path


def test_an_allocation_appears_in_a_scrape_and_vanishes_with_its_container(
    daemon, unix_users, container_prefix, docker_engine, promtool
):
    user = unix_users["ds01ta"].name
    name = f"{container_prefix}-exported"
    ds01(daemon.config, "container", "create", name, "--image", IMAGE, "--gpus", "1", "--as", user)
    ds01(daemon.config, "container", "start", name, "--as", user)
    try:

        def seen(s) -> bool:  # the allocation is recorded a moment before Docker has the box
            return (
                bool(find(s, "ds01_slot_allocated", container=name, user=user))
                and bool(find(s, "ds01_workloads", kind="container", origin="ds01"))
                and value(s, "ds01_user_containers", user=user) >= 1
            )

        page = daemon.wait_metrics(seen, f"allocation series for {name}")
        samples = parse(page)
        ((labels, one),) = find(samples, "ds01_slot_allocated", container=name).items()
        got = dict(labels)
        held = docker_engine.inspect_container(name)["Config"]["Labels"]
        assert one == 1 and got["slot"] == held["ds01.gpu.slots"] == got["gpu"]
        assert got["uuid"] == held["ds01.gpu.uuids"] and got["profile"] == ""
        # the shared engine may hold other runs' containers of this user: at least ours
        assert value(samples, "ds01_user_gpu_equivalents", user=user) >= 1
        # the cgroups plugin's reading of the user's cgroup (a full cycle reads it)
        samples = parse(
            daemon.wait_metrics(
                lambda s: bool(find(s, "ds01_user_memory_bytes", user=user)),
                f"memory of {user}'s cgroup",
            )
        )
        assert value(samples, "ds01_user_memory_bytes", user=user) > 0
        assert value(samples, "ds01_gpu_allocated_gpu_equivalents") >= 1
        assert value(samples, "ds01_user_gpu_quota", user=user) == 2

        check = subprocess.run(
            [promtool, "check", "metrics"], input=page, capture_output=True, text=True, timeout=60
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.strip() == "" and check.stderr.strip() == "", (
            check.stdout + check.stderr
        )
    finally:
        with contextlib.suppress(Exception):
            ds01(daemon.config, "container", "remove", name, "--force", "--as", user)
    assert docker_engine.inspect_container(name) is None
    daemon.wait_metrics(
        lambda s: (
            not find(s, "ds01_slot_allocated", container=name)
            and not find(s, "ds01_slot_idle", container=name)
        ),
        f"{name}'s series gone",
    )
    assert os.path.exists(daemon.config)  # the daemon's state stays put: nothing else changed


def test_a_reload_moves_the_listener_and_a_busy_port_is_a_plugin_failure(daemon):
    """SIGHUP: the old listener stops, the new one starts with the new address; an address in
    use is a plugin.failed event and ds01d carries on."""
    events = EventLog(daemon.config.parent / "log" / "events.jsonl")
    text = daemon.config.read_text()
    new_port = free_port(daemon.port + 1)
    daemon.config.write_text(text.replace(f"127.0.0.1:{daemon.port}", f"127.0.0.1:{new_port}"))
    daemon.proc.send_signal(signal.SIGHUP)
    old_port, daemon.port = daemon.port, new_port
    daemon.wait_metrics(lambda s: bool(find(s, "ds01_build_info")), "the new listener")
    with pytest.raises(OSError):
        scrape(f"http://127.0.0.1:{old_port}/metrics")

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past our TIME_WAITs
        taken.bind(("127.0.0.1", old_port))
        taken.listen()
        daemon.config.write_text(text)  # back to the old port, which is now taken
        daemon.proc.send_signal(signal.SIGHUP)
        failed = wait_until(
            lambda: [
                e
                for e in events.read(warn=lambda _m: None)
                if e["event_type"] == "plugin.failed"
                and e["details"].get("plugin") == "prometheus-exporter"
            ],
            timeout=30,
            what="plugin.failed for the exporter",
        )
    assert "cannot start" in failed[0]["details"]["error"]
    assert daemon.proc.poll() is None
