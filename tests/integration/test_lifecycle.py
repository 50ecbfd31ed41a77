"""The lifecycle on the real engine with timeouts of seconds: idle containers warned, then
stopped; busy, keep-alive and exempted ones left running; leftovers removed; containers a user
names or labels as Dev Containers or compose services held to the ordinary limits."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from click.testing import CliRunner

from ds01_core.cycle.pipeline import detect
from ds01_core.cycle.upkeep import UpkeepStep
from ds01_core.domain.audit_log import EventLog
from ds01_core.domain.state.grants import add_grant
from ds01_core.framework.runtime import load_runtime
from ds01_core.transports.cli import cli


def make_config(tmp_config, cgroup_test_root):
    return tmp_config(
        {
            "lifecycle": {
                "idle_window": 2,
                "start_grace": "0s",
                "warn_at": [0.3],
                "stop_grace": "1s",
                "created_timeout": "1s",
                "container_hold_after_stop": "1s",
                "origins": {
                    # more lenient than the limit: no effect (a user could claim the origin)
                    "devcontainer": {"idle_timeout": "never", "max_runtime": "never"},
                    "compose": {"max_runtime": "2s"},  # stricter: applies
                },
            },
            "limits": {"defaults": {"cpu_idle_threshold": 0.2, "idle_timeout": "3s"}},
            "plugins": {"cgroups": {"root": cgroup_test_root}},
        }
    )


def cycles(runtime, ids, seconds):
    """Run the lifecycle on this test's containers only, once a second."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        mine = [w for w in detect(runtime) if w.id in ids]
        for event in UpkeepStep(runtime).run(mine):
            runtime.events.append(event)
        time.sleep(1)


def test_idle_busy_keepalive_exempt_devcontainer_compose(
    tmp_config, cgroup_test_root, container_factory, docker_engine
):
    config = make_config(tmp_config, cgroup_test_root)
    runtime = load_runtime(str(config))
    idle = container_factory({"Labels": {"ds01.user": "alice"}})
    busy = container_factory(
        {"Labels": {"ds01.user": "alice"}, "Cmd": ["sh", "-c", "while :; do :; done"]}
    )
    kept = container_factory({"Labels": {"ds01.user": "alice"}})
    exempted = container_factory({"Labels": {"ds01.user": "bob"}})
    dev = container_factory({"Labels": {"ds01.user": "alice", "devcontainer.config_file": "/x"}})
    compose = container_factory(
        {"Labels": {"ds01.user": "alice", "com.docker.compose.project": "p"}}
    )
    protected = container_factory({"Labels": {"ds01.user": "alice", "ds01.protected": "true"}})
    now = runtime.now()
    with runtime.state.transaction() as db:
        add_grant(
            db,
            "keepalive",
            "alice",
            f"container:{kept.id}",
            now + dt.timedelta(hours=1),
            "test",
            "alice",
            now,
        )
        add_grant(
            db, "exempt_idle", "bob", "user:bob", now + dt.timedelta(hours=1), "test", "root", now
        )
    ids = {c.id for c in (idle, busy, kept, exempted, dev, compose, protected)}
    cycles(runtime, ids, 9)

    def running(c):  # a stopped one may already be removed (container_hold_after_stop 1s)
        inspect = docker_engine.inspect_container(c.id)
        return bool(inspect and inspect["State"]["Running"])

    assert not running(idle) and not running(dev)  # a devcontainer cannot claim "never"
    assert running(busy) and running(kept) and running(exempted)
    assert running(protected)
    assert not running(compose)  # its own, stricter, policy: max_runtime 2s
    log = EventLog(config.parent / "log" / "events.jsonl")
    by_type: dict[str, list[dict]] = {}
    for record in log.read():
        by_type.setdefault(record["event_type"], []).append(record)
    stop = next(
        e for e in by_type["lifecycle.idle_stop"] if e["details"]["container_id"] == idle.id
    )
    assert stop["user"] == "alice" and stop["details"]["seconds"] >= 3
    assert stop["details"]["limit"] == 3 and stop["details"]["signals"]["cpu"] is False
    warned = [
        e for e in by_type["lifecycle.idle_warning"] if e["details"]["container_id"] == idle.id
    ]
    assert len(warned) == 1  # once per threshold
    assert event_time(warned[0]) <= event_time(stop)
    runtime_stop = by_type["lifecycle.runtime_stop"]
    assert [e["details"]["container_id"] for e in runtime_stop] == [compose.id]
    dev_stop = [e for e in by_type["lifecycle.idle_stop"] if e["details"]["container_id"] == dev.id]
    assert [e["details"]["limit"] for e in dev_stop] == [3]
    notices = [e for e in by_type["notice.recorded"] if e["details"]["container"] == idle.name]
    assert {n["details"]["severity"] for n in notices} == {"warning", "action"}


