"""Forwarding one checked request to the engine and relaying its answer as the handler asked.

The handler says how the answer flows back: copied as it comes (the default), streamed on a
connection of its own (``stream``), turned into a two-way pipe (``hijack``), read whole and
judged (``buffered``, or ``passes`` on its first chunk), or filtered line by line (``lines``).
Short calls reuse one engine connection per client connection (a new one per call would cost
more than the rest of the gateway's work on an inspect); streams, hijacks and admins' calls get
their own, closed by the engine at the end of the answer.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import IO

from ds01_core.transports.gateway.http import (
    Closed,
    Head,
    HttpError,
    Stream,
    frame,
    send_chunked,
    serialize,
)
from ds01_core.transports.gateway.ownership import EngineUnavailable
from ds01_core.transports.gateway.relay import (
    RAW_STREAMS,
    BufferedHook,
    LineFilter,
    answer_headers,
    has_body,
    pipe,
    read_whole,
    relay_filtered_lines,
    relay_persistent,
    relay_raw,
    send_request,
)

#: judges an answer from its status and first chunk: True lets it flow on unread
FirstChunkCheck = Callable[[int, bytes], bool]


class Forwarder:
    """Talks to the engine's socket at ``upstream`` on behalf of client connections."""

    def __init__(self, upstream: str):
        self.upstream = upstream

    def forward(
        self,
        client: Stream,
        head: Head,
        target: str,
        framing: tuple[str, int],
        *,
        body: bytes | None = None,
        hijack: bool = False,
        stream: bool = False,
        buffered: BufferedHook | None = None,
        passes: FirstChunkCheck | None = None,
        lines: LineFilter | None = None,
        upload: IO[bytes] | None = None,
    ) -> bool:
        """Send the request on (``body``, or the spooled ``upload``, replacing the client's) and
        the answer back; whether the client connection can take another request."""
        keep = head.keep_alive()
        persistent = not (stream or hijack or lines is not None)

        def send(upstream: Stream) -> Head | None:
            send_request(
                upstream.sock,
                client,
                head,
                target,
                framing,
                body=body,
                hijack=hijack,
                persistent=persistent,
                upload=upload,
            )
            return upstream.read_head(request=False)

        replayable = body is not None or upload is not None or framing[0] == "none"
        upstream, answer = self._exchange(client, send, persistent, replayable)
        reusable = False
        try:
            if hijack and _switched(answer):
                client.sock.sendall(serialize(answer.first, answer.headers))
                pipe(client, upstream)
                return False
            if buffered is not None and has_body(head.method, answer.status):
                keep, reusable = _relay_judged(
                    client, upstream, answer, keep, persistent, buffered, passes
                )
                return keep
            if lines is not None and has_body(head.method, answer.status):
                return relay_filtered_lines(client.sock, upstream, answer, keep, lines)
            if persistent:
                keep, reusable = relay_persistent(client.sock, upstream, head.method, answer, keep)
                return keep
            return relay_raw(client.sock, upstream, head.method, answer, keep)
        finally:
            if reusable and not upstream.buffer:
                client.upstream = upstream
            else:
                upstream.sock.close()

    def _exchange(
        self,
        client: Stream,
        send: Callable[[Stream], Head | None],
        persistent: bool,
        replayable: bool,
    ) -> tuple[Stream, Head]:
        """The engine connection and the head of its answer: on the connection kept for this
        client when the call may use one, else (or when the engine closed the kept one
        meanwhile and the request can be sent again) on a new one."""
        kept, client.upstream = client.upstream, None
        if kept is not None and not persistent:
            kept.sock.close()
        elif kept is not None:
            try:
                answer = send(kept)
            except (OSError, Closed):
                answer = None
            if answer is not None:
                return kept, answer
            kept.sock.close()
            if not replayable:
                raise HttpError(502, "the engine closed the connection; try again")
        upstream = Stream(self.connect())
        try:
            answer = send(upstream)
        except BaseException:
            upstream.sock.close()
            raise
        if answer is None:
            upstream.sock.close()
            raise HttpError(502, "the engine closed the connection without answering")
        return upstream, answer

    def connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.upstream)
        except OSError as exc:
            sock.close()
            raise EngineUnavailable(f"the Docker engine at {self.upstream}: {exc}") from None
        return sock


def _switched(answer: Head) -> bool:
    """Whether the engine turned the connection into a raw stream: a 101, or (old clients) a
    200 of a raw-stream type with no framing."""
    if answer.status == 101:
        return True
    content_type = (answer.get("content-type") or "").split(";")[0]
    return (
        answer.status == 200
        and content_type in RAW_STREAMS
        and answer.get("content-length") is None
        and "chunked" not in answer.tokens("transfer-encoding")
    )


def _relay_judged(
    client: Stream,
    upstream: Stream,
    answer: Head,
    keep: bool,
    persistent: bool,
    buffered: BufferedHook,
    passes: FirstChunkCheck | None,
) -> tuple[bool, bool]:
    """An answer the policy must see: relayed as it comes when ``passes`` accepts its first
    chunk, else read whole and passed through ``buffered`` (which may rewrite or refuse it);
    (client connection usable, engine connection usable)."""
    engine_keeps = persistent and "close" not in answer.tokens("connection")
    chunked = "chunked" in answer.tokens("transfer-encoding")
    if passes is not None and chunked:
        pieces = upstream.chunks()
        first = next(pieces, b"")
        if passes(answer.status, first):
            client.sock.sendall(
                serialize(answer.first, answer_headers(answer, keep))
                + (frame(first) if first else b"")
            )
            send_chunked(client.sock, pieces)
            return keep, engine_keeps
        whole = first + b"".join(pieces)
    else:
        whole = read_whole(upstream, answer)
    data = buffered(answer.status, whole)
    framed = chunked or answer.get("content-length") is not None
    headers = [
        (k, v)
        for k, v in answer_headers(answer, keep, content_length=str(len(data)))
        if k.lower() != "transfer-encoding"
    ]
    client.sock.sendall(serialize(answer.first, headers) + data)
    return keep, engine_keeps and framed
