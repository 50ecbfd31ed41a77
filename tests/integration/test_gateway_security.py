"""Ways out through the gateway, tried by a real user on the real socket: each is refused and
reaches nothing, and the legitimate request next to it goes through."""

from __future__ import annotations

import contextlib
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
            "events": config.parent / "log" / "events.jsonl",
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
    "privileged among other refusals": via_create({"Privileged": True, "Sysctls": {"a.b": "1"}}),
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
    # what a BuildKit client sends: told to use the classic builder, not that its parameters
    # are not allowed
    "BuildKit build": raw(
        "POST", f"{V}/build?t=gws-{{n}}&version=2&session=x&cgroupparent=", BUILD, TAR_HEADERS
    ),
    "duplicated networkmode": raw(
        "POST", f"{V}/build?t=gws-{{n}}&networkmode=default&networkmode=host", BUILD, TAR_HEADERS
    ),
    # paths and framing
    "dot-dot path": raw("POST", f"{V}/containers/{{b}}/../../swarm/init", {}),
    "encoded dot-dot path": raw("POST", f"{V}/containers/%2e%2e/%2e%2e/swarm/init", {}),
    "image import from a URL": raw("POST", f"{V}/images/create?fromSrc=http://169.254.169.254/x"),
    "remove another's volume": raw("DELETE", f"{V}/volumes/{{av}}"),
}

#: the reason each attack is refused, as the client reads it (and the audit log keeps it)
REASONS = {
    "all GPUs by env": "NVIDIA_VISIBLE_DEVICES=all is not allowed",
    "all GPUs by request": "all GPUs (--gpus all) may not be requested",
    "another's named volume": "belongs to another user",
    "apparmor unconfined": "security option 'apparmor=unconfined' would weaken isolation",
    "bind /": "mounting / would expose the host",
    "bind /etc": "mounting /etc would expose the host",
    "bind docker socket": "mounting /var/run/docker.sock would expose the host",
    "bind other home": "/home/ds01ta is in another user's home",
    "build from a URL the host fetches": "build parameters remote are not allowed",
    "build in a chosen cgroup": "build parameters cgroupparent are not allowed",
    "build with host network": "building with network 'host' is not allowed",
    "BuildKit session": "BuildKit sessions are not available",
    "BuildKit build": "build with the classic builder: DOCKER_BUILDKIT=0",
    "cap_add ALL": "adding capabilities ['ALL'] is not allowed",
    "cap_add SYS_ADMIN": "adding capabilities ['SYS_ADMIN'] is not allowed",
    "cgroup parent": "the cgroup parent is set by ds01",
    "device cgroup rule": "device cgroup rules are not allowed",
    "dot-dot path": "unclean path",
    "duplicate key": "field 'Privileged' given twice",
    "duplicated networkmode": "'networkmode' given more than once",
    "encoded dot-dot path": "unclean path",
    "exec in another's container": "belongs to another user",
    "form-encoded parameters": "form-encoded requests are not accepted",
    "get archive from another's container": "belongs to another user",
    "host device": "host devices may not be added",
    "host port 22": "host port 22 is not allowed",
    "HostConfig smuggled into start (API 1.23)": "API version 1.23 is older than 1.24",
    "image import from a URL": "importing an image from a URL is not allowed",
    "inspect another's exec": "belongs to another user",
    "ipc host": "IpcMode=host would share the host's namespace",
    "local volume over /etc": "mounting /etc would expose the host",
    "lower-case field names": "field 'hostconfig' must be spelt 'HostConfig'",
    "mount /proc": "mounting /proc would expose the host",
    "network host": "NetworkMode=host would share the host's namespace",
    "pid host": "PidMode=host would share the host's namespace",
    "pid of another's container": "sharing a namespace is allowed only with your own containers",
    "privileged": "privileged containers are not allowed",
    "privileged among other refusals": "privileged containers are not allowed",
    "privileged exec": "privileged exec is not allowed",
    "put archive into another's container": "belongs to another user",
    "remove another's volume": "belongs to another user",
    "runtime": "runtime 'io.containerd.runtime.v1.linux' is not allowed",
    "seccomp unconfined": "security option 'seccomp=unconfined' would weaken isolation",
    "start another's exec": "belongs to another user",
    "stat archive of another's container": "belongs to another user",
    "sysctl": "sysctls are not allowed",
    "unmasked /proc": "MaskedPaths may not be changed",
    "userns host": "UsernsMode=host would share the host's namespace",
    "uts host": "UTSMode=host would share the host's namespace",
    "volumes from another's container": "--volumes-from gws-a-",
}
#: malformed requests, refused before any policy looks at them: no access.denied event
NOT_AUDITED = {"duplicated networkmode", "dot-dot path", "encoded dot-dot path"}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_refused(world, name, docker_engine):
    probe = f"gws-x{abs(hash(name)) % 10**8}"
    logged = len(events(world))
    status, answer = ATTACKS[name](world, probe)
    assert status in (400, 403), f"{name}: {status} {answer[:300]!r}"
    message = (json_of(answer) or {}).get("message", "")
    assert message.startswith("ds01: ")  # the refusal says who refused
    assert REASONS[name] in message  # and why: this refusal, not another one
    denied = [
        e
        for e in events(world)[logged:]
        if e["event_type"] == "access.denied" and e["user"] == world["bob"].name
    ]
    if name in NOT_AUDITED:
        assert not denied
    else:  # written before the answer was sent: already there
        assert [e["details"]["reason"] for e in denied] == [message.removeprefix("ds01: ")]
    assert docker_engine.inspect_container(probe) is None
    assert docker_engine.inspect_image(f"gws-{probe}") is None


