"""``admin.users`` and ``admin.health`` on the real engine with real users: a container with a
GPU slot made for ds01ta through ``containers.create`` shows in both (their slot, their
containers, their last activity; a slot, a GPU and a user in use), a user with limits of their
own in the file is listed with nothing running, an override shows as overridden, a waiting
request is counted, and a plain user is refused both — in-process and through ``ds01``."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from ds01_core.domain.model import GpuRequest
from ds01_core.domain.state.gpu_queue import Waiter
from ds01_core.framework.runtime import load_runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.errors import Forbidden
from ds01_core.services.operations import ServiceContext
from ds01_core.transports.cli import cli
from tests.helpers.config import write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path, unix_users, docker_engine, test_image):
    tmp_path.chmod(0o755)
    config = write_config(tmp_path, {"limits": {"users": {"ds01tb": {"max_gpu_equivalents": 2}}}})
    runtime = load_runtime(str(config))
    alice = unix_users["ds01ta"]
    as_alice = ServiceContext(runtime, Caller.from_uid(alice.uid, "ds01-admin"))
    box = f"overview-{os.getpid()}"
    made = call(
        as_alice, "containers.create", name=box, image=test_image, gpus=1, command=["sleep", "600"]
    )
    call(as_alice, "containers.start", name=box)
    try:
        yield {
            "runtime": runtime,
            "config": config,
            "alice": as_alice,
            "root": ServiceContext(runtime, Caller("root", 0, admin=True)),
            "slot": made["slots"][0],
            "box": box,
        }
    finally:
        for summary in docker_engine.list_containers(all=True):
            if f"/{box}" in (summary.get("Names") or []):
                docker_engine.remove(summary["Id"], force=True)


def test_users_lists_holders_owners_and_configured_users(world):
    root = world["root"]
    call(
        root,
        "admin.override.set",
        user="ds01ta",
        assignments=["max_containers_per_user=9"],
        expires="2099-01-01T00:00",
        reason="overview test",
    )
    rows = {r["user"]: r for r in call(root, "admin.users")["users"]}
    alice = rows["ds01ta"]
    assert alice["gpu_slots"] == [world["slot"]] and alice["gpu_equivalents"] > 0
    # other tests on this engine may have containers of ds01ta's too
    assert world["box"] in alice["container_names"]
    assert alice["containers"] == len(alice["container_names"]) >= alice["containers_running"] >= 1
    assert alice["overridden"] == ["max_containers_per_user"]
    assert alice["limits"]["max_containers_per_user"] == 9
    assert alice["last_activity"] and alice["last_activity"].endswith("Z")
    bob = rows["ds01tb"]  # limits of his own in the file, nothing running, no events
    assert bob["limits"]["max_gpu_equivalents"] == 2
    assert bob["gpu_slots"] == [] and bob["last_activity"] is None
    assert bob["overridden"] == []


def test_health_counts_what_is_in_use_and_waiting(world):
    root, runtime = world["root"], world["runtime"]
    waiter = Waiter(runtime, GpuRequest(user="ds01tb", container="waiting-box"))
    try:
        health = call(root, "admin.health")
    finally:
        waiter.leave("gave_up")
    assert health["gpus"] == {"total": 8, "in_use": 1}
    assert health["slots"]["in_use"] == 1 and health["slots"]["total"] == 19
    assert 0 < health["gpu_equivalents"]["allocated"] < health["gpu_equivalents"]["total"]
    assert health["containers"]["running"] >= 1
    assert health["users_active"] >= 1  # ds01ta, and owners of other tests' containers
    assert health["queue"] == 1
    assert health["gpu_health"] == {"problems": 0, "stale": False, "gpus": []}
    assert health["gpu_access"] == "available" and health["warnings"] == []


def test_a_plain_user_is_refused_both(world):
    for operation in ("admin.users", "admin.health"):
        with pytest.raises(Forbidden, match="admin operation; ds01ta is not in the admin group"):
            call(world["alice"], operation)


def test_both_are_served_on_the_api_paths(world):
    from ds01_core.services.catalogue import operation_table

    table = operation_table(world["runtime"])
    assert table.route("GET", "/v1/admin/users")[0].name == "admin.users"
    assert table.route("GET", "/v1/admin/health")[0].name == "admin.health"
    assert all(table.get(n).admin for n in ("admin.users", "admin.health"))
    # and the root CLI's JSON of the user it describes agrees with admin.users
    shown = CliRunner().invoke(
        cli,
        ["--config", str(world["config"]), "config", "show", "--user", "ds01tb", "--json"],
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["limits"]["max_gpu_equivalents"]["value"] == 2
