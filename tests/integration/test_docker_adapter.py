"""The Docker adapter against a real engine: the calls ds01 relies on, end to end."""

from __future__ import annotations

import time

import pytest

from ds01_core.domain.docker_engine import DockerAdapter, DockerError, DockerNotFound

MiB = 1024 * 1024


def test_ping_and_version(docker_engine: DockerAdapter) -> None:
    assert docker_engine.ping() is True
    version = docker_engine.version()
    major, minor = (int(part) for part in version["ApiVersion"].split(".")[:2])
    assert (major, minor) >= (1, 41)
    info = docker_engine.info()
    assert info["CgroupDriver"] in ("cgroupfs", "systemd")


def test_container_lifecycle(docker_engine: DockerAdapter, test_image: str, container_prefix: str):
    """create (raw HostConfig + labels) -> start -> list -> inspect -> exec -> stop -> remove."""
    name = f"{container_prefix}-lifecycle"
    body = {
        "Image": test_image,
        "Cmd": ["sleep", "3600"],
        "Labels": {"ds01.user": "alice", "ds01.origin": "ds01"},
        "HostConfig": {"Memory": 64 * MiB, "PidsLimit": 64},
    }
    since = time.time() - 1
    cid = docker_engine.create_container(body, name=name)
    try:
        assert len(cid) == 64

        created = {c["Id"]: c for c in docker_engine.list_containers(all=True)}
        assert created[cid]["State"] == "created"
        assert cid not in {c["Id"] for c in docker_engine.list_containers(all=False)}

        docker_engine.start(cid)
        summary = {c["Id"]: c for c in docker_engine.list_containers()}[cid]
        assert summary["State"] == "running"
        assert summary["Names"] == [f"/{name}"]
        assert summary["Labels"]["ds01.user"] == "alice"

        inspected = docker_engine.inspect_container(cid)
        assert inspected is not None
        assert inspected["Config"]["Labels"] == {"ds01.user": "alice", "ds01.origin": "ds01"}
        assert inspected["HostConfig"]["Memory"] == 64 * MiB
        assert inspected["HostConfig"]["PidsLimit"] == 64
        assert inspected["State"]["Running"] is True

        exit_code, output = docker_engine.exec_run(cid, ["sh", "-c", "echo hello; echo oops >&2"])
        assert exit_code == 0
        assert "hello" in output and "oops" in output
        assert docker_engine.exec_run(cid, "sh -c 'exit 3'").exit_code == 3

        docker_engine.stop(cid, timeout=1)  # busybox sh as PID 1 ignores SIGTERM: SIGKILL
        stopped = docker_engine.inspect_container(cid)
        assert stopped is not None and stopped["State"]["Running"] is False
        assert {c["Id"]: c for c in docker_engine.list_containers(all=True)}[cid]["State"] == (
            "exited"
        )

        docker_engine.remove(cid)
    finally:
        if docker_engine.inspect_container(cid) is not None:
            docker_engine.remove(cid, force=True)
    assert docker_engine.inspect_container(cid) is None
    assert cid not in {c["Id"] for c in docker_engine.list_containers(all=True)}

    # the events stream saw the whole life of that container, bounded by since/until
    with docker_engine.events(
        since=since, until=time.time() + 0.5, filters={"container": [cid]}
    ) as events:
        actions = [event["Action"] for event in events if event.get("Type") == "container"]
    for action in ("create", "start", "die", "destroy"):
        assert action in actions
    assert actions.index("create") < actions.index("start") < actions.index("die")
    assert actions[-1] == "destroy"


def test_list_containers_filters(docker_engine: DockerAdapter, container_factory) -> None:
    made = container_factory({"Labels": {"ds01.user": "bob"}}, start=False)
    found = docker_engine.list_containers(
        all=True, filters={"label": f"ds01.test.run={container_factory.prefix}"}
    )
    assert made.id in {c["Id"] for c in found}


def test_container_factory_cleans_up(docker_engine: DockerAdapter, container_factory) -> None:
    first = container_factory()
    second = container_factory({"Cmd": ["true"]}, name="named", start=False)
    assert second.name == f"{container_factory.prefix}-named"
    assert docker_engine.inspect_container(first.id)["State"]["Running"] is True
    container_factory.cleanup()
    assert docker_engine.inspect_container(first.id) is None
    assert docker_engine.inspect_container(second.id) is None


def test_engine_errors_carry_the_engine_message(docker_engine: DockerAdapter, container_factory):
    made = container_factory(name="dup", start=False)
    with pytest.raises(DockerError, match="already in use") as info:
        docker_engine.create_container({"Image": "ds01-test:busybox"}, name=made.name)
    assert info.value.status == 409
    with pytest.raises(DockerNotFound, match="No such container") as missing:
        docker_engine.start("ds01-no-such-container")
    assert missing.value.status == 404
    with pytest.raises(DockerError, match="No such image"):
        docker_engine.create_container({"Image": "ds01-test:no-such-tag"})
    assert docker_engine.inspect_image("ds01-test:no-such-tag") is None


def test_unreachable_engine_is_a_clear_error() -> None:
    adapter = DockerAdapter.from_env("unix:///nonexistent.sock")
    assert adapter.ping() is False
    with pytest.raises(DockerError, match="is dockerd running\\? check DOCKER_HOST") as info:
        adapter.list_containers()
    assert info.value.status is None
    assert "unix:///nonexistent.sock" in str(info.value)
    with pytest.raises(DockerError, match="DOCKER_HOST"):
        adapter.events(until=time.time())