def events(world) -> list[dict]:
    path = world["events"]
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_every_attack_has_the_reason_it_must_be_refused_for():
    """An attack added without its reason would only be checked for its status code."""
    assert set(REASONS) == set(ATTACKS)


def test_smuggling_is_refused(world):
    request = (
        f"POST {V}/containers/gws-b-{world['tag']}/stop HTTP/1.1\r\nHost: d\r\n"
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ).encode()
    status, answer = world["call"](world["bob"], request)
    assert status == 400 and b"both Content-Length and Transfer-Encoding" in answer


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
    status, answer = w["call"](w["alice"], http("DELETE", f"{V}/networks/gws-bn-{tag}"))
    assert status == 403 and b"belongs to another user" in answer
    assert w["call"](bob, http("DELETE", f"{V}/networks/gws-bn-{tag}"))[0] == 204
    subnet = {"Name": f"gws-bn2-{tag}", "IPAM": {"Config": [{"Subnet": "10.0.0.0/8"}]}}
    status, answer = w["call"](bob, http("POST", f"{V}/networks/create", subnet))
    assert status == 403 and b"choosing subnets (IPAM) is for admins" in answer


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

        def ping(user):
            return raw_as(user.uid, user.gid, sock, http("GET", f"{V}/_ping"))

        read_end, write_end = os.pipe()
        release_read, release_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # bob holds three idle connections, then tries a fourth that sends nothing
            try:
                os.setgroups([])
                os.setgid(bob.gid)
                os.setuid(bob.uid)
                # connect() returns once the kernel queued the connection, before the gateway
                # has counted it, and the gateway's threads may count a later connection of bob's
                # first (then one of these is the one refused): an answered request is what
                # shows a connection was counted. Keep-alive: it stays open, idle, afterwards.
                held, seen = [], []
                for n in range(4):
                    held.append(socket.socket(socket.AF_UNIX))
                    held[-1].settimeout(10)
                    held[-1].connect(sock)
                    if n < 3:
                        held[-1].sendall(f"GET {V}/_ping HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
                    answer = b""
                    with contextlib.suppress(TimeoutError):  # seen as 0: no answer came
                        while b"\r\n" not in answer and (data := held[-1].recv(65536)):
                            answer += data
                    seen.append(str(status_of(answer)))
                os.write(write_end, " ".join(seen).encode())
                os.read(release_read, 1)
            finally:
                os._exit(0)
        os.close(write_end)  # a child that failed is then an empty read, not a hang
        try:
            # the fourth is refused at connection time, before it sends a request
            assert os.read(read_end, 100) == b"200 200 200 429"
            fourth = ping(bob)
            assert status_of(fourth) == 429 and b"limit is 3" in fourth
            assert status_of(ping(alice)) == 200
        finally:
            os.write(release_write, b"x")
            os.waitpid(pid, 0)
        # closed connections stop counting once the gateway has seen them close
        until(lambda: ping(bob), lambda answer: status_of(answer) == 200)


def until(attempt, done, timeout: float = 10.0):
    """``attempt()`` again until ``done`` accepts its result (returned); fails at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = attempt()
        if done(result):
            return result
        assert time.monotonic() < deadline, f"still {result[:200]!r} after {timeout} s"
        time.sleep(0.05)


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
