"""ds01's units under a real systemd (252, PID 1 of a container): the sockets users depend on stay
in place, and keep answering, while any one ds01 service stops or restarts.

ds01 is installed in the container as docs/install.md says (venv /opt/ds01, units, tmpfiles.d),
see tests/helpers/systemd_container.py. The gateway's upstream is this host's Docker engine,
bind-mounted at /host-docker.sock: the test only calls ``GET /_ping`` through it. ``ds01d``
gets no engine in the container (nothing at /var/run/docker.sock), so it cannot act on the
shared engine's containers; it only has to run, and stop.

ds01-web runs beside them (installed as docs/web.md says): it serves, and restarting it takes
neither socket away.

Costs (2 shared cores): the image once, 40-65 s (cached by tag); then ~20 s per run.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ds01_core.domain.docker_engine import docker_host
from tests.conftest import in_ci, unavailable
from tests.helpers.systemd_container import (
    ROOT,
    SystemdContainer,
    build_wheel,
    dependency_closure,
    stage_site_packages,
)

UNITS = ROOT / "packaging" / "systemd"
TMPFILES = ROOT / "packaging" / "tmpfiles.d" / "ds01.conf"
GATEWAY_SOCK = "/run/ds01/docker.sock"
API_SOCK = "/run/ds01/api.sock"
#: service -> the socket its .socket unit holds
SERVED = {"ds01-gateway": GATEWAY_SOCK, "ds01-api": API_SOCK}

CONFIG = """\
gpu:
  backend: simulated
gateway:
  upstream: /host-docker.sock
