"""Real peers on loopback for ds01-notify's tests: an SMTP server (aiosmtpd), an HTTP server
that records POSTs, a server that accepts and never answers, and pseudo-terminals registered
in a utmp file of the test's own."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import termios
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- SMTP --------------------------------------------------------------------------------------


@attrs.define
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: str | None


class Collector:
    """aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Received] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if session.authenticated else None
        self.messages.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, login)
        )
        return "250 Message accepted"


class Passwords:
    """aiosmtpd authenticator accepting one login and password."""

    def __init__(self, login: str, password: str):
        self.login, self.password = login.encode(), password.encode()

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.login
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


@attrs.define
class SmtpServer:
    controller: Controller
    collector: Collector

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def messages(self) -> list[Received]:
        return self.collector.messages


def start_smtp(**controller_kw: Any) -> SmtpServer:
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port(), **controller_kw)
    controller.start()
    return SmtpServer(controller, collector)


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the CA file is the certificate itself)."""
    cert, key = directory / "smtp.pem", directory / "smtp.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-new", "-nodes", "-days", "2",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext", "basicConstraints=critical,CA:TRUE",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


# -- HTTP --------------------------------------------------------------------------------------


@attrs.define
class Post:
    path: str
    headers: dict[str, str]
    body: Any


class WebhookServer:
    """Records every POST; ``/status/<code>`` answers with that code, anything else 200."""

    def __init__(self) -> None:
        posts: list[Post] = []
        self.posts = posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                posts.append(Post(self.path, dict(self.headers.items()), json.loads(raw)))
                status = 200
                if self.path.startswith("/status/"):
                    status = int(self.path.rsplit("/", 1)[1])
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentServer:
    """Accepts connections (the kernel does, from the backlog) and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()


# -- terminals ---------------------------------------------------------------------------------


@attrs.define
class Pty:
    """A pseudo-terminal pair; ``line`` is the slave's name under /dev (``pts/5``)."""

    master: int
    slave: int
    path: str

    @property
    def line(self) -> str:
        return self.path.removeprefix("/dev/")

    def set_size(self, cols: int, rows: int = 24) -> None:
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read(self, timeout: float = 2.0) -> str:
        """Everything written to the terminal so far (waits up to ``timeout`` for the first
        byte, then takes what follows within 0.2 s)."""
        chunks = []
        wait = timeout
        while select.select([self.master], [], [], wait)[0]:
            chunks.append(os.read(self.master, 65536))
            wait = 0.2
        return b"".join(chunks).decode()

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def open_pty(uid: int, gid: int, *, mesg: bool = True, cols: int = 80) -> Pty:
    """A pty owned by ``uid`` as ``login`` leaves it: mode 620 (``mesg y``) or 600 (``n``)."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.chown(path, uid, gid)
    os.chmod(path, 0o620 if mesg else 0o600)
    pty = Pty(master, slave, path)
    pty.set_size(cols)
    return pty


def iter_lines(text: str) -> Iterator[str]:
    """The terminal's lines, however the line discipline turned our CR LF."""
    yield from text.replace("\r", "").split("\n")
