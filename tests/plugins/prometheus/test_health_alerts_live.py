"""GPU health live, end to end: a real ``ds01d`` on the simulated host, faults written to its
faults file, a real Prometheus with the shipped alert rules scraping its exporter. Each injected
fault (uncorrected ECC, a critical XID, heat, a GPU fallen off the bus) is the audit event, the
metric (in a scrape and in Prometheus) and the alert; once cleared, the metric is 0 and the
alert resolves. A drained GPU is never given to a real user's ``ds01 container create``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.helpers.config import write_config
from tests.helpers.gpu_health import inject
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as
from tests.helpers.waiting import wait_until
from tests.plugins.prometheus.alerting import Server, render_rules, start_prometheus
from tests.plugins.prometheus.exporter_helpers import Daemon, Samples, find, free_port, parse

pytestmark = pytest.mark.integration

GPUS = 8  # the simulated DGX-A100: GPUs 0-3 whole, 4-7 in MIG mode
WHOLE = ["0", "1", "2", "3"]  # what the built-in whole-GPU allocator may give (mig disabled)
XID_WINDOW = 10  # seconds an XID counts (gpu.health.xid_window): past the alert's firing
DEADLINE = 30.0  # generous for a loaded machine; each wait returns as soon as it holds


@attrs.frozen
class Stack:
    daemon: Daemon
    prometheus: Server
    faults: Path
    api: str  # ds01-api's socket, for the users' commands

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.daemon.port}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, cgroup_test_root, docker_engine, unix_users) -> Iterator[Stack]:
    """Once for the module (it is slow): ds01d with a 1 s cycle and its exporter on a 192xx
    port, Prometheus (1 s scrapes and evaluations) with the shipped alert rules, every ``for:``
    cut to 2 s (test_rules.py's promtool tests hold the real ones), and ds01-api."""
    base = tmp_path_factory.mktemp("healthlive")
    base.chmod(0o755)
    faults = base / "faults.yaml"
    inject(faults, {})
    port = free_port(19200, 19299)
    config = write_config(
        base,
        {
            "lifecycle": {"interval": "1s"},
            "gpu": {
                "simulated": {"faults_file": str(faults)},
                "health": {"xid_window": f"{XID_WINDOW}s"},  # drain: [unhealthy], the default
            },
            "limits": {"defaults": {"max_gpu_equivalents": 2, "allow_full_gpu": True}},
            "plugins": {
                "disabled": ["mig"],  # the built-in whole-GPU allocator: the first free GPU
                "cgroups": {"root": cgroup_test_root},
                "prometheus": {"listen": f"127.0.0.1:{port}"},
            },
        },
    )
    with contextlib.ExitStack() as cleanup:
        daemon = Daemon(config, port)
        cleanup.callback(daemon.stop)
        daemon.wait_metrics(all_healthy, "every GPU judged healthy")
        rules = render_rules(base)  # for: 2s
        prometheus = start_prometheus(base, rules, port, None, port=free_port(19200, 19299))
        cleanup.callback(prometheus.stop)
        wait_until(
            lambda: prometheus.query('ds01_gpu_healthy{job="ds01"}'),
            DEADLINE,
            "Prometheus' first scrape of ds01d",
            every=0.2,
        )
        api = cleanup.enter_context(running_api(config))
        yield Stack(daemon, prometheus, faults, api)


def all_healthy(samples: Samples) -> bool:
    healthy = find(samples, "ds01_gpu_healthy")
    return len(healthy) == GPUS and all(v == 1 for v in healthy.values())


def problem(samples: Samples, gpu: str, reason: str) -> float | None:
    """``ds01_gpu_health_problem{gpu, reason}`` in a scrape (None when absent)."""
    found = find(samples, "ds01_gpu_health_problem", gpu=gpu, reason=reason)
    assert len(found) <= 1, found
    return next(iter(found.values()), None)


def gauge(samples: Samples, name: str, gpu: str) -> float | None:
    found = find(samples, name, gpu=gpu)
    return next(iter(found.values()), None)


def changes(stack: Stack, gpu: str, after: int) -> list[dict[str, Any]]:
    """The ``gpu.health_changed`` events of ``gpu`` among the events after the first ``after``."""
    return [
        e
        for e in stack.daemon.events("gpu.health_changed")[after:]
        if str(e["details"]["gpu"]) == gpu
    ]


def at(event: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))