"""

# Run by the container's own python3. `once`: one request on a new connection (the gateway's
# GET /_ping, the API's GET /v1/whoami), print the status line. `loop SECONDS`: new connections back to back, print counts and errors as JSON.
CLIENT = textwrap.dedent(
    """
    import json, socket, sys, time

    def ping(path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(path)
        target = b"/v1/whoami" if path.endswith("api.sock") else b"/_ping"
        s.sendall(b"GET " + target + b" HTTP/1.1\\r\\nHost: ds01\\r\\nConnection: close\\r\\n\\r\\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        return data.split(b"\\r\\n", 1)[0].decode()

    path, mode = sys.argv[1], sys.argv[2]
    if mode == "once":
        print(ping(path))
    else:
        ok, failed, errors, end = 0, 0, [], time.monotonic() + float(sys.argv[3])
        while time.monotonic() < end:
            try:
                line = ping(path)
            except OSError as exc:
                line = repr(exc)
            if line.startswith("HTTP/1.1 200"):
                ok += 1
            else:
                failed += 1
                errors.append(line)
        print(json.dumps({"ok": ok, "failed": failed, "errors": errors[:5]}))
    """
)


def socket_activate() -> str:
    """systemd's socket-activation tool: skipped locally when missing, a failure in CI."""
    found = shutil.which("systemd-socket-activate")
    if found is None:
        reason = "systemd-socket-activate is missing; bash scripts/ci/setup-systemd.sh"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: this test must not be skipped)", pytrace=False)
        pytest.skip(reason)
    return found


def test_the_gateway_refuses_a_socket_that_is_not_the_configured_one(
    tmp_config: Callable[..., Path], tmp_path: Path
) -> None:
    """ListenStream= and gateway.socket disagree: one clear line and exit 1, not a gateway
    serving a path nobody connects to while systemd's socket queues clients forever."""
    activate = socket_activate()
    passed = tmp_path / "systemd.sock"
    configured = tmp_path / "run" / "docker.sock"
    gateway = [sys.executable, "-c", "from ds01_core.transports.gateway.main import main; main()"]
    gateway += ["--config", str(tmp_config())]
    process = subprocess.Popen(
        [activate, "-l", str(passed), *gateway, "--socket", str(configured)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not passed.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(passed))  # the tool starts the gateway on the first client
        out, _ = process.communicate(timeout=30)
        client.close()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 4  # EXIT_UNAVAILABLE: systemd passed another socket
    assert "Traceback" not in out
    assert f"ds01-gateway: cannot start: systemd passed 1 socket(s) ({passed})" in out
    assert f"none bound to {configured}" in out
    assert not configured.exists()


def test_the_gateway_serves_the_socket_it_is_passed_and_leaves_the_file_alone(
    tmp_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Started by systemd's own socket-activation tool (no PID 1 needed): the gateway serves
    the listening socket it inherits; it neither replaces the file (which would orphan
    systemd's socket) nor changes its mode (the .socket unit's SocketMode= decides)."""
    activate = socket_activate()
    config = tmp_config()
    sock = tmp_path / "run" / "docker.sock"
    log = tmp_path / "gateway.log"
    gateway = [sys.executable, "-c", "from ds01_core.transports.gateway.main import main; main()"]
    gateway += ["--config", str(config), "--socket", str(sock)]
    with log.open("w") as out:
        process = subprocess.Popen(
            [activate, "-l", str(sock), "--fdname=docker", *gateway],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():  # the tool binds first, and starts the gateway on a client
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        before = sock.stat()
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(15)
        client.connect(str(sock))
        client.sendall(b"GET /_ping HTTP/1.1\r\nHost: ds01\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
        client.close()
        assert answer.startswith(b"HTTP/1.1 200 OK"), (answer, log.read_text())
        after = sock.stat()
        assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
        assert '"socket_activated":true' in (tmp_path / "log" / "events.jsonl").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def systemd_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemdContainer]:
    """A booted container with ds01 installed and its sockets started (as root would)."""
    engine = docker_host().removeprefix("unix://")
    if not os.path.exists(engine):
        unavailable(f"the gateway in the container needs this host's engine socket ({engine})")
    staged = tmp_path_factory.mktemp("ds01-systemd")
    wheel = build_wheel(staged / "wheel")
    web_wheel = build_wheel(staged / "web-wheel", ROOT / "plugins" / "web", "ds01_web-*.whl")
    site = staged / "site-packages"
    needed = {d.metadata["Name"]: d for d in dependency_closure("ds01")}
    for dist in dependency_closure("ds01-web"):
        if dist.metadata["Name"] != "ds01":
            needed.setdefault(dist.metadata["Name"], dist)
    stage_site_packages(needed.values(), site)
    (staged / "ds01.yaml").write_text(CONFIG)
    (staged / "client.py").write_text(CLIENT)

    host = SystemdContainer(f"ds01-systemd-test-{secrets.token_hex(3)}")
    host.start("-v", f"{engine}:/host-docker.sock")
    try:
        host.install_ds01(wheel, site)
        host.install_wheel(web_wheel)  # the web plugin, as docs/web.md installs it
        host.sh("install -d -m 0755 /etc/ds01 /etc/systemd/system /etc/tmpfiles.d")
        host.copy_in(staged / "ds01.yaml", "/etc/ds01/ds01.yaml")
        host.copy_in(staged / "client.py", "/usr/local/bin/ds01-test-client.py")
        host.copy_in(UNITS, "/etc/systemd/system")
        host.copy_in(TMPFILES, "/etc/tmpfiles.d/ds01.conf")
        # docs/install.md, "The services"
        # docs/install.md, "The core" (the links) and "The services"
        host.sh(
            "ln -s /opt/ds01/bin/ds01 /opt/ds01/bin/ds01d /opt/ds01/bin/ds01-gateway"
            " /opt/ds01/bin/ds01-api /usr/local/bin/"
            " && ds01 config check"
            " && systemd-tmpfiles --create /etc/tmpfiles.d/ds01.conf"
            " && systemctl daemon-reload"
            " && systemctl enable --now ds01-gateway.socket ds01-api.socket"
            " && systemctl enable --now ds01d.service ds01-gateway.service ds01-api.service"
            " ds01-web.service"
        )
        host.sh("useradd --create-home ds01user")
        yield host
    finally:
        host.stop()


def ping(host: SystemdContainer, sock: str = GATEWAY_SOCK, user: str = "ds01user") -> str:
    """One request on a new connection, as a plain user; the answer's status line."""
    return host.sh(f"python3 /usr/local/bin/ds01-test-client.py {sock} once", user=user).strip()


def served(host: SystemdContainer, service: str) -> None:
    """Both programs are installed: the cases of each run (none is skipped)."""
    assert host.sh(f"test -x /opt/ds01/bin/{service} && echo yes || true").strip() == "yes"


def inode(host: SystemdContainer, path: str) -> str:
    return host.sh(f"stat -c '%i %a %U %F' {path}").strip()


def show(host: SystemdContainer, unit: str, *props: str) -> list[str]:
    """The unit's properties, in the order asked (systemctl prints them in its own)."""
    out = host.sh(f"systemctl show {' '.join('-p ' + p for p in props)} {unit}")
    values = dict(line.split("=", 1) for line in out.strip().split("\n"))
    return [values[p] for p in props]


def test_sockets_are_systemds_with_the_documented_modes(systemd_host: SystemdContainer) -> None:
    host = systemd_host
    assert host.sh("stat -c '%a %U' /run/ds01").strip() == "755 root"
    for sock in (GATEWAY_SOCK, API_SOCK):
        assert inode(host, sock).split(" ", 1)[1] == "666 root socket"
    assert show(host, "ds01-gateway.socket", "ActiveState") == ["active"]
    assert show(host, "ds01-api.socket", "ActiveState") == ["active"]
    # a plain user reaches the engine through the gateway
    assert ping(host) == "HTTP/1.1 200 OK"


def test_stopping_ds01d_keeps_run_ds01_and_the_users_sockets(
    systemd_host: SystemdContainer,
) -> None:
    """The hole: ds01d's RuntimeDirectory= deleted /run/ds01, and the gateway's socket in it,
    when ds01d stopped, while the gateway process kept running (so Restart= never fired)."""
    host = systemd_host
    assert show(host, "ds01d.service", "ActiveState") == ["active"]
    before = {sock: inode(host, sock) for sock in (GATEWAY_SOCK, API_SOCK)}
    host.sh("systemctl stop ds01d.service")
    try:
        assert show(host, "ds01d.service", "ActiveState") == ["inactive"]
        assert {sock: inode(host, sock) for sock in (GATEWAY_SOCK, API_SOCK)} == before
        assert ping(host) == "HTTP/1.1 200 OK"
        assert ping(host, API_SOCK) == "HTTP/1.1 200 OK"
    finally:
        host.sh("systemctl start ds01d.service")
    assert {sock: inode(host, sock) for sock in (GATEWAY_SOCK, API_SOCK)} == before
    assert ping(host) == "HTTP/1.1 200 OK"


@pytest.mark.parametrize("service", sorted(SERVED))
def test_a_client_that_connects_while_the_service_is_down_is_served(
    systemd_host: SystemdContainer, service: str
) -> None:
    """The connection waits in systemd's listen queue; it starts the service, which serves it."""
    host = systemd_host
    served(host, service)
    sock = SERVED[service]
    before = inode(host, sock)
    host.sh(f"systemctl stop {service}.service")
    assert show(host, f"{service}.service", "ActiveState", "MainPID") == ["inactive", "0"]
    assert inode(host, sock) == before
    assert ping(host, sock) == "HTTP/1.1 200 OK"
    state, pid = show(host, f"{service}.service", "ActiveState", "MainPID")
    assert state == "active" and pid != "0"
    assert inode(host, sock) == before


@pytest.mark.parametrize("service", sorted(SERVED))
def test_clients_are_served_throughout_a_restart(
    systemd_host: SystemdContainer, service: str
) -> None:
    """New connections back to back for 4 s, `systemctl restart` after 1 s: none fails."""
    host = systemd_host
    served(host, service)
    sock = SERVED[service]
    (old_pid,) = show(host, f"{service}.service", "MainPID")
    before = inode(host, sock)
    client = ["python3", "/usr/local/bin/ds01-test-client.py", sock, "loop", "4"]
    load = subprocess.Popen(
        ["docker", "exec", host.name, "runuser", "-u", "ds01user", "--", *client],
        stdout=subprocess.PIPE,
        text=True,
    )
    host.sh(f"sleep 1 && systemctl restart {service}.service")
    out, _ = load.communicate(timeout=60)
    result = json.loads(out)
    (new_pid,) = show(host, f"{service}.service", "MainPID")
    assert new_pid not in ("0", old_pid)
    assert result["failed"] == 0, result
    assert result["ok"] > 0
    assert inode(host, sock) == before


def web_status(host: SystemdContainer, path: str) -> str:
    """``GET http://127.0.0.1:8443<path>`` in the container: the status, or the error."""
    code = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    print(urllib.request.urlopen('http://127.0.0.1:8443{path}', timeout=10).status)\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
        "except OSError as e:\n"
        "    print(repr(e))\n"
    )
    return host.sh(f"python3 -c {shlex.quote(code)}", user="ds01user").strip()


def wait_web(host: SystemdContainer, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while (status := web_status(host, "/login")) != "200":
        assert time.monotonic() < deadline, f"ds01-web answered {status}\n" + host.sh(
            "journalctl -u ds01-web --no-pager | tail -20"
        )
        time.sleep(0.5)


def test_the_web_service_runs_and_restarts_without_taking_the_sockets(
    systemd_host: SystemdContainer,
) -> None:
    """ds01-web's shipped unit under systemd: it serves the sign-in page and the API's schema,
    and restarting it leaves the gateway and ds01-api answering throughout."""
    host = systemd_host
    served(host, "ds01-web")
    wait_web(host)
    assert web_status(host, "/api/v1/openapi.json") == "200"
    assert web_status(host, "/api/v1/whoami") == "401"  # no token: refused, not served
    (old_pid,) = show(host, "ds01-web.service", "MainPID")
    loads = {
        sock: subprocess.Popen(
            [
                "docker",
                "exec",
                host.name,
                "runuser",
                "-u",
                "ds01user",
                "--",
                "python3",
                "/usr/local/bin/ds01-test-client.py",
                sock,
                "loop",
                "4",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for sock in (GATEWAY_SOCK, API_SOCK)
    }
    host.sh("sleep 1 && systemctl restart ds01-web.service")
    for sock, load in loads.items():
        out, _ = load.communicate(timeout=60)
        result = json.loads(out)
        assert result["failed"] == 0 and result["ok"] > 0, (sock, result)
    (new_pid,) = show(host, "ds01-web.service", "MainPID")
    assert new_pid not in ("0", old_pid)
    wait_web(host)
