"""ds01's admission through the gateway, against the real engine and real users: a GPU container
that comes back with ``docker start`` after its GPU was released gets the same slot again or is
refused; the daemon stops a container running on a slot allocated to another (or only logs it);
gateway containers get the same admission event as ``ds01 container create`` and are managed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ds01_core.cycle.detection.inventory import diff_events
from ds01_core.cycle.pipeline import detect, run_cycle
from ds01_core.domain.model import Event
from ds01_core.domain.state.allocations import Allocations
from ds01_core.framework.runtime import load_runtime
from ds01_core.transports.cli import cli
from tests.helpers.config import write_config
from tests.helpers.gateway import docker, ok, running_gateway

pytestmark = pytest.mark.integration

#: whole GPUs (weight 1.0, first free GPU by index) from the built-in allocator; a quota of one
LIMITS = {
    "defaults": {
        "max_gpu_equivalents": 1,
        "max_gpu_slots_per_container": 1,
        "allow_full_gpu": True,
    }
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, unix_users, test_image, cgroup_test_root):
    base = tmp_path_factory.mktemp("admission")
    common = {
        "limits": LIMITS,
        "plugins": {"disabled": ["mig"], "cgroups": {"root": cgroup_test_root}},
    }
    # the daemon cycles the tests drive only log foreign slots, except where a test asks
    config = write_config(
        base,
        {
            **common,
            "allocation": {"gpu_hold_after_stop": "1s", "foreign_slot_action": "log"},
        },
    )
    stopping = write_config(
        base, {**common, "allocation": {"gpu_hold_after_stop": "1s"}}, name="ds01-stop.yaml"
    )
    with running_gateway(config) as sock:
        yield {
            "sock": sock,
            "config": config,
            "stop_config": stopping,
            "events": base / "log" / "events.jsonl",
        }


@pytest.fixture(scope="module")
def alice(unix_users):
    return unix_users["ds01ta"]


@pytest.fixture(scope="module")
def bob(unix_users):
    return unix_users["ds01tb"]


PREFIX = f"adm-{os.getpid()}-"


@pytest.fixture(scope="module")
def ours(container_prefix):
    """This module's containers: made through the gateway, or by the container factory."""
    return (PREFIX, container_prefix)


def mine(runtime, ours) -> list:
    """The inventory, cut to this module's containers: the engine may be shared with other
    test runs, whose containers must be neither adopted nor stopped by these tests' cycles."""
    return [w for w in detect(runtime) if w.kind == "container" and w.name.startswith(ours)]


def cycle(config: Path, ours) -> list[Event]:
    """The daemon's partial cycle (detection and the reconciling steps, its events written to
    the audit log), over this module's containers."""
    runtime = load_runtime(str(config))
    return run_cycle(runtime, partial=True, workloads=mine(runtime, ours)).events


@pytest.fixture
def name(gateway, alice, bob, ours):
    made: list[str] = []

    def make(suffix: str) -> str:
        made.append(PREFIX + suffix)
        return made[-1]

    yield make
    for each in made:  # this test's only, through the gateway: the GPUs are released at once
        for user in (alice, bob):
            docker(user, gateway["sock"], "rm", "-f", each)
    # what the engine removed behind ds01's back (the container factory's) is released too
    cycle(gateway["config"], ours)


def live(config: Path, user: str | None = None):
    return Allocations(load_runtime(str(config))).live(user=user)


def events(gateway, event_type: str) -> list[dict]:
    lines = gateway["events"].read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event_type"] == event_type]


def running(engine, container: str) -> bool:
    return bool(engine.inspect_container(container)["State"]["Running"])


def gpu_container(gateway, user, engine, container: str, image: str) -> str:
    """``docker run -d --gpus 1`` through the gateway; the slot UUID it was given."""
    ok(docker(user, gateway["sock"], "run", "-d", "--name", container, "--gpus", "1", image,
              "sleep", "600"))  # fmt: skip
    (uuid,) = engine.inspect_container(container)["Config"]["Labels"]["ds01.gpu.uuids"].split(",")
    return uuid


