"""`ds01 container` on the real engine and the simulated 8-GPU host: create, stop, hold,
release, restart, remove — checking labels, environment, events and the state store."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ds01_core.cycle.pipeline import run_cycle
from ds01_core.domain.audit_log import EventLog
from ds01_core.domain.state.allocations import Allocations
from ds01_core.framework.runtime import load_runtime
from ds01_core.transports.cli import cli
from tests.helpers.waiting import wait_until

IMAGE = "ds01-test:busybox"


@pytest.fixture
def config(tmp_config, container_prefix, cgroup_test_root):
    return tmp_config(
        {
            "limits": {
                "defaults": {
                    "max_gpu_equivalents": 2,
                    "max_gpu_slots_per_container": 2,
                    "allow_full_gpu": True,
                },
                "users": {"ds01tb": {"max_gpu_equivalents": 1}},
            },
            "allocation": {"gpu_hold_after_stop": "2s", "queue_recheck": "60s"},
            # these tests pin the built-in whole-GPU allocator; containers get this run's cgroups
            "plugins": {"disabled": ["mig"], "cgroups": {"root": cgroup_test_root}},
        }
    )


@pytest.fixture
def names(container_prefix, docker_engine):
    made: list[str] = []

    def name(suffix: str) -> str:
        made.append(f"{container_prefix}-{suffix}")
        return made[-1]

    yield name
    for n in made:
        with contextlib.suppress(Exception):
            docker_engine.remove(n, force=True)


def ds01(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def ok(config: Path, *args: str) -> str:
    result = ds01(config, *args)
    assert result.exit_code == 0, result.output
    return result.output


def events(config: Path, prefix: str = "") -> list[dict]:
    return EventLog(config.parent / "log" / "events.jsonl").query(type_prefix=prefix or None)


def reconcile(config: Path) -> None:
    """One daemon cycle (detect, reconcile, enforce)."""
    run_cycle(load_runtime(str(config)))


def test_create_stop_hold_release_restart_remove(config, names, docker_engine, unix_users):
    a = unix_users["ds01ta"].name
    name = names("train")
    data = json.loads(
        ok(
            config,
            "container",
            "create",
            name,
            "--image",
            IMAGE,
            "--gpus",
            "2",
            "--as",
            a,
            "--json",
        )
    )
    assert len(data["uuids"]) == 2 and data["slots"] == ["0", "1"]
    inspect = docker_engine.inspect_container(name)
    labels = inspect["Config"]["Labels"]
    assert labels["ds01.user"] == a and labels["ds01.origin"] == "ds01"
    assert labels["ds01.gpu.uuids"] == ",".join(data["uuids"])
    assert labels["ds01.gpu.slots"] == "0,1"
    assert labels["ds01.gpu.allocated_at"].endswith("Z")
    env = inspect["Config"]["Env"]
    assert f"NVIDIA_VISIBLE_DEVICES={','.join(data['uuids'])}" in env
    assert not any(e == "NVIDIA_VISIBLE_DEVICES=all" for e in env)
    assert not inspect["HostConfig"].get("DeviceRequests")  # no NVIDIA runtime on this machine
    allocated = [e for e in events(config, "gpu.allocated") if e["details"]["container"] == name]
    assert allocated and allocated[0]["user"] == a

    runtime = load_runtime(str(config))
    (record,) = Allocations(runtime).live(user=a)
    assert record.bound and record.container == inspect["Id"]
    assert record.slot_uuids == data["uuids"]

    status = json.loads(ok(config, "gpu", "status", "--json"))
    held = {
        slot["slot_id"]: slot["allocation"]
        for gpu in status["gpus"]
        for slot in gpu["slots"]
        if slot["allocation"]
    }
    assert set(held) == {"0", "1"}
    assert held["0"]["user"] == a and held["0"]["container"] == name
    assert held["0"]["container_id"] == inspect["Id"] and not held["0"]["held_after_stop"]

    ok(config, "container", "start", name, "--as", a)
    assert docker_engine.inspect_container(name)["State"]["Running"]
    assert "hello" in ok(config, "container", "exec", name, "echo", "hello", "--as", a)

    ok(config, "container", "stop", name, "-t", "1", "--as", a)
    reconcile(config)  # the hold starts
    (held,) = Allocations(load_runtime(str(config))).live(user=a)
    assert held.stopped_at is not None
    time.sleep(2.2)
    reconcile(config)  # the hold has run out
    assert Allocations(load_runtime(str(config))).live(user=a) == []
    released = [e for e in events(config, "gpu.released") if e["details"]["container"] == name]
    assert "gpu_hold_after_stop" in released[-1]["details"]["reason"]

    ok(config, "container", "start", name, "--as", a)  # the same slots are free: taken back
    (again,) = Allocations(load_runtime(str(config))).live(user=a)
    assert again.slot_uuids == data["uuids"]

    ok(config, "container", "remove", name, "--force", "--as", a)
    assert docker_engine.inspect_container(name) is None
    assert Allocations(load_runtime(str(config))).live(user=a) == []  # released at once
    assert events(config, "gpu.released")[-1]["details"]["reason"] == "container removed"


def test_quota_refusal_is_clear_and_logged(config, names, unix_users):
    b = unix_users["ds01tb"].name
    first = names("b1")
    ok(config, "container", "create", first, "--image", IMAGE, "--as", b)
    result = ds01(config, "container", "create", names("b2"), "--image", IMAGE, "--as", b)
    assert result.exit_code == 1
    assert f"GPU quota: 1.00 of 1 GPU-equivalents in use ({first} 1.00)" in result.output
    rejected = events(config, "gpu.rejected")[-1]
    assert rejected["user"] == b and "GPU quota" in rejected["details"]["reason"]
    quota = json.loads(ok(config, "quota", "--user", b, "--json"))
    assert quota["gpu_equivalents"]["in_use"] == 1.0 and quota["gpu_equivalents"]["left"] == 0.0


def test_cpu_only_workspace_and_isolation(config, names, docker_engine, unix_users, tmp_path):
    a, b = unix_users["ds01ta"], unix_users["ds01tb"]
    work = Path(a.home) / "ws"
    work.mkdir(exist_ok=True)
    os.chown(work, a.uid, a.gid)
    name = names("cpu")
    ok(
        config,
        "container",
        "create",
        name,
        "--image",
        IMAGE,
        "--cpu-only",
        "--workspace",
        str(work),
        "--as",
        a.name,
    )
    inspect = docker_engine.inspect_container(name)
    assert "ds01.gpu.uuids" not in inspect["Config"]["Labels"]
    assert "NVIDIA_VISIBLE_DEVICES=void" in inspect["Config"]["Env"]
    assert inspect["HostConfig"]["Binds"] == [f"{work}:/workspace"]
    assert inspect["Config"]["Labels"]["ds01.workspace"] == str(work)

    refused = ds01(
        config,
        "container",
        "create",
        names("ws2"),
        "--image",
        IMAGE,
        "--cpu-only",
        "--workspace",
        str(work),
        "--as",
        b.name,
    )
    assert refused.exit_code == 1 and f"is not owned by {b.name}" in refused.output

    # another user cannot see or touch it
    other = ds01(config, "container", "stop", name, "--as", b.name)
    assert other.exit_code == 1 and f"no container {name!r} of yours" in other.output
    listing = json.loads(ok(config, "container", "list", "--all", "--json", "--as", b.name))
    assert name not in {w["name"] for w in listing}
    listing = json.loads(ok(config, "container", "list", "--all", "--json", "--as", a.name))
    assert name in {w["name"] for w in listing}

    talker = names("talker")
    ok(
        config,
        "container",
        "create",
        talker,
        "--image",
        IMAGE,
        "--cpu-only",
        "--as",
        a.name,
        "--",
        "sh",
        "-c",
        "echo hello-from-logs; sleep 600",
    )
    ok(config, "container", "start", talker, "--as", a.name)
    wait_until(
        lambda: "hello-from-logs" in ok(config, "container", "logs", talker, "--as", a.name),
        timeout=30,
        what="the container's first line in `ds01 container logs`",
    )

    ok(config, "container", "start", name, "--as", a.name)
    stats = json.loads(
        ok(config, "container", "stats", "--filter", f"name={name}", "--json", "--as", a.name)
    )
    assert [s["name"] for s in stats] == [name] and stats[0]["pids"] >= 1
    assert ds01(config, "container", "stats", "--filter", "colour=red").exit_code == 2


def test_wait_queue_is_served_when_a_slot_is_released(config, names, unix_users):
    a = unix_users["ds01ta"].name
    b = unix_users["ds01tb"].name
    runtime = load_runtime(str(config))
    whole = [s for s in runtime.gpu.slots() if s.kind == "gpu"]
    assert len(whole) == 4
    holders: list[tuple[str, str]] = []
    # fill every whole GPU: a holds two, two more users one each
    for user in (a, a, "ds01fill1", "ds01fill2"):
        n = names(f"fill{len(holders)}")
        ok(config, "container", "create", n, "--image", IMAGE, "--as", user)
        holders.append((user, n))
    refused = ds01(config, "container", "create", names("late"), "--image", IMAGE, "--as", b)
    assert refused.exit_code == 1 and "no free whole GPU" in refused.output

    waiter_name = names("waiter")
    waiter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from ds01_core.transports.cli import main; main()",
            "--config",
            str(config),
            "container",
            "create",
            waiter_name,
            "--image",
            IMAGE,
            "--wait",
            "30s",
            "--as",
            b,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30  # the waiter is a fresh Python process: allow a slow start
    queue = []
    while time.monotonic() < deadline and not queue:
        queue = json.loads(ok(config, "gpu", "queue", "--json"))
        time.sleep(0.1)
    if not queue:
        waiter.kill()
        raise AssertionError(f"the waiter never queued: {waiter.communicate()[0]}")
    assert [(q["position"], q["user"], q["container"]) for q in queue] == [(1, b, waiter_name)]
    # a newcomer does not overtake the waiter
    jumped = ds01(config, "container", "create", names("jump"), "--image", IMAGE, "--as", a)
    assert jumped.exit_code == 1
    time.sleep(0.5)
    released_at = time.monotonic()
    ok(config, "container", "remove", holders[-1][1], "--force", "--as", holders[-1][0])
    output, _ = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, output
    assert f"created {waiter_name}" in output
    # woken by the release, not by the 60 s safety re-check
    assert time.monotonic() - released_at < 15  # far below the 60 s re-check: it was woken
    assert json.loads(ok(config, "gpu", "queue", "--json")) == []
    assert any(e["event_type"] == "gpu.queued" for e in events(config, "gpu.queued"))


def test_reconcile_releases_removed_and_adopts_unrecorded(
    config, names, docker_engine, container_factory, unix_users
):
    a = unix_users["ds01ta"].name
    name = names("gone")
    ok(config, "container", "create", name, "--image", IMAGE, "--as", a)
    docker_engine.remove(name, force=True)  # removed behind ds01's back
    runtime = load_runtime(str(config))
    slots = runtime.gpu.slots()
    mig = [s for s in slots if s.kind == "mig"][:2]
    raw = container_factory(
        {
            "Labels": {"ds01.user": "ds01tb"},
            "Env": [f"NVIDIA_VISIBLE_DEVICES={mig[0].uuid},{mig[1].uuid}"],
        }
    )
    run_cycle(runtime)
    live = Allocations(runtime).live()
    assert name not in {x.container_name for x in live}
    adopted = [x for x in live if x.container == raw.id]
    assert adopted and adopted[0].user == "ds01tb"
    assert adopted[0].slot_uuids == [mig[0].uuid, mig[1].uuid]
    kinds = [e["event_type"] for e in events(config)]
    assert "gpu.adopted" in kinds
    owner_files = {p.name: p.read_text() for p in (config.parent / "run" / "gpu-owners").iterdir()}
    assert owner_files[mig[0].slot_id] == f"ds01tb/{raw.name}\n"


def test_another_users_image_is_not_found(config, names, docker_engine, unix_users):
    """`ds01 container create` (any transport: the CLI, the API socket) refuses an image in
    another user's namespace as the engine would a missing one: the gateway's rule, kept by the
    service too."""
    b = unix_users["ds01tb"]
    theirs = f"ds01/{b.name}/secret:1"
    # an image of b's own (as the gateway builds it: owner label, b's namespace)
    dockerfile = f"FROM {IMAGE}\nLABEL ds01.owner={b.name}\n".encode()
    for _ in docker_engine.api.build(fileobj=io.BytesIO(dockerfile), tag=theirs, rm=True):
        pass
    try:
        refused = ds01(
            config,
            "container",
            "create",
            names("theirs"),
            "--image",
            theirs,
            "--cpu-only",
            "--as",
            "ds01ta",
        )
        assert refused.exit_code != 0
        assert f"image {theirs!r} not found on this server" in refused.output
        assert docker_engine.inspect_container(names("theirs")) is None
        ok(
            config,
            "container",
            "create",
            names("mine"),
            "--image",
            theirs,
            "--cpu-only",
            "--as",
            b.name,
        )  # the owner may
    finally:
        docker_engine.api.remove_image(theirs, force=True)


def test_an_image_name_cannot_steer_the_engine_api(config, names, docker_engine, unix_users):
    """An "image" that is a path (``../containers/<id>``) would make ``GET /images/{ref}/json``
    read another endpoint — here another user's container. It is no image name: refused as
    not found, and the engine is never asked."""
    victim = names("victim")
    ok(config, "container", "create", victim, "--image", IMAGE, "--cpu-only", "--as", "ds01tb")
    victim_id = docker_engine.inspect_container(victim)["Id"]
    for steer in (f"../containers/{victim_id}", f"x/../../containers/{victim}", "a?b", "..%2f"):
        refused = ds01(
            config,
            "container",
            "create",
            names("steer"),
            "--image",
            steer,
            "--cpu-only",
            "--as",
            "ds01ta",
        )
        assert refused.exit_code != 0, steer
        assert "not found on this server" in refused.output, (steer, refused.output)
        assert docker_engine.inspect_container(names("steer")) is None
