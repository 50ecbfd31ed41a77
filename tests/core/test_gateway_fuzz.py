"""Malformed and adversarial HTTP thrown at the gateway (hypothesis): it never crashes, and
nothing it forwards is something it should have refused — judged by an oracle written here,
apart from the policy under test (a rule dropped from the policy fails these tests).

The upstream here is a recording stand-in for the engine rather than dockerd: the property is
about what the gateway *sends*, which only a recorder can see for every example (the real
engine's side of the same refusals is tested in tests/integration/test_gateway_security.py).
It knows two users' containers and answers the gateway's ownership lookups like the engine.
"""

from __future__ import annotations

import json
import os
import re
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ds01_core.framework.runtime import load_runtime
from ds01_core.services.caller import Caller
from ds01_core.transports.gateway.peer import Peer
from ds01_core.transports.gateway.server import Gateway
from tests.helpers.config import write_config

OWNERS = {"a" * 64: "alice", "b" * 64: "bob"}
NAMES = {"alices": "a" * 64, "bobs": "b" * 64}
EXECS = {"e" * 64: "a" * 64, "f" * 64: "b" * 64}


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
    bob = Peer(pid=1, uid=60001, caller=Caller("bob", 60001, admin=False), home=BOB_HOME)
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


# -- the oracle: the rules, stated here on their own ---------------------------------------------
#
# Written apart from the gateway's policy (it calls neither ``classify()`` nor ``refusals()``), so
# that a rule dropped from the policy shows up as a forwarded request the oracle objects to. It
# reads the *forwarded* request the way the engine would: field names matched without regard to
# case (Go's encoding/json), the API version prefix and percent-encoding removed.

BOBS = {"bobs", "b" * 64}
ALICES = {"alices", "a" * 64}
OBJECTS = BOBS | ALICES | set(EXECS)
ADMIN_SEGMENTS = {
    "swarm",
    "nodes",
    "services",
    "tasks",
    "secrets",
    "configs",
    "plugins",
    "session",
    "grpc",
    "system",
}
HOST_NAMESPACES = ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "NetworkMode", "CgroupnsMode")
DOCKER_DEFAULT_CAPS = {
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
}  # fmt: skip
BOB_HOME = "/home/bob"


def fields(obj: object, name: str) -> list[object]:
    """Every value the engine could read as field ``name`` of ``obj`` (any spelling)."""
    if not isinstance(obj, dict):
        return []
    return [v for k, v in obj.items() if isinstance(k, str) and k.lower() == name.lower()]


def field(obj: object, name: str) -> object:
    found = fields(obj, name)
    return found[-1] if found else None


def as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else ([] if value in (None, "") else [value])


def under_bobs_home(path: str) -> bool:
    clean = os.path.normpath(path)
    return clean == BOB_HOME or clean.startswith(BOB_HOME + "/")


def create_problem(body: object) -> str | None:
    """Why a create body forwarded for bob gives him more than his own unprivileged
    container, or None."""
    if not isinstance(body, dict):
        return "a create body that is not an object"
    labels = field(body, "Labels")
    if not isinstance(labels, dict) or labels.get("ds01.user") != "bob":
        return "create without bob's owner label"
    for host in fields(body, "HostConfig"):
        if host is None:
            continue
        if not isinstance(host, dict):
            return f"an unreadable HostConfig {host!r}"
        if any(fields(host, "Privileged")):
            return "a privileged container"
        for key in HOST_NAMESPACES:
            for value in fields(host, key):
                if value == "host" or str(value).split(":", 1)[-1] in ALICES:
                    return f"{key}={value}"
        for key in ("Devices", "DeviceCgroupRules", "Sysctls", "CgroupParent"):
            if any(fields(host, key)):
                return f"host access through {key}"
        for cap in as_list(field(host, "CapAdd")):
            if str(cap).upper().removeprefix("CAP_") not in DOCKER_DEFAULT_CAPS:
                return f"capability {cap}"
        for option in as_list(field(host, "SecurityOpt")):
            if "unconfined" in str(option).lower():
                return f"security option {option}"
        if field(host, "Runtime") not in (None, "", "runc", "nvidia"):
            return f"runtime {field(host, 'Runtime')}"
        for ref in as_list(field(host, "VolumesFrom")):
            if str(ref).split(":", 1)[0] in ALICES:
                return "alice's volumes"
        for bind in as_list(field(host, "Binds")):
            source = str(bind).split(":", 1)[0]
            if ":" in str(bind) and source.startswith("/") and not under_bobs_home(source):
                return f"host path {source} bound"
        for mount in as_list(field(host, "Mounts")):
            source = str(field(mount, "Source") or "")
            if str(field(mount, "Type")) == "bind" and not under_bobs_home(source):
                return f"host path {source} mounted"
        for request in as_list(field(host, "DeviceRequests")):
            if field(request, "Count") == -1:
                return "all GPUs"
    for item in as_list(field(body, "Env")):
        if str(item).replace(" ", "") == "NVIDIA_VISIBLE_DEVICES=all":
            return "all GPUs by environment"
    return None