def stop_and_expire_hold(gateway, user, engine, container: str, ours) -> None:
    """``docker stop``, then daemon cycles until ``gpu_hold_after_stop`` (1 s) released it."""
    ok(docker(user, gateway["sock"], "stop", "-t", "0", container))
    cid = engine.inspect_container(container)["Id"]
    cycle(gateway["config"], ours)  # the hold starts
    time.sleep(1.2)
    cycle(gateway["config"], ours)  # and has run out
    assert not [a for a in live(gateway["config"]) if a.container == cid]


def test_docker_start_takes_the_released_slot_back(
    gateway, ours, alice, name, docker_engine, test_image
):
    box = name("back")
    uuid = gpu_container(gateway, alice, docker_engine, box, test_image)
    stop_and_expire_hold(gateway, alice, docker_engine, box, ours)

    ok(docker(alice, gateway["sock"], "start", box))
    assert running(docker_engine, box)
    (again,) = live(gateway["config"], alice.name)
    assert again.slot_uuids == [uuid] and again.bound
    assert again.container == docker_engine.inspect_container(box)["Id"]
    allocated = [e for e in events(gateway, "gpu.allocated") if e["details"]["container"] == box]
    assert "started again" in allocated[-1]["details"]["reason"]

    ok(docker(alice, gateway["sock"], "restart", "-t", "0", box))  # still held: nothing new
    assert [a.id for a in live(gateway["config"], alice.name)] == [again.id]


def test_docker_start_is_refused_when_the_slot_is_taken(
    gateway, ours, alice, bob, name, docker_engine, test_image, container_factory
):
    box = name("taken")
    uuid = gpu_container(gateway, alice, docker_engine, box, test_image)
    stop_and_expire_hold(gateway, alice, docker_engine, box, ours)
    # bob's container on that very slot, made by an admin with the real socket and adopted
    # for bob by the daemon
    bobs = container_factory(
        {"Labels": {"ds01.user": bob.name}, "Env": [f"NVIDIA_VISIBLE_DEVICES={uuid}"]}
    )
    cycle(gateway["config"], ours)
    assert [a.slot_uuids for a in live(gateway["config"], bob.name)] == [[uuid]]

    for verb in ("start", "restart"):
        refused = docker(alice, gateway["sock"], verb, box)
        assert refused.returncode != 0, refused.stdout
        assert f"{box} cannot start" in refused.stderr
        assert "allocated to another user's container" in refused.stderr
        assert bobs.name not in refused.stderr  # others' container names stay private
        assert "remove it and create a new container" in refused.stderr
        assert not running(docker_engine, box)
        assert live(gateway["config"], alice.name) == []
    by_cli = CliRunner().invoke(
        cli, ["--config", str(gateway["config"]), "container", "start", box, "--as", alice.name]
    )  # the same rule for `ds01 container start`
    assert by_cli.exit_code == 1 and "allocated to another user's container" in by_cli.output
    assert not running(docker_engine, box) and live(gateway["config"], alice.name) == []


def test_docker_start_is_refused_over_quota(
    gateway, ours, alice, bob, name, docker_engine, test_image
):
    first_holder = name("holder")
    held = gpu_container(gateway, bob, docker_engine, first_holder, test_image)
    box = name("quota")
    uuid = gpu_container(gateway, alice, docker_engine, box, test_image)
    assert uuid != held
    ok(docker(bob, gateway["sock"], "rm", "-f", first_holder))  # its GPU is free again
    stop_and_expire_hold(gateway, alice, docker_engine, box, ours)
    other = name("other")
    assert gpu_container(gateway, alice, docker_engine, other, test_image) != uuid  # quota used

    refused = docker(alice, gateway["sock"], "start", box)
    assert refused.returncode != 0, refused.stdout
    assert "GPU quota: 1.00 of 1 GPU-equivalents in use" in refused.stderr
    assert f"({other} 1.00); this container needs 1.00" in refused.stderr
    assert not running(docker_engine, box)
    assert [a.container_name for a in live(gateway["config"], alice.name)] == [other]


