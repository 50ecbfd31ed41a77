"""Moving one checked request to the engine and its answer back, bytes untouched.

The bytes are looked at no more than the policy needs.

Every request gets a fresh upstream connection that asks the engine to close after answering,
so the end of a streamed (chunked) answer is simply the engine closing: the bytes are copied
as they come, at socket speed, and the client's own keep-alive connection stays usable. Only
answers the policy must see (listings, inspects, the id of a created container) are read whole;
only the events stream is filtered as it flows. Hijacked connections (attach, exec, ``Upgrade:
tcp``) become a two-way pipe with half-close passed on, which is what ``docker exec -it`` and
``docker run -i`` rely on to end cleanly.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import IO

from ds01_core.transports.gateway.http import (
    BUFFER,
    HOP_BY_HOP,
    LAST_CHUNK,
    Closed,
    Head,
    HttpError,
    Stream,
    send_chunked,
    serialize,
)

#: Content types of an answer that turns into a raw stream without a 101 (old clients).
RAW_STREAMS = ("application/vnd.docker.raw-stream", "application/vnd.docker.multiplexed-stream")

BufferedHook = Callable[[int, bytes], bytes]
LineFilter = Callable[[bytes], bool]


def _body_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() != "expect"]


def send_request(
    upstream: socket.socket,
    client: Stream,
    head: Head,
    target: str,
    framing: tuple[str, int],
    *,
    body: bytes | None,
    hijack: bool,
    persistent: bool = False,
    upload: IO[bytes] | None = None,
) -> None:
    """The request to the engine: with ``body`` (JSON) or the spooled ``upload`` file in place
    of the client's body, else the client's body copied as it comes."""
    headers = _body_headers(head.headers)
    if hijack and "upgrade" in head.tokens("connection"):
        headers += [("Connection", "Upgrade"), ("Upgrade", head.get("upgrade") or "tcp")]
    elif not persistent:
        headers.append(("Connection", "close"))
    first = (head.method, target, "HTTP/1.1")
    if body is not None:
        headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        upstream.sendall(serialize(first, headers) + body)
        return
    if upload is not None:
        upload.seek(0)
        length = os.fstat(upload.fileno()).st_size
        upstream.sendall(serialize(first, [*headers, ("Content-Length", str(length))]))
        if length:
            upstream.sendfile(upload)
        return
    kind, size = framing
    if kind == "length":
        upstream.sendall(serialize(first, [*headers, ("Content-Length", str(size))]))
        if not client.copy_to(upstream, size):  # what follows is the next pipelined request
            raise Closed("the client closed in the middle of its body")
    elif kind == "chunked":
        upstream.sendall(serialize(first, [*headers, ("Transfer-Encoding", "chunked")]))
        send_chunked(upstream, client.chunks())
    else:
        upstream.sendall(serialize(first, headers))


def read_whole(upstream: Stream, head: Head, limit: int = 512 * 1024 * 1024) -> bytes:
    """An answer's whole body (for the answers the policy must read)."""
    if "chunked" in head.tokens("transfer-encoding"):
        return b"".join(upstream.chunks())
    length = head.get("content-length")
    if length is not None:
        return upstream.read_exact(int(length))
    parts = []
    while data := upstream.read_some():
        parts.append(data)
        if sum(map(len, parts)) > limit:
            raise HttpError(502, "the engine's answer is too large to check")
    return b"".join(parts)


def has_body(method: str, status: int) -> bool:
    return method != "HEAD" and status not in (204, 304) and not 100 <= status < 200


def answer_headers(head: Head, keep_alive: bool, **replace: str) -> list[tuple[str, str]]:
    headers = [(k, v) for k, v in head.headers if k.lower() not in ("connection", "keep-alive")]
    for name, value in replace.items():
        header = name.replace("_", "-")
        headers = [(k, v) for k, v in headers if k.lower() != header.lower()]
        headers.append((header, value))
    headers.append(("Connection", "keep-alive" if keep_alive else "close"))
    return headers


def relay_raw(client: socket.socket, upstream: Stream, method: str, head: Head, keep: bool) -> bool:
    """Copy the answer as the engine sent it; whether the client connection stays usable."""
    if not has_body(method, head.status):
        client.sendall(serialize(head.first, answer_headers(head, keep)))
        return keep
    chunked = "chunked" in head.tokens("transfer-encoding")
    length = head.get("content-length")
    if not chunked and length is not None:
        client.sendall(serialize(head.first, answer_headers(head, keep)))
        copied = upstream.copy_to(client, int(length))
        return keep and copied
    keep = keep and chunked  # a close-delimited answer ends the client's connection too
    client.sendall(serialize(head.first, answer_headers(head, keep)))
    tail = b""
    while data := upstream.read_some():
        client.sendall(data)
        tail = (tail + data)[-5:]
    return keep and tail == LAST_CHUNK


def relay_persistent(
    client: socket.socket, upstream: Stream, method: str, head: Head, keep: bool
) -> tuple[bool, bool]:
    """Copy an answer from a kept-open engine connection, following its framing so the
    connection can serve the next request: (client connection usable, engine one usable)."""
    if not has_body(method, head.status):
        client.sendall(serialize(head.first, answer_headers(head, keep)))
        return keep, "close" not in head.tokens("connection")
    chunked = "chunked" in head.tokens("transfer-encoding")
    length = head.get("content-length")
    if not chunked and length is None:
        return relay_raw(client, upstream, method, head, keep), False
    client.sendall(serialize(head.first, answer_headers(head, keep)))
    if chunked:
        send_chunked(client, upstream.chunks())
    elif not upstream.copy_to(client, int(length or 0)):
        return False, False
    return keep, "close" not in head.tokens("connection")


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line + b"\n"
    if pending:
        yield pending


def relay_filtered_lines(
    client: socket.socket, upstream: Stream, head: Head, keep: bool, allow: LineFilter
) -> bool:
    """A JSON-lines stream (events) passed on line by line, only the lines ``allow`` accepts."""
    if "chunked" not in head.tokens("transfer-encoding") or head.status != 200:
        body = read_whole(upstream, head)
        client.sendall(
            serialize(head.first, answer_headers(head, False, content_length=str(len(body)))) + body
        )
        return False
    client.sendall(serialize(head.first, answer_headers(head, keep)))
    send_chunked(
        client, (line for line in _lines(upstream.chunks()) if line.strip() and allow(line))
    )
    return keep


def pipe(client: Stream, upstream: Stream) -> None:
    """Both directions of a hijacked connection until the engine's side ends."""

    def client_to_upstream() -> None:
        try:
            if client.buffer:
                upstream.sock.sendall(bytes(client.buffer))
                client.buffer.clear()
            while data := client.sock.recv(BUFFER):
                upstream.sock.sendall(data)
            upstream.sock.shutdown(socket.SHUT_WR)  # stdin closed: pass the half-close on
        except OSError:
            pass

    feeder = threading.Thread(target=client_to_upstream, daemon=True, name="ds01-gateway-stdin")
    feeder.start()
    try:
        if upstream.buffer:
            client.sock.sendall(bytes(upstream.buffer))
            upstream.buffer.clear()
        while data := upstream.sock.recv(BUFFER):
            client.sock.sendall(data)
        client.sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    feeder.join(timeout=2)
    for sock in (client.sock, upstream.sock):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    feeder.join(timeout=2)
