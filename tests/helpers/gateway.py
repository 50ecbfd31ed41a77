"""Running the gateway as its own process and calling it as real Unix users.

The gateway tells users apart by the kernel's peer credentials, so every client here really runs
under the user's uid: the docker CLI and docker-compose through ``runuser``, raw HTTP from a
forked child that drops to the user before connecting.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers.servers import running_server

DOCKER = shutil.which("docker") or "/usr/bin/docker"
COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"


@contextmanager
def running_gateway(config: Path) -> Iterator[str]:
    """Start ``ds01-gateway`` on a socket users can reach; yield the socket path."""
    with running_server("ds01_core.transports.gateway.main:main", config, "docker.sock") as sock:
        yield sock


def user_env(user: Any, sock: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": user.home,
        "USER": user.name,
        "DOCKER_HOST": f"unix://{sock}",
        "COMPOSE_INTERACTIVE_NO_CLI": "1",
    }


def as_user(
    user: Any,
    sock: str,
    *args: str,
    input: str | None = None,
    timeout: float = 60,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command (``docker ...``) as ``user`` with DOCKER_HOST pointing at the gateway."""
    return subprocess.run(
        ["runuser", "-u", user.name, "--", "env", "-i", *_env_args(user_env(user, sock)), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or user.home,
    )


def _env_args(env: Mapping[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]


def docker(user: Any, sock: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return as_user(user, sock, DOCKER, *args, **kw)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must have succeeded (its args and output if not)."""
    assert result.returncode == 0, (
        f"{result.args}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], text: str = "belongs to another user") -> str:
    """The error output of a command that must have been refused, saying ``text``."""
    assert result.returncode != 0, f"{result.args} was allowed: {result.stdout}"
    assert text in result.stderr, result.stderr
    return result.stderr


@contextmanager
def on_pty(
    user: Any, sock: str, args: Sequence[str]
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``args`` run as ``user`` (``DOCKER_HOST`` at the gateway ``sock``) on a pseudo-terminal:
    the process and the terminal's master end; both are cleaned up on the way out."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        ["runuser", "-u", user.name, "--", "env", "-i", *_env_args(user_env(user, sock)), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        cwd=user.home,
    )
    os.close(slave)
    try:
        yield process, master
    finally:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        os.close(master)


def read_some(master: int) -> bytes | None:
    """What the terminal printed within 0.1 s (b"" for nothing), None once it is closed."""
    ready, _, _ = select.select([master], [], [], 0.1)
    if not ready:
        return b""
    try:
        return os.read(master, 4096)
    except OSError:
        return None


def in_pty(
    user: Any,
    sock: str,
    args: Sequence[str],
    script: Sequence[str],
    expect: str,
    timeout: float = 30,
) -> str:
    """Run ``args`` as ``user`` on a pseudo-terminal, type ``script`` line by line, and return
    everything it printed once ``expect`` appeared (or the time ran out)."""
    output = b""
    deadline = time.monotonic() + timeout
    lines = list(script)
    last_send = 0.0
    with on_pty(user, sock, args) as (_process, master):
        while time.monotonic() < deadline and expect.encode() not in output:
            if lines and time.monotonic() - last_send > 0.5:
                os.write(master, lines.pop(0).encode() + b"\r")
                last_send = time.monotonic()
            chunk = read_some(master)
            if chunk is None:
                break
            output += chunk
        # the lines not typed yet (an ``exit`` after the expected output): the program ends by
        # itself rather than being waited for and killed 10 s later
        for line in lines:
            try:
                os.write(master, line.encode() + b"\r")
            except OSError:
                break
    return output.decode(errors="replace")


def converse(
    user: Any,
    sock: str,
    args: Sequence[str],
    steps: Sequence[tuple[str, str]],
    timeout: float = 90,
) -> str:
    """Like :func:`in_pty`, but each line is typed only once its prompt text has appeared
    (``(wait for, then type)`` pairs), for programs that take a while to be ready; returns
    everything printed until the program ends (or the time runs out)."""
    output = b""
    pending = list(steps)
    deadline = time.monotonic() + timeout
    with on_pty(user, sock, args) as (process, master):
        while time.monotonic() < deadline and process.poll() is None:
            if pending and pending[0][0].encode() in output:
                time.sleep(1.0)  # let the program reach its prompt
                os.write(master, pending.pop(0)[1].encode() + b"\r")
            chunk = read_some(master)
            if chunk is None:
                break
            output += chunk
    return output.decode(errors="replace")


def raw_as(uid: int, gid: int, sock: str, request: bytes, timeout: float = 20) -> bytes:
    """Send ``request`` bytes to the socket from a child running as ``uid`` and return what came
    back (until the gateway closed or ``timeout``)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the user, talk, hand the answer back
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.settimeout(timeout)
            client.connect(sock)
            client.sendall(request)
            client.shutdown(socket.SHUT_WR)
            while True:
                data = client.recv(65536)
                if not data:
                    break
                os.write(write_end, data)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while data := os.read(read_end, 65536):
        chunks.append(data)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks)


def http(
    method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None
) -> bytes:
    payload = (
        b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    lines = [f"{method} {path} HTTP/1.1", "Host: docker", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def status_of(answer: bytes) -> int:
    first = answer.split(b"\r\n", 1)[0].split(b" ")
    return int(first[1]) if len(first) > 1 and first[1].isdigit() else 0


def body_of(answer: bytes) -> bytes:
    """The body of a complete answer, de-chunked if it was chunked."""
    head, _, body = answer.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        return body
    data = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        data, body = data + body[:size], body[size + 2 :]
    return data


def json_of(answer: bytes) -> Any:
    body = body_of(answer)
    return json.loads(body) if body.strip() else None
