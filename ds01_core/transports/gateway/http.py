"""Just enough HTTP/1.1 to stand between a Docker client and the engine, strictly.

The gateway parses every request itself rather than through a general-purpose server, because
what it checks must be exactly what the engine receives: a request is parsed once, judged, and
then written out again from the parsed form (never forwarded as the client's raw bytes). Anything
ambiguous — two Content-Lengths, Content-Length with chunking, obsolete line folding, bytes
outside the grammar — is refused with 400 rather than guessed at, since request smuggling lives
in exactly those ambiguities.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Iterator

MAX_HEAD = 64 * 1024
MAX_CHUNK_LINE = 1024
BUFFER = 64 * 1024
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: a request head: printable bytes, tabs and CRLF line ends only (no bare CR/LF, no NUL)
_REQUEST_HEAD = re.compile(rb"(?:[\t\x20-\x7e\x80-\xff]|\r\n(?![ \t]))*")
_TARGET = re.compile(r"^/[\x21-\x7e]*$")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


class HttpError(Exception):
    """A request the gateway cannot or will not handle; ``status`` is what the client gets."""

    #: the answer is worded as the engine's own (no ``ds01:`` prefix)
    as_engine = False

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Closed(Exception):
    """The peer closed the connection (cleanly, between messages, or in the middle of one)."""


class Head:
    """A request line or status line with its headers, as parsed (indexed by lower-cased name
    once: every request asks a dozen questions of its headers)."""

    __slots__ = ("_by_name", "first", "headers")

    def __init__(self, first: tuple[str, str, str], headers: list[tuple[str, str]]):
        self.first = first
        self.headers = headers
        index: dict[str, list[str]] = {}
        for key, value in headers:
            index.setdefault(key.lower(), []).append(value)
        self._by_name = index

    def __repr__(self) -> str:
        return f"Head({self.first!r}, {self.headers!r})"

    def get(self, name: str) -> str | None:
        values = self._by_name.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return self._by_name.get(name, [])

    def tokens(self, name: str) -> set[str]:
        """Comma-separated header tokens, lower-cased (``Connection: keep-alive, Upgrade``)."""
        found: set[str] = set()
        for value in self.all(name):
            found |= {t.strip().lower() for t in value.split(",") if t.strip()}
        return found

    @property
    def method(self) -> str:
        return self.first[0]

    @property
    def target(self) -> str:
        return self.first[1]

    @property
    def version(self) -> str:
        return self.first[2]

    @property
    def status(self) -> int:
        return int(self.first[1])

    def body_framing(self) -> tuple[str, int]:
        """("length", n), ("chunked", 0) or ("none", 0) for a request; refuses ambiguity."""
        lengths = self.all("content-length")
        codings = self.tokens("transfer-encoding")
        if codings and lengths:
            raise HttpError(400, "both Content-Length and Transfer-Encoding given")
        if codings:
            if codings != {"chunked"} or len(self.all("transfer-encoding")) != 1:
                raise HttpError(400, "only 'Transfer-Encoding: chunked' is supported")
            return "chunked", 0
        if len(lengths) > 1:
            raise HttpError(400, "more than one Content-Length")
        if lengths:
            if not lengths[0].isdigit() or len(lengths[0]) > 18:
                raise HttpError(400, f"bad Content-Length {lengths[0]!r}")
            return "length", int(lengths[0])
        return "none", 0

    def keep_alive(self) -> bool:
        connection = self.tokens("connection")
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


LAST_CHUNK = b"0\r\n\r\n"


def frame(chunk: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(chunk), chunk)


def send_chunked(sock: socket.socket, chunks: Iterable[bytes]) -> None:
    """The rest of a chunked body: each chunk framed, then the last (empty) chunk."""
    for chunk in chunks:
        if chunk:
            sock.sendall(frame(chunk))
    sock.sendall(LAST_CHUNK)


def serialize(first: tuple[str, str, str], headers: list[tuple[str, str]]) -> bytes:
    lines = [" ".join(first)] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Stream:
    """A socket with a read buffer, so a head can be parsed and the body read after it."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()
        self.eof = False
        #: for a client connection: the engine connection kept open for its next request
        self.upstream: Stream | None = None

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.sock.recv(BUFFER)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def read_head(self, *, request: bool) -> Head | None:
        """The next head, or None when the peer closed cleanly before sending one."""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buffer) > MAX_HEAD:
                raise HttpError(431, "request head too large")
            if not self._fill():
                if self.buffer.strip():
                    raise Closed("connection closed in the middle of a head")
                return None
        raw = bytes(self.buffer[:end])
        del self.buffer[: end + 4]
        if request:
            raw = raw.lstrip(b"\r\n")  # RFC 9112 2.2: ignore empty lines before a request
        return parse_head(raw, request=request)

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise Closed("connection closed in the middle of a body")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def read_some(self) -> bytes:
        """What is buffered, or one recv's worth; b"" at end of stream."""
        if not self.buffer and not self._fill():
            return b""
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def copy_to(self, sock: socket.socket, size: int) -> bool:
        """Pass exactly ``size`` bytes of this stream on to ``sock`` as they come (what follows
        stays buffered: it is the next message); False if the stream ended first."""
        while size > 0:
            data = self.read_some()
            if not data:
                return False
            if len(data) > size:
                self.buffer[:0] = data[size:]
                data = data[:size]
            sock.sendall(data)
            size -= len(data)
        return True

    def pieces(self, size: int) -> Iterator[bytes]:
        """Exactly ``size`` bytes of this stream, as they come (what follows stays buffered)."""
        while size > 0:
            data = self.read_some()
            if not data:
                raise Closed("connection closed in the middle of a body")
            if len(data) > size:
                self.buffer[:0] = data[size:]
                data = data[:size]
            yield data
            size -= len(data)

    def read_line(self, limit: int = MAX_CHUNK_LINE) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 2]
                return line
            if len(self.buffer) > limit:
                raise HttpError(400, "chunk line too long")
            if not self._fill():
                raise Closed("connection closed in the middle of a chunked body")

    def chunks(self) -> Iterator[bytes]:
        """The data of a chunked body, chunk by chunk (trailers are read and dropped)."""
        while True:
            line = self.read_line()
            size_text = line.split(b";", 1)[0].strip()
            if not size_text or not re.fullmatch(rb"[0-9a-fA-F]{1,15}", size_text):
                raise HttpError(400, f"bad chunk size {line[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                while self.read_line(MAX_HEAD):
                    pass
                return
            yield self.read_exact(size)
            if self.read_exact(2) != b"\r\n":
                raise HttpError(400, "chunk not followed by CRLF")

    def read_body(self, framing: tuple[str, int], limit: int) -> bytes:
        kind, size = framing
        if kind == "length":
            if size > limit:
                raise HttpError(413, f"request body larger than {limit} bytes")
            return self.read_exact(size)
        if kind == "chunked":
            parts: list[bytes] = []
            total = 0
            for part in self.chunks():
                total += len(part)
                if total > limit:
                    raise HttpError(413, f"request body larger than {limit} bytes")
                parts.append(part)
            return b"".join(parts)
        return b""


def parse_head(raw: bytes, *, request: bool) -> Head:
    """A head from its bytes (without the blank line). Header names are looked up lower-case."""
    if request and not _REQUEST_HEAD.fullmatch(raw):
        raise HttpError(400, "control characters or bytes outside HTTP in the request head")
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if request:
        if len(parts) != 3:
            raise HttpError(400, "malformed request line")
        method, target, version = parts
        if method not in METHODS:
            raise HttpError(405, f"method {method[:20]!r} not supported")
        if not _TARGET.match(target) or len(target) > 8192:
            raise HttpError(400, "malformed request target")
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        first = (method, target, version)
    else:
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HttpError(502, "the engine sent a malformed status line")
        first = (parts[0], parts[1], parts[2] if len(parts) > 2 else "")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or (request and not _TOKEN.fullmatch(name)) or not name or " " in name:
            raise HttpError(400 if request else 502, "malformed header line")
        headers.append((name, value.strip(" \t")))
    return Head(first, headers)


def response(
    status: int,
    reason: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    keep_alive: bool = True,
    extra: list[tuple[str, str]] | None = None,
) -> bytes:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Connection", "keep-alive" if keep_alive else "close"),
        *(extra or []),
    ]
    return serialize(("HTTP/1.1", str(status), reason), headers) + body


REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