def alerts(stack: Stack, name: str, gpu: str, state: str = "firing") -> list[dict[str, Any]]:
    """Prometheus' alerts called ``name`` on ``gpu`` in ``state``."""
    return [
        a
        for a in stack.prometheus.alerts(state)
        if a["labels"]["alertname"] == name and a["labels"].get("gpu") == gpu
    ]


def ds01(stack: Stack, user: Any, user_cli: Path, *args: str) -> Any:
    result = run_as(user, user_cli, args, env={"DS01_API_SOCKET": stack.api})
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


@attrs.frozen
class Fault:
    gpu: str
    fault: dict[str, Any]
    reason: str
    state: str
    alert: str
    cleared: dict[str, Any] = attrs.Factory(dict)  # the faults file's entry once mended

    @property
    def drained(self) -> bool:
        return self.state == "unhealthy"


FAULTS = [
    # an uncorrected ECC count clears only with a driver reload: 0 (docs/gpu-telemetry.md)
    Fault("0", {"ecc_uncorrected": 2}, "ecc_uncorrected", "unhealthy", "GpuEccUncorrected",
          {"ecc_uncorrected": 0}),
    # an XID is an event: it counts until gpu.health.xid_window has passed
    Fault("1", {"xid": [79]}, "xid", "unhealthy", "GpuXidError"),
    # at the slowdown temperature (90 °C) and so within 5 °C of shutdown (95 °C): critical
    Fault("2", {"temperature": 90, "throttle": ["hw_thermal"]}, "thermal", "degraded",
          "GpuOverheating"),
    Fault("3", {"fell_off_bus": True}, "fell_off_bus", "unhealthy", "GpuFellOffBus"),
]  # fmt: skip


@pytest.mark.parametrize("case", FAULTS, ids=[f.reason for f in FAULTS])
def test_a_fault_is_an_event_a_metric_and_an_alert_until_it_clears(
    stack: Stack, case: Fault
) -> None:
    gpu, daemon, prometheus = case.gpu, stack.daemon, stack.prometheus
    seen = len(daemon.events("gpu.health_changed"))
    xids = len(daemon.events("gpu.xid"))
    inject(stack.faults, {int(gpu): case.fault})

    # (a) the audit event (and, for an XID, the XID's own)
    [event] = wait_until(lambda: changes(stack, gpu, seen), DEADLINE, f"GPU {gpu}'s event")
    changed = event["details"]
    assert changed["state"] == case.state and changed["previous_state"] == "ok", changed
    assert [r["code"] for r in changed["reasons"]] == [case.reason], changed
    assert changed["drained"] is case.drained
    if case.reason == "xid":
        [xid] = [e["details"] for e in daemon.events("gpu.xid")[xids:]]
        assert (str(xid["gpu"]), xid["xid"]) == (gpu, 79), xid
        assert changed["reasons"][0]["detail"].startswith("XID 79 (GPU fell off the bus) at ")

    # (b) the metric: in a scrape of the exporter ...
    samples = parse(
        daemon.wait_metrics(lambda s: problem(s, gpu, case.reason) == 1, f"{case.reason} = 1")
    )
    assert gauge(samples, "ds01_gpu_healthy", gpu) == 0
    assert gauge(samples, "ds01_gpu_drained", gpu) == float(case.drained)
    others = [g for g in map(str, range(GPUS)) if g != gpu]
    assert [problem(samples, g, case.reason) for g in others] == [0] * len(others)
    # ... and in Prometheus
    wanted = f'ds01_gpu_health_problem{{gpu="{gpu}",reason="{case.reason}"}}'
    [(labels, _one)] = wait_until(
        lambda: [(k, v) for k, v in prometheus.query(wanted).items() if v == 1],
        DEADLINE,
        f"{wanted} = 1 in Prometheus",
        every=0.2,
    )
    assert dict(labels)["instance"] == stack.instance and dict(labels)["job"] == "ds01"

    # (c) the shipped alert fires, critical, for this GPU only
    [firing] = wait_until(
        lambda: alerts(stack, case.alert, gpu), DEADLINE, f"{case.alert} firing", every=0.2
    )
    assert firing["labels"]["severity"] == "critical", firing
    assert firing["labels"]["topic"] == "gpu-health"
    assert firing["labels"]["instance"] == stack.instance
    assert f"GPU {gpu}" in firing["annotations"]["summary"]
    if case.drained:  # the drain has its own (warning) alert
        wait_until(lambda: alerts(stack, "GpuDrained", gpu), DEADLINE, "GpuDrained", every=0.2)
    assert not [
        a
        for a in prometheus.alerts()
        if a["labels"]["alertname"] == case.alert and a["labels"].get("gpu") != gpu
    ]

    # cleared: the event back to ok, the metric 0, the alert resolved
    inject(stack.faults, {int(gpu): case.cleared} if case.cleared else {})
    timeout = DEADLINE + (XID_WINDOW if case.reason == "xid" else 0)
    back = wait_until(lambda: changes(stack, gpu, seen)[1:], timeout, f"GPU {gpu} back to ok")
    assert [(c["details"]["state"], c["details"]["previous_state"]) for c in back] == [
        ("ok", case.state)
    ]
    assert back[0]["details"]["drained"] is False and back[0]["details"]["reasons"] == []
    if case.reason == "xid":  # the XID counts for its whole window, not only while listed
        assert (at(back[0]) - at(event)).total_seconds() >= XID_WINDOW - 0.5
    samples = parse(
        daemon.wait_metrics(lambda s: problem(s, gpu, case.reason) == 0, f"{case.reason} = 0")
    )
    assert gauge(samples, "ds01_gpu_healthy", gpu) == 1
    assert gauge(samples, "ds01_gpu_drained", gpu) == 0
    wait_until(
        lambda: [v for v in prometheus.query(wanted).values() if v == 0],
        DEADLINE,
        f"{wanted} = 0 in Prometheus",
        every=0.2,
    )
    for name in (case.alert, "GpuDrained"):
        wait_until(
            lambda name=name: not alerts(stack, name, gpu) + alerts(stack, name, gpu, "pending"),
            DEADLINE,
            f"{name} on GPU {gpu} resolved",
            every=0.2,
        )


