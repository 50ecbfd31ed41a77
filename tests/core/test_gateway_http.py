"""The gateway's HTTP framing and route table: what is parsed is exactly what is judged."""

from __future__ import annotations

import socket
import threading

import pytest

from ds01_core.framework.runtime import load_runtime
from ds01_core.services.caller import Caller
from ds01_core.transports.gateway.answers import json_array_filter
from ds01_core.transports.gateway.handlers import HANDLERS
from ds01_core.transports.gateway.http import Head, HttpError, Stream, parse_head
from ds01_core.transports.gateway.peer import Peer
from ds01_core.transports.gateway.routes import ROUTES, api_version, classify
from ds01_core.transports.gateway.server import Gateway
from tests.helpers.config import write_config


def head(text: bytes) -> Head:
    return parse_head(text, request=True)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /x", 400),
        (b"BREW /x HTTP/1.1", 405),
        (b"GET x HTTP/1.1", 400),
        (b"GET /x HTTP/2.0", 505),
        (b"GET /x HTTP/1.1\r\nBad Header", 400),
        (b"GET /x HTTP/1.1\r\nX: a\r\n folded", 400),
        (b"GET /x HTTP/1.1\r\nX: a\x00b", 400),
        (b"GET /x HTTP/1.1\r\nSp ace: 1", 400),
    ],
)
def test_malformed_heads_are_refused(raw, status):
    with pytest.raises(HttpError) as refused:
        head(raw)
    assert refused.value.status == status


@pytest.mark.parametrize(
    ("headers", "framing"),
    [
        (b"", ("none", 0)),
        (b"\r\nContent-Length: 12", ("length", 12)),
        (b"\r\nTransfer-Encoding: chunked", ("chunked", 0)),
    ],
)
def test_body_framing(headers, framing):
    assert head(b"POST /x HTTP/1.1" + headers).body_framing() == framing


@pytest.mark.parametrize(
    "headers",
    [
        b"\r\nContent-Length: 1\r\nTransfer-Encoding: chunked",
        b"\r\nContent-Length: 1\r\nContent-Length: 2",
        b"\r\nContent-Length: -1",
        b"\r\nContent-Length: 0x10",
        b"\r\nTransfer-Encoding: gzip, chunked",
        b"\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    ],
)
def test_ambiguous_framing_is_refused(headers):
    with pytest.raises(HttpError) as refused:
        head(b"POST /x HTTP/1.1" + headers).body_framing()
    assert refused.value.status == 400


def test_keep_alive_follows_the_version():
    assert head(b"GET /x HTTP/1.1").keep_alive()
    assert not head(b"GET /x HTTP/1.1\r\nConnection: close").keep_alive()
    assert not head(b"GET /x HTTP/1.0").keep_alive()
    assert head(b"GET /x HTTP/1.0\r\nConnection: keep-alive").keep_alive()


def test_chunked_bodies_and_pipelining():
    left, right = socket.socketpair()
    left.sendall(
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n"
        b"GET /b HTTP/1.1\r\n\r\n"
    )
    stream = Stream(right)
    first = stream.read_head(request=True)
    assert stream.read_body(first.body_framing(), 100) == b"abcde"
    assert stream.read_head(request=True).target == "/b"
    left.close()
    assert stream.read_head(request=True) is None
    with pytest.raises(HttpError):
        other_left, other_right = socket.socketpair()
        other_left.sendall(b"zz\r\n")
        list(Stream(other_right).chunks())


def test_body_limit():
    left, right = socket.socketpair()
    left.sendall(b"x" * 10)
    with pytest.raises(HttpError) as refused:
        Stream(right).read_body(("length", 10), 5)
    assert refused.value.status == 413


@pytest.mark.parametrize(
    ("method", "target", "kind", "ref"),
    [
        ("GET", "/_ping", "open", None),
        ("GET", "/v1.41/containers/json?all=1", "container.list", None),
        ("POST", "/v1.41/containers/abc/start", "container.op", "abc"),
        ("GET", "/containers/abc/json", "container.inspect", "abc"),
        ("POST", "/exec/e1/start", "exec.start", "e1"),
        ("DELETE", "/images/library/busybox:latest", "image.delete", "library/busybox:latest"),
        ("GET", "/images/registry:5000/x/y/json", "image.inspect", "registry:5000/x/y"),
        ("POST", "/swarm/init", "admin", None),
        ("GET", "/plugins", "admin", None),
        ("POST", "/containers/prune", "admin", None),
        ("POST", "/grpc", "buildkit", None),
        ("GET", "/containers/abc/archive?path=/etc", "container.archive", "abc"),
        ("GET", "/containers/json/", "container.list", None),
    ],
)
def test_routes(method, target, kind, ref):
    route = classify(method, target)
    assert (route.kind, route.ref) == (kind, ref)


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        ("GET", "/containers/abc/../def/json", 400),
        ("GET", "/containers/%2e%2e/json", 400),
        ("GET", "/containers//json", 400),
        ("GET", "/containers/a%00b/json", 400),
        ("GET", "/containers/a%5cb/json", 400),
        ("GET", "/containers/abc/json?a=1;b=2", 400),
        ("GET", "/containers/%ff/json", 400),
        ("POST", "/containers/abc/json", 403),
        ("GET", "/no/such/thing", 403),
        ("PATCH", "/containers/abc/start", 403),
    ],
)
def test_unclean_or_unknown_requests(method, target, status):
    with pytest.raises(HttpError) as refused:
        classify(method, target)
    assert refused.value.status == status


