"""Ways out through the gateway, tried by a real user on the real socket: each is refused and
reaches nothing, and the legitimate request next to it goes through."""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import time

import pytest

from tests.helpers.config import write_config
from tests.helpers.gateway import http, json_of, raw_as, running_gateway, status_of

pytestmark = pytest.mark.integration
V = "/v1.41"


@pytest.fixture(scope="module")
def world(tmp_path_factory, unix_users, docker_engine, test_image):
    """Alice owns a running container, an exec instance and a volume; bob attacks them."""
    config = write_config(tmp_path_factory.mktemp("gwsec"))
    alice, bob = unix_users["ds01ta"], unix_users["ds01tb"]
    tag = os.getpid()
    with running_gateway(config) as sock:

        def call(user, request):
            answer = raw_as(user.uid, user.gid, sock, request)
            return status_of(answer), answer

        def create(user, name, body):
            return call(user, http("POST", f"{V}/containers/create?name={name}", body))

        world = {
            "sock": sock,
            "alice": alice,
            "bob": bob,
            "image": test_image,
            "tag": tag,
            "call": call,
            "create": create,
        }
        status, _ = create(alice, f"gws-a-{tag}", {"Image": test_image, "Cmd": ["sleep", "600"]})
        assert status == 201
        assert call(alice, http("POST", f"{V}/containers/gws-a-{tag}/start"))[0] == 204
        status, answer = call(
            alice, http("POST", f"{V}/containers/gws-a-{tag}/exec", {"Cmd": ["true"]})
        )
        assert status == 201
        world["alice_exec"] = json_of(answer)["Id"]
        assert call(alice, http("POST", f"{V}/volumes/create", {"Name": f"gws-av-{tag}"}))[0] == 201
        status, _ = create(bob, f"gws-b-{tag}", {"Image": test_image, "Cmd": ["sleep", "600"]})
        assert status == 201
        assert call(bob, http("POST", f"{V}/containers/gws-b-{tag}/start"))[0] == 204
        yield world
    for summary in docker_engine.list_containers(all=True):
        if any(n.lstrip("/").startswith("gws-") for n in summary.get("Names") or []):
            docker_engine.remove(summary["Id"], force=True)
    for name in (f"gws-av-{tag}", f"gws-bv-{tag}"):
        docker_engine.api.remove_volume(name, force=True) if _volume(docker_engine, name) else None


def _volume(engine, name):
    try:
        return engine.api.inspect_volume(name)
    except Exception:
        return None