def foreign_container(gateway, alice, bob, name, engine, image, factory):
    """Alice holds a slot through the gateway; bob's container runs on it behind ds01's back."""
    box = name("owner")
    uuid = gpu_container(gateway, alice, engine, box, image)
    intruder = factory(
        {
            "Labels": {"ds01.user": bob.name},
            "Env": [f"NVIDIA_VISIBLE_DEVICES={uuid}"],
            # it ends on SIGTERM: the daemon's stop is not the 30 s stop_timeout waited out
            "Cmd": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
        }
    )
    return box, intruder


def test_the_daemon_stops_a_container_on_another_users_slot(
    gateway, ours, alice, bob, name, docker_engine, test_image, container_factory
):
    box, intruder = foreign_container(
        gateway, alice, bob, name, docker_engine, test_image, container_factory
    )
    cycle(gateway["stop_config"], ours)
    assert not running(docker_engine, intruder.id)
    assert running(docker_engine, box)  # the holder is left alone
    (stopped,) = [
        e
        for e in events(gateway, "gpu.foreign_slot_stopped")
        if e["details"]["container_id"] == intruder.id
    ]
    assert stopped["user"] == bob.name and stopped["details"]["also_held_by_users"] == [alice.name]
    told = [
        e
        for e in events(gateway, "notice.recorded")
        if e["user"] == bob.name and e["details"]["about"] == "gpu.foreign_slot_stopped"
    ]
    assert told and "allocated to another container" in told[-1]["details"]["message"]


def test_with_log_the_daemon_only_logs_a_foreign_slot(
    gateway, ours, alice, bob, name, docker_engine, test_image, container_factory
):
    box, intruder = foreign_container(
        gateway, alice, bob, name, docker_engine, test_image, container_factory
    )
    cycle(gateway["config"], ours)  # foreign_slot_action: log
    assert running(docker_engine, intruder.id) and running(docker_engine, box)
    assert any(e["details"]["container_id"] == intruder.id for e in events(gateway, "gpu.conflict"))
    assert not any(
        e["details"]["container_id"] == intruder.id
        for e in events(gateway, "gpu.foreign_slot_stopped")
    )


def test_gateway_and_cli_creates_get_the_same_admission_event(
    gateway, alice, name, docker_engine, test_image
):
    by_gateway = name("via-gw")
    uuid = gpu_container(gateway, alice, docker_engine, by_gateway, test_image)
    by_cli = name("via-cli")
    cli_create = CliRunner().invoke(
        cli,
        ["--config", str(gateway["config"]), "container", "create", by_cli, "--image",
         test_image, "--cpu-only", "--as", alice.name],
    )  # fmt: skip
    assert cli_create.exit_code == 0, cli_create.output
    created = {e["details"]["container"]: e for e in events(gateway, "container.created_by_ds01")}
    gw, local = created[by_gateway], created[by_cli]
    assert gw["user"] == local["user"] == alice.name
    assert gw["details"].keys() == local["details"].keys()
    assert gw["details"]["uuids"] == [uuid] and gw["details"]["via"] == "gateway"
    assert gw["details"]["container_id"] == docker_engine.inspect_container(by_gateway)["Id"]
    assert local["details"]["via"] == "ds01" and local["details"]["uuids"] == []


def test_a_gateway_gpu_container_is_managed(
    gateway, ours, alice, name, docker_engine, test_image, container_factory
):
    box = name("managed")
    uuid = gpu_container(gateway, alice, docker_engine, box, test_image)
    cid = docker_engine.inspect_container(box)["Id"]
    # a label claiming that slot does not cover a container that reaches another one too
    other = next(s.uuid for s in load_runtime(str(gateway["config"])).gpu.slots() if s.uuid != uuid)
    forged = container_factory(
        {"Labels": {"ds01.gpu.uuids": uuid}, "Env": [f"NVIDIA_VISIBLE_DEVICES={uuid},{other}"]}
    )
    workloads = mine(load_runtime(str(gateway["config"])), ours)
    seen = {w.id: w for w in workloads}
    assert "unmanaged_gpu" not in seen[cid].flags and seen[cid].gpu_slots == [uuid]
    assert "unmanaged_gpu" in seen[forged.id].flags
    unmanaged = {
        e.details["id"]
        for e in diff_events([], workloads)  # how the daemon logs what is new
        if e.event_type == "detection.unmanaged_gpu_workload"
    }
    assert forged.id in unmanaged and cid not in unmanaged