def event_time(record):
    return dt.datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))


def test_leftovers_are_removed_and_keepalive_cli(
    tmp_config, cgroup_test_root, container_factory, docker_engine
):
    config = make_config(tmp_config, cgroup_test_root)
    runtime = load_runtime(str(config))
    never_started = container_factory({"Labels": {"ds01.user": "alice"}}, start=False)
    stopped = container_factory({"Labels": {"ds01.user": "alice"}})
    docker_engine.stop(stopped.id, timeout=1)
    time.sleep(1.2)
    cycles(runtime, {never_started.id, stopped.id}, 2)
    assert docker_engine.inspect_container(never_started.id) is None
    assert docker_engine.inspect_container(stopped.id) is None
    types = [e["event_type"] for e in EventLog(config.parent / "log" / "events.jsonl").read()]
    assert "lifecycle.created_removed" in types and "lifecycle.stopped_removed" in types

    box = container_factory({"Labels": {"ds01.user": "root"}})
    result = CliRunner().invoke(
        cli, ["--config", str(config), "keepalive", box.name, "--for", "1h"]
    )
    assert result.exit_code == 0, result.output
    log = EventLog(config.parent / "log" / "events.jsonl").read()  # the effect: a grant for it
    kept = [e["details"] for e in log if e["event_type"] == "lifecycle.keepalive"]
    assert [(k["container_id"], bool(k["grant"])) for k in kept] == [(box.id, True)]
    too_long = CliRunner().invoke(
        cli, ["--config", str(config), "keepalive", box.name, "--for", "2d"]
    )
    assert too_long.exit_code == 2 and "keepalive_max" in too_long.output


def test_network_traffic_keeps_a_container_alive(
    tmp_config, cgroup_test_root, container_factory, docker_engine
):
    import socket
    import threading

    config = make_config(tmp_config, cgroup_test_root)
    runtime = load_runtime(str(config))
    server = container_factory(
        {"Labels": {"ds01.user": "alice"}, "Cmd": ["nc", "-ll", "-p", "7777", "-e", "cat"]}
    )
    quiet = container_factory({"Labels": {"ds01.user": "alice"}})
    address = docker_engine.inspect_container(server.id)["NetworkSettings"]["IPAddress"]
    stop = threading.Event()

    def talk():  # bounded traffic to the test's own container
        with socket.create_connection((address, 7777), timeout=5) as conn:
            while not stop.wait(0.3):
                conn.sendall(b"x" * 8192)
                conn.recv(65536)

    sender = threading.Thread(target=talk)
    sender.start()
    try:
        cycles(runtime, {server.id, quiet.id}, 8)
    finally:
        stop.set()
        sender.join(10)
    assert docker_engine.inspect_container(server.id)["State"]["Running"]
    inspect = docker_engine.inspect_container(quiet.id)
    assert inspect is None or not inspect["State"]["Running"]