def forwarded_kind(method: str, target: str) -> tuple[str, list[str], dict[str, list[str]]]:
    """What a forwarded request does, as a name (``POST containers/{id}/start``: the method
    and the path, object references left out), the decoded path segments and the query."""
    raw_path, _, raw_query = target.partition("?")
    path = re.sub(r"^/v\d+\.\d+(?=/)", "", unquote(raw_path))
    parts = path.strip("/").split("/")
    query = parse_qs(raw_query, keep_blank_values=True)
    named = ["{id}" if p in OBJECTS or len(p) == 64 else p for p in parts]
    return f"{method} {'/'.join(named)}", parts, query


def authorised(method: str, target: str, body: bytes) -> str | None:
    """Why a forwarded request should not have been forwarded for bob, or None."""
    version = re.match(r"^/v(\d+)\.(\d+)/", target)
    if version and (int(version[1]), int(version[2])) < (1, 24):
        return "an API version that reads a HostConfig at start"
    _kind, parts, query = forwarded_kind(method, target)
    if parts[0] in ADMIN_SEGMENTS or parts[-1] == "prune":
        return f"admin-only {'/'.join(parts)}"
    if parts[0] == "containers" and len(parts) >= 2 and parts[1] not in ("json", "create"):
        if parts[2:] == ["json"]:
            # a read authorised on the engine's answer: the gateway asks, and withholds the
            # answer for another's container (checked by the tests: alice's inspect never
            # reaches bob)
            return None if method == "GET" and not body else "inspect with a body"
        if parts[1] not in BOBS:
            return f"container op on {parts[1]!r}"
        if parts[2:] == ["exec"] and any(fields(json.loads(body), "Privileged")):
            return "privileged exec"
    if parts[0] == "exec" and EXECS.get(parts[1] if len(parts) > 1 else "") != "b" * 64:
        return "another's exec"
    if parts == ["containers", "create"]:
        return create_problem(json.loads(body))
    if parts == ["commit"] and not set(query.get("container", [])) <= BOBS:
        return "commit of another's container"
    if parts == ["build"] and not set(query.get("networkmode", [])) <= {
        "",
        "default",
        "bridge",
        "none",
    }:
        return "build network"
    if parts[0] == "images" and method == "DELETE" and set(query.get("force", [])) - {"", "0"}:
        return "forced image removal"
    if parts == ["images", "create"] and set(query.get("fromSrc", [])) - {"", "-"}:
        return "import from a URL"
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


STRUCTURED = {
    "call": st.one_of(PAIRED, PAIRED, RANDOM_CALLS),
    "headers": st.one_of(st.just([]), st.just([b"Content-Type: application/json"]), HEADER_SETS),
    "body": BODIES,
    "frame": st.sampled_from(["length", "chunked", "none"]),
    "pipelined": st.booleans(),
}
#: shapes every run tries, whatever hypothesis draws
EXAMPLES = [
    {"call": (b"POST", "/v1.41/containers/bobs/start"), "body": b"", "frame": "none"},
    {
        "call": (b"POST", "/v1.41/containers/create?name=x"),
        "body": b'{"Image": "busybox", "HostConfig": {"Binds": ["/home/bob:/h"]}}',
        "frame": "length",
        "pipelined": True,
    },
    {
        "call": (b"POST", "/v1.41/containers/create?name=x"),
        "body": b'{"Image": "busybox", "HostConfig": {"Privileged": true}}',
        "frame": "length",
    },
    {"call": (b"POST", "/v1.41/containers/bobs/exec"), "body": b'{"Cmd": ["id"]}'},
    {"call": (b"PUT", "/v1.41/containers/bobs/archive?path=/tmp"), "body": b"tar"},
    {"call": (b"GET", "/v1.41/containers/json"), "body": b"", "frame": "none", "pipelined": True},
    {
        "call": (b"POST", "/v1.41/exec/" + "f" * 64 + "/start"),
        "body": b'{"Detach": true}',
        "frame": "length",
    },
    {"call": (b"DELETE", "/v1.41/containers/bobs"), "body": b"", "frame": "none"},
    {"call": (b"GET", "/v1.41/networks"), "body": b"", "frame": "none"},
]
EXAMPLES = [{"headers": [], "frame": "chunked", "pipelined": False, **e} for e in EXAMPLES]


