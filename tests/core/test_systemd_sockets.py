"""The sd_listen_fds protocol, with real sockets passed to real child processes.

Each case starts a child through ``bash`` (dash cannot name fds above 9), which moves the listening socket to fd 3 and sets
``LISTEN_PID=$$`` before ``exec``-ing Python (``exec`` keeps the pid), so the child sees exactly
what systemd would hand it. The child reports what ``ds01_core.transports.systemd_sockets`` found as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import in_ci

CHILD = textwrap.dedent(
    """
    import json, os, socket, sys
    from ds01_core.transports import systemd_sockets as sd

    path = sys.argv[1]
    out = {}
    try:
        sock = sd.inherited_unix_socket(path)
    except sd.SocketActivationError as exc:
        out["error"] = str(exc)
        sock = None
    out["found"] = sock is not None
    out["env_left"] = sorted(k for k in os.environ if k.startswith("LISTEN_"))
    if sock is not None:
        out["fd"] = sock.fileno()
        out["inheritable"] = os.get_inheritable(sock.fileno())
        out["bound"] = sock.getsockname()
        conn, _ = sock.accept()  # a real client is waiting: serve it
        conn.sendall(b"served by " + str(os.getpid()).encode())
        conn.close()
        # a second call finds nothing new: the variables are gone, the socket is taken
        try:
            out["again"] = sd.inherited_unix_socket(path) is not None
        except sd.SocketActivationError as exc:
            out["again"] = str(exc)
    print(json.dumps(out))
    """
)


def listener(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    return sock


def activate(
    passed: socket.socket | None,
    path: Path,
    *,
    pid: str = "$$",
    fds: str = "1",
    names: str = "docker",
    connect: bool = True,
) -> dict[str, Any]:
    """Run the child as systemd would start it; connect to ``path`` as a client meanwhile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    move = ""
    if passed is not None and passed.fileno() != 3:
        move = f"exec 3<&{passed.fileno()} {passed.fileno()}<&-; "
    script = f'{move}LISTEN_PID={pid} LISTEN_FDS={fds} LISTEN_FDNAMES={names} exec "$@"'
    child = subprocess.Popen(
        ["bash", "-c", script, "bash", sys.executable, "-c", CHILD, str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(passed.fileno(),) if passed is not None else (),
        text=True,
    )
    reply = b""
    if connect:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(20)
        client.connect(str(path))
        reply = client.recv(100)
        client.close()
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    result["reply"] = reply.decode()
    result["pid"] = child.pid
    return result


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "docker.sock"


def test_the_passed_socket_is_found_by_its_path_and_serves_clients(sock_path: Path) -> None:
    passed = listener(sock_path)
    try:
        result = activate(passed, sock_path)
    finally:
        passed.close()
    assert result["found"] is True
    assert result["fd"] == 3
    assert result["bound"] == str(sock_path)
    assert result["reply"] == f"served by {result['pid']}"
    assert result["inheritable"] is False  # close-on-exec: nothing the program starts gets it
    assert result["env_left"] == []  # the variables are read once and removed
    assert result["again"] is False


def test_sockets_meant_for_another_pid_are_not_taken(sock_path: Path) -> None:
    """LISTEN_PID names the parent (as after a fork without exec): not ours."""
    passed = listener(sock_path)
    try:
        result = activate(passed, sock_path, pid=str(os.getpid()), connect=False)
    finally:
        passed.close()
    assert result["found"] is False
    assert "error" not in result
    assert result["env_left"] == []


def test_without_socket_activation_the_program_binds_itself(sock_path: Path) -> None:
    result = activate(None, sock_path, pid="", fds="", names="", connect=False)
    assert result == {
        "found": False,
        "env_left": [],
        "reply": "",
        "pid": result["pid"],
    }


def test_a_socket_bound_elsewhere_is_a_clear_error(tmp_path: Path) -> None:
    """The .socket unit's ListenStream= and the configuration disagree: refuse to start rather
    than serve a path nobody connects to while systemd's socket queues clients forever."""
    other = tmp_path / "other.sock"
    passed = listener(other)
    try:
        result = activate(passed, tmp_path / "docker.sock", connect=False)
    finally:
        passed.close()
    assert result["found"] is False
    assert str(other) in result["error"]
    assert str(tmp_path / "docker.sock") in result["error"]
    assert "ListenStream=" in result["error"]


def test_a_symlinked_directory_names_the_same_socket(tmp_path: Path) -> None:
    """/var/run is a link to /run: the configuration may name either."""
    real = tmp_path / "run"
    real.mkdir()
    (tmp_path / "varrun").symlink_to(real)
    passed = listener(real / "docker.sock")
    try:
        result = activate(passed, tmp_path / "varrun" / "docker.sock")
    finally:
        passed.close()
    assert result["found"] is True
    assert result["reply"].startswith("served by ")


def test_systemd_socket_activate_hands_over_a_socket_we_find(sock_path: Path) -> None:
    """systemd's own tool (the same code path as PID 1's socket units) as the parent."""
    if shutil.which("systemd-socket-activate") is None:
        reason = "systemd-socket-activate is missing; bash scripts/ci/setup-systemd.sh"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: this test must not be skipped)", pytrace=False)
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    child = subprocess.Popen(
        [
            "systemd-socket-activate",
            "-l",
            str(sock_path),
            "--fdname=docker",
            sys.executable,
            "-c",
            CHILD,
            str(sock_path),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(20)
        for _ in range(200):  # the tool binds the path first, then waits for a client
            try:
                client.connect(str(sock_path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                child.poll()
                assert child.returncode is None, child.stderr.read() if child.stderr else ""
                time.sleep(0.05)
        reply = client.recv(100).decode()
        client.close()
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    result = json.loads(out)
    assert result["found"] is True, err
    assert reply == f"served by {child.pid}"
    assert result["env_left"] == []