def test_idle_gpu_container_is_stopped_and_its_gpu_released_per_hold(
    tmp_config, cgroup_test_root, container_prefix, docker_engine
):
    import yaml

    from ds01_core.cycle.pipeline import run_cycle
    from ds01_core.domain.state.allocations import Allocations
    from ds01_core.services.user_containers import ContainerService, CreateRequest

    config = make_config(tmp_config, cgroup_test_root)
    config_dir = config.parent
    topology = config_dir / "one-idle-gpu.yaml"  # a GPU at 0% utilisation: its signal is idle
    topology.write_text(
        yaml.safe_dump(
            {
                "name": "one-idle-gpu",
                "default_model": "NVIDIA A100-SXM4-80GB",
                "models": {
                    "NVIDIA A100-SXM4-80GB": {
                        "memory": "81920MiB",
                        "profiles": {"7g.80gb": {"id": 4, "slices": 7, "memory": "80896MiB"}},
                    }
                },
                "gpus": [{"utilization": 0}],
            }
        )
    )
    data = yaml.safe_load(config.read_text())
    data["allocation"] = {"gpu_hold_after_stop": "2s"}
    data["gpu"]["simulated"] = {"topology": str(topology)}
    config.write_text(yaml.safe_dump(data))
    runtime = load_runtime(str(config))
    service = ContainerService(runtime, "gpuuser")
    name = f"{container_prefix}-gpu-idle"
    created = service.create(CreateRequest(name=name, image="ds01-test:busybox", full_gpu=True))
    try:
        service.start(name)
        cycles(runtime, {created.id}, 7)
        inspect = docker_engine.inspect_container(created.id)
        assert inspect is None or not inspect["State"]["Running"]
        log = EventLog(config.parent / "log" / "events.jsonl")
        types = [(e["event_type"], e["user"]) for e in log.read()]
        assert ("lifecycle.idle_stop", "gpuuser") in types
        # one whole GPU is the whole default quota: the user was told they were near it
        assert ("lifecycle.quota_warning", "gpuuser") in types
        run_cycle(runtime)  # the hold starts (or, if removed already, the release)
        time.sleep(2.2)
        run_cycle(runtime)
        assert Allocations(runtime).live(user="gpuuser") == []
        released = [e for e in log.read() if e["event_type"] == "gpu.released"]
        assert released and released[-1]["details"]["container"] == name
    finally:
        if docker_engine.inspect_container(created.id) is not None:
            docker_engine.remove(created.id, force=True)


def test_admin_exemptions(tmp_config, cgroup_test_root):
    import json

    config = make_config(tmp_config, cgroup_test_root)

    def run(*args):
        return CliRunner().invoke(cli, ["--config", str(config), "admin", "exempt", *args])

    result = run(
        "set",
        "--user",
        "bob",
        "--runtime",
        "--expires",
        "1h",
        "--reason",
        "thesis run",
        "--allow-unknown-user",  # no account 'bob' on the test host
    )
    assert result.exit_code == 0, result.output
    grants = json.loads(run("list", "--json").output)
    assert {(g["kind"], g["target"]) for g in grants} == {
        ("exempt_idle", "user:bob"),
        ("exempt_runtime", "user:bob"),
    }
    assert (
        run(
            "set", "--user", "bob", "--container", "x", "--expires", "1h", "--reason", "r"
        ).exit_code
        == 2
    )
    assert run("remove", *[str(g["id"]) for g in grants]).exit_code == 0
    assert json.loads(run("list", "--json").output) == []


# -- a user cannot escape the limits by naming or labelling a container -------------------------


class ShiftedClock:
    """``runtime.now`` moved ahead of the real clock by ``offset``, so a policy of hours or days
    is reached in a few real cycles; the engine, the containers and their activity are real."""

    def __init__(self, offset: dt.timedelta):
        self.offset = offset

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


@pytest.fixture(scope="module")
def user_gateway(tmp_path_factory, unix_users, docker_engine, cgroup_test_root):
    """A gateway on a configuration with nothing about the lifecycle: the built-in defaults."""
    from tests.helpers.config import write_config
    from tests.helpers.gateway import running_gateway

    base = tmp_path_factory.mktemp("claimed-origins")
    config = write_config(base, {"plugins": {"cgroups": {"root": cgroup_test_root}}})
    with running_gateway(config) as sock:
        yield {"sock": sock, "config": config, "user": unix_users["ds01ta"]}
    for summary in docker_engine.list_containers(all=True):
        if (summary.get("Labels") or {}).get("ds01.user") in unix_users:
            docker_engine.remove(summary["Id"], force=True)


