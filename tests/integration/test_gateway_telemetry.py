"""The gateway's telemetry from a real ``ds01-gateway`` process and real users: requests counted
as allowed or denied, each denial under its reason, the latency of a real GPU allocation — in the
file the gateway writes (world-readable, no user names) — and the exporter's view of it:
``ds01_gateway_up`` 1 while the gateway runs and 0 once it has stopped. ``ds01-api`` records
the allocations of users' ``ds01 container create`` the same way."""

from __future__ import annotations

import json
import os
import stat

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ds01_core.framework.runtime import load_runtime
from ds01_core.framework.telemetry import read_process_telemetry, telemetry_path
from ds01_prometheus.process_metrics import ProcessMetrics
from tests.helpers.config import write_config
from tests.helpers.gateway import docker, http, raw_as, running_gateway, status_of
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

LIMITS = {
    "defaults": {
        "max_gpu_equivalents": 1,
        "max_gpu_slots_per_container": 1,
        "allow_full_gpu": True,
    }
}


def counts(run_dir, name: str) -> dict[tuple[str, ...], float]:
    (snap,) = [s for s in read_process_telemetry(run_dir) if s.process == "ds01-gateway"]
    return snap.counters[name].values


def scrape(metrics: ProcessMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(metrics)  # type: ignore[arg-type]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }


def test_gateway_counts_real_requests_denials_and_allocations(
    tmp_path, unix_users, test_image, cgroup_test_root, container_prefix
):
    alice, bob = unix_users["ds01ta"], unix_users["ds01tb"]
    config = write_config(
        tmp_path,
        {
            "limits": LIMITS,
            "plugins": {"disabled": ["mig"], "cgroups": {"root": cgroup_test_root}},
        },
    )
    run_dir = tmp_path / "run"
    box = f"{container_prefix}-telemetry"
    metrics = ProcessMetrics([str(tmp_path)])
    with running_gateway(config) as sock:
        runtime = load_runtime(str(config))
        # the exporter reads the gateway socket from the configuration (the test's own socket)
        runtime.config.gateway.socket = sock
        made = docker(alice, sock, "run", "-d", "--name", box, "--gpus", "1", test_image,
                      "sleep", "600")  # fmt: skip
        assert made.returncode == 0, made.stderr
        try:
            privileged = {"Image": test_image, "HostConfig": {"Privileged": True}}
            answer = raw_as(bob.uid, bob.gid, sock, http("POST", "/containers/create", privileged))
            assert status_of(answer) == 403
            answer = raw_as(bob.uid, bob.gid, sock, http("GET", f"/containers/{box}/json"))
            assert status_of(answer) == 403
            mount = {"Image": test_image, "HostConfig": {"Binds": ["/etc:/host-etc"]}}
            answer = raw_as(alice.uid, alice.gid, sock, http("POST", "/containers/create", mount))
            assert status_of(answer) == 403
            assert status_of(raw_as(alice.uid, alice.gid, sock, http("GET", "/_ping"))) == 200

            # the file is rewritten every few seconds: wait for the last denial to be in it
            wait_until(
                lambda: counts(run_dir, "ds01_gateway_denials_total").get(("host_mount",)),
                timeout=20,
                what="the gateway's telemetry file with the mount denial",
            )
            denials = counts(run_dir, "ds01_gateway_denials_total")
            assert denials[("privileged",)] == 1.0
            assert denials[("not_owner",)] == 1.0
            assert denials[("host_mount",)] == 1.0
            assert denials[("quota",)] == 0.0
            requests = counts(run_dir, "ds01_gateway_requests_total")
            assert requests[("denied",)] == 3.0
            assert requests[("allowed",)] >= 3.0  # the docker run's create, start, ping, ...
            (snap,) = read_process_telemetry(run_dir)
            allocation = snap.histograms["ds01_allocation_duration_seconds"]
            assert sum(allocation.counts) == 1  # the one `--gpus 1` allocation
            assert 0 < allocation.sum < 30

            path = telemetry_path(run_dir, "ds01-gateway")
            assert stat.S_IMODE(path.stat().st_mode) == 0o644
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
            text = path.read_text()
            assert alice.name not in text and bob.name not in text and box not in text
            assert json.loads(text)["pid"] != os.getpid()

            metrics.update(runtime, None)
            metrics.wait_for_probe()
            got = scrape(metrics)
            assert got[("ds01_gateway_up", ())] == 1.0
            assert got[("ds01_gateway_denials_total", (("reason", "privileged"),))] == 1.0
            assert got[("ds01_allocation_duration_seconds_count", ())] == 1.0
        finally:
            docker(alice, sock, "rm", "-f", box)
    metrics.update(runtime, None)  # the gateway has stopped: its socket answers no more
    metrics.wait_for_probe()
    got = scrape(metrics)
    assert got[("ds01_gateway_up", ())] == 0.0
    # the counts written at its exit stay readable
    assert got[("ds01_gateway_denials_total", (("reason", "host_mount"),))] == 1.0


def test_the_api_socket_records_a_users_allocation(
    tmp_path, unix_users, user_cli, test_image, container_prefix, docker_engine
):
    alice = unix_users["ds01ta"]
    config = write_config(tmp_path, {"limits": LIMITS})
    run_dir = tmp_path / "run"
    name = f"{container_prefix}-api-telemetry"
    with running_api(config) as sock:
        try:
            made = run_as(
                alice,
                user_cli,
                ["container", "create", name, "--image", test_image, "--gpus", "1", "sleep", "60"],
                env={"DS01_API_SOCKET": sock},
            )
            assert made.returncode == 0, made.stderr
        finally:
            if docker_engine.inspect_container(name) is not None:
                docker_engine.remove(name, force=True)
    # written at the server's exit at the latest
    (snap,) = [s for s in read_process_telemetry(run_dir) if s.process == "ds01-api"]
    allocation = snap.histograms["ds01_allocation_duration_seconds"]
    assert sum(allocation.counts) == 1
    assert 0 < allocation.sum < 30
    assert alice.name not in telemetry_path(run_dir, "ds01-api").read_text()