def tar_with(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def create_body(w, host=None, **extra):
    return {"Image": w["image"], "Cmd": ["true"], "HostConfig": host or {}, **extra}


def via_create(host=None, **extra):
    return lambda w, n: w["create"](w["bob"], n, create_body(w, host, **extra))


def raw(method, path, body=None, headers=None):
    return lambda w, n: w["call"](
        w["bob"],
        http(
            method,
            path.format(
                a=f"gws-a-{w['tag']}",
                b=f"gws-b-{w['tag']}",
                n=n,
                exec=w.get("alice_exec"),
                av=f"gws-av-{w['tag']}",
            ),
            body(w) if callable(body) else body,
            headers,
        ),
    )


BUILD = tar_with({"Dockerfile": "FROM ds01-test:busybox\nRUN echo built > /built\n"})
TAR_HEADERS = {"Content-Type": "application/x-tar"}

ATTACKS = {
    # create
    "privileged": via_create({"Privileged": True}),
    "cap_add SYS_ADMIN": via_create({"CapAdd": ["SYS_ADMIN"]}),
    "cap_add ALL": via_create({"CapAdd": ["ALL"]}),
    "host device": via_create(
        {
            "Devices": [
                {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}
            ]
        }
    ),
    "device cgroup rule": via_create({"DeviceCgroupRules": ["b *:* rwm"]}),
    "pid host": via_create({"PidMode": "host"}),
    "network host": via_create({"NetworkMode": "host"}),
    "ipc host": via_create({"IpcMode": "host"}),
    "uts host": via_create({"UTSMode": "host"}),
    "userns host": via_create({"UsernsMode": "host"}),
    "apparmor unconfined": via_create({"SecurityOpt": ["apparmor=unconfined"]}),
    "seccomp unconfined": via_create({"SecurityOpt": ["seccomp=unconfined"]}),
    "sysctl": via_create({"Sysctls": {"net.ipv4.ip_forward": "1"}}),
    "cgroup parent": via_create({"CgroupParent": "/"}),
    "runtime": via_create({"Runtime": "io.containerd.runtime.v1.linux"}),
    "bind /": via_create({"Binds": ["/:/host"]}),
    "bind /etc": via_create({"Binds": ["/etc:/e"]}),
    "bind docker socket": via_create({"Binds": ["/var/run/docker.sock:/s"]}),
    "bind other home": via_create({"Binds": ["/home/ds01ta:/a"]}),
    "mount /proc": via_create({"Mounts": [{"Type": "bind", "Source": "/proc", "Target": "/p"}]}),
    "local volume over /etc": via_create(
        {
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": "sneaky",
                    "Target": "/e",
                    "VolumeOptions": {
                        "DriverConfig": {
                            "Name": "local",
                            "Options": {"type": "none", "o": "bind", "device": "/etc"},
                        }
                    },
                }
            ]
        }
    ),
    "all GPUs by env": lambda w, n: w["create"](
        w["bob"], n, {"Image": w["image"], "Env": ["NVIDIA_VISIBLE_DEVICES=all"]}
    ),
    "all GPUs by request": via_create(
        {"DeviceRequests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]}
    ),
    "lower-case field names": lambda w, n: w["create"](
        w["bob"], n, {"Image": w["image"], "hostconfig": {"privileged": True}}
    ),
    "duplicate key": lambda w, n: w["call"](
        w["bob"],
        http(
            "POST",
            f"{V}/containers/create?name={n}",
            b'{"Image": "'
            + w["image"].encode()
            + b'", "HostConfig": {"Privileged": false, "Privileged": true}}',
        ),
    ),
    "pid of another's container": lambda w, n: w["create"](
        w["bob"], n, create_body(w, {"PidMode": f"container:gws-a-{w['tag']}"})
    ),
    "volumes from another's container": lambda w, n: w["create"](
        w["bob"], n, create_body(w, {"VolumesFrom": [f"gws-a-{w['tag']}"]})
    ),
    "another's named volume": lambda w, n: w["create"](
        w["bob"], n, create_body(w, {"Binds": [f"gws-av-{w['tag']}:/d"]})
    ),
    "unmasked /proc": via_create({"MaskedPaths": []}),
    "host port 22": via_create({"PortBindings": {"22/tcp": [{"HostPort": "22"}]}}),
    "HostConfig smuggled into start (API 1.23)": raw(
        "POST", "/v1.23/containers/{b}/start", {"Privileged": True, "Binds": ["/:/host"]}
    ),
    "form-encoded parameters": raw(
        "POST",
        f"{V}/containers/create?name={{n}}",
        b"HostConfig=x",
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
    # exec
    "privileged exec": raw(
        "POST", f"{V}/containers/{{b}}/exec", {"Cmd": ["true"], "Privileged": True}
    ),
    "exec in another's container": raw("POST", f"{V}/containers/{{a}}/exec", {"Cmd": ["id"]}),
    "start another's exec": raw("POST", f"{V}/exec/{{exec}}/start", {"Detach": True}),
    "inspect another's exec": raw("GET", f"{V}/exec/{{exec}}/json"),
    # archive
    "put archive into another's container": raw(
        "PUT", f"{V}/containers/{{a}}/archive?path=/tmp", tar_with({"planted": "x"}), TAR_HEADERS
    ),
    "get archive from another's container": raw("GET", f"{V}/containers/{{a}}/archive?path=/etc"),
    "stat archive of another's container": raw("HEAD", f"{V}/containers/{{a}}/archive?path=/"),
    # build
    "build with host network": raw(
        "POST", f"{V}/build?t=gws-{{n}}&networkmode=host", BUILD, TAR_HEADERS
    ),
    "build in a chosen cgroup": raw(
        "POST", f"{V}/build?t=gws-{{n}}&cgroupparent=/", BUILD, TAR_HEADERS
    ),
    "build from a URL the host fetches": raw(
        "POST", f"{V}/build?t=gws-{{n}}&remote=http://169.254.169.254/", None
    ),
    "BuildKit session": raw("POST", f"{V}/session"),
    "duplicated networkmode": raw(
        "POST", f"{V}/build?t=gws-{{n}}&networkmode=default&networkmode=host", BUILD, TAR_HEADERS
    ),
    # paths and framing
    "dot-dot path": raw("POST", f"{V}/containers/{{b}}/../../swarm/init", {}),
    "encoded dot-dot path": raw("POST", f"{V}/containers/%2e%2e/%2e%2e/swarm/init", {}),
    "image import from a URL": raw("POST", f"{V}/images/create?fromSrc=http://169.254.169.254/x"),
    "remove another's volume": raw("DELETE", f"{V}/volumes/{{av}}"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_refused(world, name, docker_engine):
    probe = f"gws-x{abs(hash(name)) % 10**8}"
    status, answer = ATTACKS[name](world, probe)
    assert status in (400, 403), f"{name}: {status} {answer[:300]!r}"
    assert b"ds01:" in answer  # the refusal says who refused and why
    assert docker_engine.inspect_container(probe) is None
    assert docker_engine.inspect_image(f"gws-{probe}") is None


def test_at_least_thirty_attacks():
    assert len(ATTACKS) >= 30


def test_smuggling_is_refused(world):
    request = (
        f"POST {V}/containers/gws-b-{world['tag']}/stop HTTP/1.1\r\nHost: d\r\n"
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ).encode()
    assert world["call"](world["bob"], request)[0] == 400


def test_attacked_objects_are_untouched(world, docker_engine):
    tag = world["tag"]
    state = docker_engine.inspect_container(f"gws-a-{tag}")["State"]
    assert state["Running"]
    volume = docker_engine.api.inspect_volume(f"gws-av-{tag}")
    assert volume["Labels"]["ds01.user"] == "ds01ta"
    exit_code, _ = docker_engine.exec_run(f"gws-a-{tag}", ["ls", "/tmp/planted"])
    assert exit_code != 0


LEGIT = {
    "plain create": via_create(),
    "own home bind": lambda w, n: w["create"](
        w["bob"], n, create_body(w, {"Binds": [f"{w['bob'].home}:/home/me"]})
    ),
    "default capability": via_create({"CapAdd": ["NET_BIND_SERVICE"]}),
    "bridge network": via_create({"NetworkMode": "bridge"}),
    "no-new-privileges": via_create({"SecurityOpt": ["no-new-privileges"]}),
    "own container's pid namespace": lambda w, n: w["create"](
        w["bob"], n, create_body(w, {"PidMode": f"container:gws-b-{w['tag']}"})
    ),
    "tmpfs": via_create({"Mounts": [{"Type": "tmpfs", "Target": "/scratch"}]}),
    "high host port": via_create({"PortBindings": {"8888/tcp": [{"HostPort": "28888"}]}}),
    "json-file log options": via_create(
        {"LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}}
    ),
}


@pytest.mark.parametrize("name", sorted(LEGIT))
def test_legitimate_create_goes_through(world, name, docker_engine):
    probe = f"gws-l{abs(hash(name)) % 10**8}"
    status, answer = LEGIT[name](world, probe)
    assert status == 201, answer[:400]
    labels = docker_engine.inspect_container(probe)["Config"]["Labels"]
    assert labels["ds01.user"] == "ds01tb"


def test_legitimate_exec_archive_and_build(world, docker_engine):
    w, bob, tag = world, world["bob"], world["tag"]
    status, answer = w["call"](
        bob, http("POST", f"{V}/containers/gws-b-{tag}/exec", {"Cmd": ["touch", "/tmp/by-exec"]})
    )
    assert status == 201
    exec_id = json_of(answer)["Id"]
    assert w["call"](bob, http("POST", f"{V}/exec/{exec_id}/start", {"Detach": False}))[0] == 200
    status, _ = w["call"](
        bob,
        http(
            "PUT",
            f"{V}/containers/gws-b-{tag}/archive?path=/tmp",
            tar_with({"put-ok": "x"}),
            TAR_HEADERS,
        ),
    )
    assert status == 200
    assert docker_engine.exec_run(f"gws-b-{tag}", ["ls", "/tmp/put-ok", "/tmp/by-exec"])[0] == 0
    status, answer = w["call"](
        bob, http("GET", f"{V}/containers/gws-b-{tag}/archive?path=/tmp/put-ok")
    )
    assert status == 200 and b"put-ok" in answer
    status, answer = w["call"](
        bob, http("POST", f"{V}/build?t=gws-built-{tag}&networkmode=default", BUILD, TAR_HEADERS)
    )
    try:
        assert status == 200 and b"Successfully built" in answer, answer[-500:]
        assert docker_engine.inspect_image(f"gws-built-{tag}") is not None
    finally:
        if docker_engine.inspect_image(f"gws-built-{tag}"):
            docker_engine.api.remove_image(f"gws-built-{tag}", force=True)


def test_own_volume_and_network_lifecycle(world):
    w, bob, tag = world, world["bob"], world["tag"]
    assert w["call"](bob, http("POST", f"{V}/volumes/create", {"Name": f"gws-bv-{tag}"}))[0] == 201
    listing = json_of(w["call"](bob, http("GET", f"{V}/volumes"))[1])
    names = {v["Name"] for v in listing["Volumes"]}
    assert f"gws-bv-{tag}" in names and f"gws-av-{tag}" not in names
    assert w["call"](bob, http("DELETE", f"{V}/volumes/gws-bv-{tag}"))[0] == 204
    status, answer = w["call"](bob, http("POST", f"{V}/networks/create", {"Name": f"gws-bn-{tag}"}))
    assert status == 201, answer
    refused = w["call"](w["alice"], http("DELETE", f"{V}/networks/gws-bn-{tag}"))
    assert refused[0] == 403
    assert w["call"](bob, http("DELETE", f"{V}/networks/gws-bn-{tag}"))[0] == 204
    subnet = {"Name": f"gws-bn2-{tag}", "IPAM": {"Config": [{"Subnet": "10.0.0.0/8"}]}}
    assert w["call"](bob, http("POST", f"{V}/networks/create", subnet))[0] == 403


def test_events_show_only_own_containers(world):
    w, tag = world, world["tag"]
    # events of the last minutes, until now: both users' containers were created meanwhile
    request = http("GET", f"{V}/events?since=0&until={int(time.time())}")
    mine = json_of_lines(w["call"](w["bob"], request)[1])
    names = {e.get("Actor", {}).get("Attributes", {}).get("name") for e in mine}
    assert f"gws-b-{tag}" in names
    assert f"gws-a-{tag}" not in names
    assert all(e["Type"] in ("container", "image", "volume", "network") for e in mine)


def json_of_lines(answer: bytes) -> list[dict]:
    from tests.helpers.gateway import body_of

    return [json.loads(line) for line in body_of(answer).splitlines() if line.strip()]


def test_one_user_cannot_hold_every_connection(tmp_path, unix_users):
    """Each connection is a thread in the gateway: past the per-user cap a user is refused,
    and another user still gets in."""
    config = write_config(tmp_path, {"gateway": {"max_connections_per_user": 3}})
    bob, alice = unix_users["ds01tb"], unix_users["ds01ta"]
    with running_gateway(config) as sock:
        read_end, write_end = os.pipe()
        release_read, release_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # bob opens three idle connections and holds them
            try:
                os.setgroups([])
                os.setgid(bob.gid)
                os.setuid(bob.uid)
                held = []
                for _ in range(3):
                    held.append(socket.socket(socket.AF_UNIX))
                    held[-1].connect(sock)
                os.write(write_end, b"x")
                os.read(release_read, 1)
            finally:
                os._exit(0)
        try:
            assert os.read(read_end, 1) == b"x"
            time.sleep(0.5)  # the gateway has counted them
            fourth = raw_as(bob.uid, bob.gid, sock, http("GET", f"{V}/_ping"))
            assert status_of(fourth) == 429 and b"limit is 3" in fourth
            assert status_of(raw_as(alice.uid, alice.gid, sock, http("GET", f"{V}/_ping"))) == 200
        finally:
            os.write(release_write, b"x")
            os.waitpid(pid, 0)
        time.sleep(0.5)  # closed connections no longer count
        assert status_of(raw_as(bob.uid, bob.gid, sock, http("GET", f"{V}/_ping"))) == 200


def test_a_refused_upload_still_gets_its_answer(world):
    """The refusal comes before the 20 MB body is read: the client, still writing, must get the
    403 rather than a broken pipe (the gateway reads and drops the rest before closing)."""
    upload = http(
        "PUT",
        f"{V}/containers/gws-a-{world['tag']}/archive?path=/tmp",
        b"\0" * (20 * 1024 * 1024),
        TAR_HEADERS,
    )
    status, answer = world["call"](world["bob"], upload)
    assert status == 403 and b"belongs to another user" in answer