def test_a_drained_gpu_is_never_allocated_to_a_user(
    stack: Stack, unix_users, user_cli, docker_engine, test_image, container_prefix
) -> None:
    """GPUs 0 and 1 with uncorrected ECC errors, GPU 2 fallen off the bus: ds01ta's ``ds01
    container create --gpus 1`` gets GPU 3, the only whole GPU left (the allocator would take
    the first free one); the next is refused naming the drain; ``ds01 gpu health`` says why."""
    alice = unix_users["ds01ta"]
    drained = {"0": "ecc_uncorrected", "1": "ecc_uncorrected", "2": "fell_off_bus"}
    inject(
        stack.faults,
        {0: {"ecc_uncorrected": 3}, 1: {"ecc_uncorrected": 3}, 2: {"fell_off_bus": True}},
    )

    def seen_drained() -> list[dict[str, Any]]:
        answer = ds01(stack, alice, user_cli, "gpu", "health", "--json")
        assert answer.returncode == 0, answer.stderr
        gpus = json.loads(answer.stdout)["gpus"]
        out = [g for g in gpus if g["drained"]]
        return out if sorted(g["index"] for g in out) == [0, 1, 2] else []

    shown = wait_until(seen_drained, DEADLINE, "GPUs 0-2 drained in ds01 gpu health", every=0.5)
    assert {str(g["index"]): [r["code"] for r in g["reasons"]] for g in shown} == {
        k: [v] for k, v in drained.items()
    }
    assert all(g["state"] == "unhealthy" for g in shown)

    names = [f"{container_prefix}-drain-{i}" for i in range(2)]
    try:
        got = ds01(
            stack, alice, user_cli, "container", "create", names[0], "--image", test_image,
            "--gpus", "1", "--json", "sleep", "3600",
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["slots"] == ["3"]
        labels = docker_engine.inspect_container(names[0])["Config"]["Labels"]
        assert labels["ds01.gpu.slots"] == "3"

        refused = ds01(
            stack, alice, user_cli, "container", "create", names[1], "--image", test_image,
            "--gpus", "1",
        )  # fmt: skip
        assert refused.returncode != 0, refused.stdout
        assert "no free whole GPU: 0 free, 1 requested" in refused.stderr
        # the drained GPUs that had a free slot (GPU 2, lost, has none to give)
        assert "GPUs 0 (unhealthy), 1 (unhealthy) are drained, see `ds01 gpu health`" in (
            refused.stderr
        )
        assert docker_engine.inspect_container(names[1]) is None
    finally:
        for name in names:
            ds01(stack, alice, user_cli, "container", "remove", name, "--force")
        inject(stack.faults, {0: {"ecc_uncorrected": 0}, 1: {"ecc_uncorrected": 0}})
    stack.daemon.wait_metrics(all_healthy, "every GPU healthy again")