def structured_request(call, headers, body, frame, pipelined) -> bytes:
    method, path = call
    request = build_request(method, path, headers, body, frame)
    if pipelined:
        request += build_request(b"GET", "/v1.41/containers/alices/json", [], b"", "none")
    return request


def with_examples(test):
    for shape in reversed(EXAMPLES):
        test = example(**shape)(test)
    return test


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(**STRUCTURED)
@with_examples
def test_structured_requests(setup, call, headers, body, frame, pipelined):
    gateway, engine = setup
    send_and_judge(gateway, engine, structured_request(call, headers, body, frame, pipelined))


def send_and_judge(gateway: Gateway, engine: FakeEngine, request: bytes) -> set[str]:
    """Send ``request``; assert the gateway did not fail and forwarded nothing the oracle
    objects to; the kinds of what it forwarded."""
    engine.forwarded.clear()
    answer = exchange(gateway.socket_path, request)
    assert b" 500 " not in answer.split(b"\r\n", 1)[0], answer[:300]
    assert b'"Id": "' + b"a" * 64 not in answer  # alice's inspect never reaches bob
    kinds = set()
    for forwarded_method, target, forwarded_body in engine.forwarded:
        problem = authorised(forwarded_method, target, forwarded_body)
        assert problem is None, f"forwarded {forwarded_method} {target}: {problem}"
        kinds.add(forwarded_kind(forwarded_method, target)[0])
    return kinds


FORBIDDEN_CREATES = {
    "privileged": {"HostConfig": {"Privileged": True}},
    "privileged, lower-case": {"hostconfig": {"privileged": True}},
    "host pid namespace": {"HostConfig": {"PidMode": "host"}},
    "host network": {"HostConfig": {"NetworkMode": "host"}},
    "host device": {"HostConfig": {"Devices": [{"PathOnHost": "/dev/sda"}]}},
    "host bind": {"HostConfig": {"Binds": ["/etc:/e"]}},
    "host bind mount": {
        "HostConfig": {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/h"}]}
    },
    "SYS_ADMIN": {"HostConfig": {"CapAdd": ["SYS_ADMIN"]}},
    "another's pid namespace": {"HostConfig": {"PidMode": "container:alices"}},
}


@pytest.mark.parametrize("name", sorted(FORBIDDEN_CREATES))
def test_forbidden_creates_are_refused_whatever_the_fuzzer_drew(setup, name):
    """The oracle's rules applied to bodies chosen to break them: each is answered 403 and
    no create reaches the engine (the fuzzing may or may not have drawn these)."""
    gateway, engine = setup
    body = json.dumps({"Image": "busybox", **FORBIDDEN_CREATES[name]}).encode()
    assert create_problem({**json.loads(body), "Labels": {"ds01.user": "bob"}}) is not None
    request = build_request(b"POST", "/v1.41/containers/create?name=x", [], body, "length")
    send_and_judge(gateway, engine, request)
    assert not [t for _, t, _ in engine.forwarded if "/containers/create" in t], engine.forwarded


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=600))
def test_random_bytes(setup, data):
    gateway, engine = setup
    engine.forwarded.clear()
    answer = exchange(gateway.socket_path, data)
    assert b" 500 " not in answer.split(b"\r\n", 1)[0]
    for forwarded_method, target, forwarded_body in engine.forwarded:
        assert authorised(forwarded_method, target, forwarded_body) is None


def test_the_fuzzing_reaches_the_engine_and_the_gateway_keeps_serving(setup):
    """Self-contained: the inputs of :func:`test_structured_requests` (its examples and a
    fixed-seed run of its strategies) get requests of many kinds through to the engine, so
    the property is not vacuous; and after them the gateway still answers, and refuses."""
    gateway, engine = setup
    kinds: set[str] = set()
    for shape in EXAMPLES:
        kinds |= send_and_judge(gateway, engine, structured_request(**shape))

    @settings(
        max_examples=300,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(**STRUCTURED)
    def draw(**shape):
        kinds.update(send_and_judge(gateway, engine, structured_request(**shape)))

    draw()
    assert len(kinds) >= 10, kinds
    for garbage in (
        b"\x00" * 100,
        b"GET / HTTP/9\r\n\r\n",
        b"POST /containers/create HTTP/1.1\r\n",
    ):
        exchange(gateway.socket_path, garbage)
    answer = exchange(
        gateway.socket_path, b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200")
    refused = exchange(
        gateway.socket_path,
        b"POST /v1.41/containers/alices/stop HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
    )
    assert refused.startswith(b"HTTP/1.1 403") and b"another user" in refused