def test_forwarded_target_is_re_encoded_with_the_full_id():
    route = classify("POST", "/v1.41/containers/my%20box/kill?signal=SIGTERM")
    assert route.ref == "my box"
    assert route.with_ref("f" * 64) == f"/v1.41/containers/{'f' * 64}/kill?signal=SIGTERM"
    assert classify("GET", "/containers/containers/json").with_ref("x") == "/containers/x/json"
    assert api_version(route) == (1, 41)
    with pytest.raises(HttpError):
        classify("POST", "/build?networkmode=a&networkmode=b").param("networkmode")


def test_listing_filter_keeps_the_engines_text():
    data = b'[{"Id":"a","Names":["/x"]},\n {"Id":"b"} ,{"Id":"c","N":"\\u00e9"}]'
    assert json_array_filter(data, lambda row: row["Id"] != "b") == (
        b'[{"Id":"a","Names":["/x"]},{"Id":"c","N":"\\u00e9"}]\n'
    )
    for bad in (b"{}", b"[1]", b'[{"Id":"a"} {"Id":"b"}]', b"[", b"\xff"):
        with pytest.raises(HttpError) as refused:
            json_array_filter(bad, lambda row: True)
        assert refused.value.status == 502


def test_every_route_kind_has_its_handler():
    """A route whose kind no handler judges would answer 500 instead of a decision."""
    kinds = {kind for _methods, _pattern, kind in ROUTES}
    assert kinds == set(HANDLERS)


def test_engine_down_is_a_clear_502(tmp_path):
    config = write_config(tmp_path)
    bob = Peer(pid=1, uid=60001, caller=Caller("bob", 60001, admin=False), home="/home/bob")
    gateway = Gateway(
        load_runtime(str(config)),
        socket_path=str(tmp_path / "gw.sock"),
        upstream=str(tmp_path / "nothing.sock"),
        identify=lambda sock, group: bob,
    )
    gateway.bind()
    threading.Thread(target=gateway.serve, daemon=True).start()
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(tmp_path / "gw.sock"))
        client.sendall(b"GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n")
        answer = client.recv(65536)
        assert answer.startswith(b"HTTP/1.1 502")
        assert b"is dockerd running" in answer
    finally:
        gateway.shutdown()
