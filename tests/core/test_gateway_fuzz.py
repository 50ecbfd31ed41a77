"""Malformed and adversarial HTTP thrown at the gateway (hypothesis): it never crashes, and
nothing it forwards is something it should have refused.

The upstream here is a recording stand-in for the engine rather than dockerd: the property is
about what the gateway *sends*, which only a recorder can see for every example (the real
engine's side of the same refusals is tested in tests/integration/test_gateway_security.py).
It knows two users' containers and answers the gateway's ownership lookups like the engine.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ds01_core.framework.runtime import load_runtime
from ds01_core.services.caller import Caller
from ds01_core.transports.gateway.create_policy import CreateRules, refusals
from ds01_core.transports.gateway.peer import Peer
from ds01_core.transports.gateway.routes import classify
from ds01_core.transports.gateway.server import Gateway
from tests.helpers.config import write_config

OWNERS = {"a" * 64: "alice", "b" * 64: "bob"}
NAMES = {"alices": "a" * 64, "bobs": "b" * 64}
EXECS = {"e" * 64: "a" * 64, "f" * 64: "b" * 64}
ADMIN_ONLY = {"admin", "buildkit"}
FORWARDED_KINDS: set[str] = set()  # what the structured examples got through, to check coverage


class FakeEngine(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str):
        self.forwarded: list[tuple[str, str, bytes]] = []
        super().__init__(path, EngineHandler)


class EngineHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def address_string(self) -> str:
        return "engine"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if not size:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def handle_one_request(self) -> None:  # every method
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline or not self.parse_request():
            self.close_connection = True
            return
        body = self._body()
        path = self.path.split("?")[0]
        parts = path.split("/")
        if self.headers.get("User-Agent") != "ds01-gateway":
            self.server.forwarded.append((self.command, self.path, body))  # type: ignore[attr-defined]
        if self.command == "GET" and len(parts) >= 4 and parts[-1] == "json":
            kind, ref = parts[-3], parts[-2]
            if kind == "containers":
                cid = NAMES.get(ref, ref if ref in OWNERS else None)
                if cid:
                    labels = {"ds01.user": OWNERS[cid]}
                    return self._answer(
                        200, {"Id": cid, "Name": "/x", "Config": {"Labels": labels}, "State": {}}
                    )
            if kind == "exec" and ref in EXECS:
                return self._answer(200, {"ID": ref, "ContainerID": EXECS[ref]})
            return self._answer(404, {"message": "no such object"})
        if path.endswith("/containers/json") or path.endswith("/networks"):
            return self._answer(200, [])
        if path.endswith("/volumes"):
            return self._answer(200, {"Volumes": []})
        if path.endswith("/containers/create"):
            return self._answer(201, {"Id": "c" * 64})
        self._answer(200, {})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    engine = FakeEngine(str(base / "engine.sock"))
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    config = write_config(base, {"plugins": {"disabled": ["cgroups", "diskquota"]}})
    runtime = load_runtime(str(config))
    bob = Peer(pid=1, uid=60001, caller=Caller("bob", 60001, admin=False), home="/home/bob")
    gateway = Gateway(
        runtime,
        socket_path=str(base / "gw.sock"),
        upstream=str(base / "engine.sock"),
        identify=lambda sock, group: bob,
    )
    gateway.bind()
    threading.Thread(target=gateway.serve, daemon=True).start()
    yield gateway, engine
    gateway.shutdown()
    engine.shutdown()


def exchange(path: str, data: bytes) -> bytes:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(path)
    try:
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    answer = b""
    while True:
        try:
            chunk = client.recv(65536)
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        answer += chunk
    client.close()
    return answer


def authorised(method: str, target: str, body: bytes) -> str | None:
    """Why a forwarded request should not have been forwarded for bob, or None."""
    route = classify(method, target)
    if route.kind in ADMIN_ONLY:
        return f"admin-only {route.kind}"
    if route.kind == "container.inspect":
        # a read authorised on the engine's answer: the gateway asks, and withholds the answer
        # for another's container (checked by the tests: alice's inspect never reaches bob)
        return None if method == "GET" and not body else "inspect with a body"
    if route.kind.startswith("container.") and route.ref and OWNERS.get(route.ref) != "bob":
        return f"container op on {route.ref!r}"
    if route.kind in ("exec.start", "exec.op") and EXECS.get(str(route.ref)) != "b" * 64:
        return "another's exec"
    if route.kind == "container.create":
        created = json.loads(body)
        if created.get("Labels", {}).get("ds01.user") != "bob":
            return "create without bob's owner label"
        rules = CreateRules(home="/home/bob")
        problems = refusals(created, rules)
        if problems:
            return f"create with {problems}"
    if route.kind == "container.exec" and json.loads(body).get("Privileged"):
        return "privileged exec"
    if route.kind == "build" and route.param("networkmode") not in (
        None,
        "",
        "default",
        "bridge",
        "none",
    ):
        return "build network"
    return None


SEGMENTS = st.sampled_from(
    [
        "containers",
        "alices",
        "bobs",
        "a" * 64,
        "b" * 64,
        "json",
        "start",
        "exec",
        "create",
        "archive",
        "..",
        ".",
        "",
        "%2e%2e",
        "%2F",
        "swarm",
        "build",
        "images",
        "volumes",
        "networks",
        "e" * 64,
        "f" * 64,
        "attach",
        "logs",
        "update",
        "session",
        "plugins",
        "x%00",
    ]
)
TEMPLATES = st.sampled_from(
    [
        "containers/{r}/start",
        "containers/{r}/json",
        "containers/create",
        "containers/{r}/exec",
        "exec/{e}/start",
        "exec/{e}/json",
        "containers/{r}/archive",
        "build",
        "images/create",
        "volumes/create",
        "networks/create",
        "containers/json",
        "events",
        "_ping",
        "containers/{r}",
        "networks/{r}/connect",
        "commit",
        "containers/{r}/update",
        "containers/{r}/attach",
        "containers/{r}/logs",
        "images/{r}",
        "volumes/{r}",
    ]
)
REFS = st.sampled_from(
    ["alices", "bobs", "a" * 64, "b" * 64, "e" * 64, "f" * 64, "%2e%2e", "x%2Fy", "bobs%00", "BOBS"]
)
ROUTED = st.builds(lambda t, r, e: [t.format(r=r, e=e)], TEMPLATES, REFS, REFS)
PATHS = st.builds(
    lambda version, parts, query: version + "/" + "/".join(parts) + query,
    st.sampled_from(["", "/v1.41", "/v1.23", "/v1.45", "/v9.99", "/v1.4x"]),
    st.one_of(ROUTED, ROUTED, st.lists(SEGMENTS, min_size=1, max_size=5)),
    st.sampled_from(
        [
            "",
            "?name=bobs",
            "?networkmode=host",
            "?fromSrc=http://x",
            "?container=alices",
            "?link=1",
            "?a=1;b=2",
            "?t=x&t=y",
            "?force=1",
        ]
    ),
)
FIELDS = st.sampled_from(
    [
        "Image",
        "HostConfig",
        "hostconfig",
        "Privileged",
        "privileged",
        "Binds",
        "CapAdd",
        "PidMode",
        "NetworkMode",
        "Labels",
        "Env",
        "Cmd",
        "Devices",
        "DeviceRequests",
        "Mounts",
        "SecurityOpt",
        "Detach",
        "Container",
        "PRIVILEGED",
        "Sysctls",
        "UsernsMode",
        "Runtime",
    ]
)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 3)
    | st.sampled_from(
        [
            "host",
            "/:/h",
            "/etc:/e",
            "all",
            "ALL",
            "SYS_ADMIN",
            "container:alices",
            "busybox",
            "NVIDIA_VISIBLE_DEVICES=all",
            "seccomp=unconfined",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELDS, inner, max_size=4),
    max_leaves=12,
)
HOST_FIELDS = st.sampled_from(
    [
        "Privileged",
        "privileged",
        "Binds",
        "CapAdd",
        "PidMode",
        "NetworkMode",
        "Devices",
        "DeviceRequests",
        "Mounts",
        "SecurityOpt",
        "Sysctls",
        "UsernsMode",
        "Runtime",
        "CgroupParent",
        "VolumesFrom",
        "IpcMode",
        "Memory",
    ]
)
CREATES = st.builds(
    lambda host, env, extra: {"Image": "busybox", "HostConfig": host, "Env": env, **extra},
    st.dictionaries(HOST_FIELDS, VALUES, max_size=4),
    st.lists(
        st.sampled_from(["A=1", "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_VISIBLE_DEVICES=0"]),
        max_size=2,
    ),
    st.dictionaries(FIELDS, VALUES, max_size=2),
)
BODIES = st.one_of(
    st.dictionaries(FIELDS, VALUES, max_size=5).map(lambda d: json.dumps(d).encode()),
    CREATES.map(lambda d: json.dumps(d).encode()),
    CREATES.map(lambda d: json.dumps(d).encode()),
    st.just(b""),
    st.binary(max_size=200),
)
HEADER_SETS = st.lists(
    st.sampled_from(
        [
            b"Content-Type: application/json",
            b"Content-Type: application/x-www-form-urlencoded",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: gzip, chunked",
            b"Content-Length: 3",
            b"Content-Length: -1",
            b"Content-Length: 99999999999999999999",
            b"Connection: Upgrade",
            b"Upgrade: tcp",
            b"Expect: 100-continue",
            b"Bad Header",
            b"X: a\r\n b",
            b"Host: docker",
            b"X-Null: \x00",
        ]
    ),
    max_size=4,
)


def build_request(method: bytes, path: str, headers: list[bytes], body: bytes, frame: str) -> bytes:
    lines = [method + b" " + path.encode() + b" HTTP/1.1", *headers]
    if frame == "length":
        lines.append(b"Content-Length: %d" % len(body))
        payload = body
    elif frame == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        payload = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        payload = body
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


PAIRED = st.builds(
    lambda pair, version, ref, query: (pair[0], version + "/" + pair[1].format(r=ref) + query),
    st.sampled_from(
        [
            (b"POST", "containers/{r}/start"),
            (b"GET", "containers/{r}/json"),
            (b"POST", "containers/create"),
            (b"POST", "containers/{r}/exec"),
            (b"POST", "exec/{r}/start"),
            (b"GET", "containers/{r}/archive"),
            (b"PUT", "containers/{r}/archive"),
            (b"POST", "build"),
            (b"GET", "containers/json"),
            (b"GET", "_ping"),
            (b"DELETE", "containers/{r}"),
            (b"POST", "containers/{r}/attach"),
            (b"POST", "containers/{r}/update"),
            (b"GET", "volumes"),
            (b"POST", "volumes/create"),
            (b"POST", "networks/create"),
            (b"GET", "events"),
            (b"POST", "commit"),
        ]
    ),
    st.sampled_from(["", "/v1.41", "/v1.41", "/v1.23"]),
    REFS,
    st.sampled_from(
        [
            "",
            "",
            "?container=bobs",
            "?container=alices",
            "?networkmode=host",
            "?name=x",
            "?networkmode=none",
        ]
    ),
)
RANDOM_CALLS = st.tuples(
    st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"BREW", b"get"]), PATHS
)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    call=st.one_of(PAIRED, PAIRED, RANDOM_CALLS),
    headers=st.one_of(st.just([]), st.just([b"Content-Type: application/json"]), HEADER_SETS),
    body=BODIES,
    frame=st.sampled_from(["length", "chunked", "none"]),
    pipelined=st.booleans(),
)
@example(
    call=(b"POST", "/v1.41/containers/bobs/start"),
    headers=[],
    body=b"",
    frame="none",
    pipelined=False,
)
@example(
    call=(b"POST", "/v1.41/containers/create?name=x"),
    headers=[],
    body=b'{"Image": "busybox", "HostConfig": {"Binds": ["/home/bob:/h"]}}',
    frame="length",
    pipelined=True,
)
@example(
    call=(b"POST", "/v1.41/containers/bobs/exec"),
    headers=[],
    body=b'{"Cmd": ["id"]}',
    frame="chunked",
    pipelined=False,
)
@example(
    call=(b"PUT", "/v1.41/containers/bobs/archive?path=/tmp"),
    headers=[],
    body=b"tar",
    frame="chunked",
    pipelined=False,
)
@example(
    call=(b"GET", "/v1.41/containers/json"), headers=[], body=b"", frame="none", pipelined=True
)
@example(
    call=(b"POST", "/v1.41/exec/" + "f" * 64 + "/start"),
    headers=[],
    body=b'{"Detach": true}',
    frame="length",
    pipelined=False,
)
@example(
    call=(b"DELETE", "/v1.41/containers/bobs"), headers=[], body=b"", frame="none", pipelined=False
)
@example(call=(b"GET", "/v1.41/networks"), headers=[], body=b"", frame="none", pipelined=False)
def test_structured_requests(setup, call, headers, body, frame, pipelined):
    gateway, engine = setup
    method, path = call
    engine.forwarded.clear()
    request = build_request(method, path, headers, body, frame)
    if pipelined:
        request += build_request(b"GET", "/v1.41/containers/alices/json", [], b"", "none")
    answer = exchange(gateway.socket_path, request)
    assert b" 500 " not in answer.split(b"\r\n", 1)[0], answer[:300]
    assert b'"Id": "' + b"a" * 64 not in answer  # alice's inspect never reaches bob
    for forwarded_method, target, forwarded_body in engine.forwarded:
        problem = authorised(forwarded_method, target, forwarded_body)
        assert problem is None, f"forwarded {forwarded_method} {target}: {problem}"
        FORWARDED_KINDS.add(classify(forwarded_method, target).kind)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=600))
def test_random_bytes(setup, data):
    gateway, engine = setup
    engine.forwarded.clear()
    answer = exchange(gateway.socket_path, data)
    assert b" 500 " not in answer.split(b"\r\n", 1)[0]
    for forwarded_method, target, forwarded_body in engine.forwarded:
        assert authorised(forwarded_method, target, forwarded_body) is None


def test_still_serving_after_the_fuzzing(setup):
    """Runs after the fuzzing (file order): the examples did reach the engine in many shapes,
    so the property above was not vacuous, and the gateway still answers."""
    gateway, _engine = setup
    assert len(FORWARDED_KINDS) >= 10, FORWARDED_KINDS
    answer = exchange(
        gateway.socket_path, b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200")
    refused = exchange(
        gateway.socket_path,
        b"POST /v1.41/containers/alices/stop HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
    )
    assert refused.startswith(b"HTTP/1.1 403") and b"another user" in refused