#: an idle container that ends when told to stop: ``sleep`` as PID 1 ignores SIGTERM, and the
#: built-in ``stop_grace`` (30 s) would be waited out in full before the SIGKILL
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def claimed_containers(gateway, test_image, tag):
    """As the plain user ds01ta, through the gateway: an ordinary container, one named like a
    VS Code Dev Container, one labelled as one, one labelled as a compose service."""
    from tests.helpers.gateway import docker

    stamp = f"{os.getpid()}-{tag}"
    variants = {
        "plain": (f"ds01test-plain-{stamp}", []),
        "vsc name": (f"vsc-ds01test-{stamp}", []),
        "devcontainer label": (f"ds01test-dev-{stamp}", ["--label", "devcontainer.config_file=/x"]),
        "compose label": (
            f"ds01test-web-{stamp}",
            ["--label", "com.docker.compose.project=p", "--label", "com.docker.compose.service=w"],
        ),
    }
    ids = {}
    for what, (name, labels) in variants.items():
        args = ["run", "-d", "--name", name, *labels, test_image, *SLEEPER]
        run = docker(gateway["user"], gateway["sock"], *args)
        assert run.returncode == 0, run.stderr
        ids[run.stdout.strip()] = what
    return ids


def stops(config, ids):
    log = EventLog(config.parent / "log" / "events.jsonl")
    return {
        ids[e["details"]["container_id"]]: (e["event_type"], e["details"]["limit"], e["user"])
        for e in log.read()
        if e["event_type"].endswith("_stop") and e["details"].get("container_id") in ids
    }


def test_claimed_origins_are_stopped_at_the_ordinary_runtime_cap(
    user_gateway, test_image, docker_engine
):
    ids = claimed_containers(user_gateway, test_image, "runtime")
    runtime = load_runtime(str(user_gateway["config"]))
    runtime.now = ShiftedClock(dt.timedelta(days=7, hours=1))  # a week after they started
    origins = {w.id: w.origin for w in detect(runtime) if w.id in ids}
    assert sorted(origins.values()) == ["compose", "devcontainer", "devcontainer", "docker"]
    # past the cap the first time they are judged: warned first (as the docs promise), not
    # stopped unwarned; stopped at the next cycle
    first = UpkeepStep(runtime).run([w for w in detect(runtime) if w.id in ids])
    warned = {
        e.details["container_id"] for e in first if e.event_type == "lifecycle.runtime_warning"
    }
    assert warned == set(ids) and not [e for e in first if e.event_type.endswith("_stop")]
    assert all(docker_engine.inspect_container(cid)["State"]["Running"] for cid in ids)
    for event in first:
        runtime.events.append(event)
    cycles(runtime, set(ids), 2)
    week = 7 * 86400
    assert stops(user_gateway["config"], ids) == {
        what: ("lifecycle.runtime_stop", week, "ds01ta") for what in ids.values()
    }
    for cid in ids:
        inspect = docker_engine.inspect_container(cid)
        assert inspect is None or not inspect["State"]["Running"]


def test_claimed_origins_are_stopped_at_the_ordinary_idle_timeout(
    user_gateway, test_image, docker_engine
):
    ids = claimed_containers(user_gateway, test_image, "idle")
    runtime = load_runtime(str(user_gateway["config"]))
    clock = ShiftedClock(dt.timedelta(minutes=15))  # past start_grace (10 min)
    runtime.now = clock
    stopped_at: dict[str, int] = {}
    for cycle in range(12):  # 30 min a cycle: the built-in 2 h is reached in ~7 cycles
        mine = [w for w in detect(runtime) if w.id in ids]
        for event in UpkeepStep(runtime).run(mine):
            runtime.events.append(event)
            cid = event.details.get("container_id")
            if event.event_type == "lifecycle.idle_stop" and cid in ids:
                stopped_at[ids[cid]] = cycle
        if len(stopped_at) == len(ids):
            break
        clock.offset += dt.timedelta(minutes=30)
        time.sleep(1)
    assert stops(user_gateway["config"], ids) == {
        what: ("lifecycle.idle_stop", 7200, "ds01ta") for what in ids.values()
    }
    assert len(set(stopped_at.values())) == 1, stopped_at  # all in the same cycle
