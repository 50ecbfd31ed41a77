"""``ds01 admin doctor``: real sockets, real groups and users, real ACLs and device nodes — and
every verdict about a socket checked against the kernel by connecting as that user."""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from ds01_core.domain.config import GatewayConfig
from ds01_core.framework.runtime import load_runtime
from ds01_core.services import doctor
from ds01_core.services.bare_metal_grants import grant
from ds01_core.transports.cli import cli

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def groups(unix_users) -> Iterator[Callable[..., str]]:
    """``groups(prefix, *members)``: a real, new system group, deleted after the test."""
    made: list[str] = []

    def make(prefix: str, *members: str) -> str:
        name = f"{prefix}{secrets.token_hex(3)}"
        subprocess.run(["groupadd", "--system", name], check=True, capture_output=True)
        made.append(name)
        for member in members:
            subprocess.run(["gpasswd", "-a", member, name], check=True, capture_output=True)
        return name

    yield make
    for name in made:
        subprocess.run(["groupdel", name], capture_output=True)


class Sockets:
    """Listening Unix sockets in directories every user can search (tmp_path is root's only)."""

    def __init__(self) -> None:
        self.listeners: list[socket.socket] = []
        self.dirs: list[str] = []

    def dir(self) -> str:
        directory = tempfile.mkdtemp(prefix="ds01-doctor-", dir="/tmp")
        os.chmod(directory, 0o755)
        self.dirs.append(directory)
        return directory

    def listen(self, path: str, mode: int = 0o660, group: str | int = 0) -> str:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen(8)
        self.listeners.append(listener)
        os.chown(path, 0, group if isinstance(group, int) else _gid(group))
        os.chmod(path, mode)
        return path

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        for directory in self.dirs:
            subprocess.run(["rm", "-rf", directory], check=False)


def _gid(group: str) -> int:
    import grp

    return grp.getgrnam(group).gr_gid


@pytest.fixture
def sockets() -> Iterator[Sockets]:
    made = Sockets()
    yield made
    made.close()


@attrs.define
class Host:
    """One test's host: an engine socket, a gateway, the snippet, /dev, and the config."""

    engine: str
    gateway: str
    paths: doctor.HostPaths
    config: Path
    socket_group: str
    admin_group: str
    gpu_group: str
    dev: Path

    def runtime(self):
        return load_runtime(str(self.config))

    def problems(self) -> list[doctor.Finding]:
        return [f for f in doctor.run_doctor(self.runtime(), self.paths) if not f.ok]


@pytest.fixture
def host(tmp_path, tmp_config, groups, sockets, monkeypatch) -> Host:
    """A host where everything is right except one thing: ds01ta (not an admin) is in the engine
    socket's group. ds01tb is in that group too, but is an admin."""
    socket_group = groups("ds01sk", "ds01ta", "ds01tb")
    admin_group = groups("ds01adm", "ds01tb")
    gpu_group = groups("ds01bm")
    engine = sockets.listen(f"{sockets.dir()}/engine.sock", 0o660, socket_group)
    gateway = sockets.listen(f"{sockets.dir()}/gateway.sock", 0o666)
    snippet = tmp_path / "ds01-docker-host.sh"
    shipped = (PACKAGING / "profile.d/ds01-docker-host.sh").read_text()
    snippet.write_text(shipped.replace("/run/ds01/docker.sock", gateway))
    dev = tmp_path / "dev"
    (dev / "nvidia-caps").mkdir(parents=True)
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-caps/nvidia-cap1"):
        os.mknod(dev / name, 0o660 | stat.S_IFCHR, os.makedev(195, 0))
        os.chown(dev / name, 0, _gid(gpu_group))
        os.chmod(dev / name, 0o660)
    (tmp_path / "proc").mkdir()
    (tmp_path / "mounts").write_text(
        "/dev/vda / ext4 rw,relatime 0 0\n/dev/vdb /home ext4 rw,nosuid,nodev,relatime 0 0\n"
    )
    paths = doctor.HostPaths(
        engine_sockets=(),
        daemon_json=str(tmp_path / "daemon.json"),
        profile_snippet=str(snippet),
        dev_dir=str(dev),
        proc_dir=str(tmp_path / "proc"),
        mounts=str(tmp_path / "mounts"),
    )
    monkeypatch.setattr(doctor, "DEFAULT_HOST", paths)
    config = tmp_config(
        {
            "gateway": {"upstream": engine, "socket": gateway, "admin_group": admin_group},
            "bare_metal": {"group": gpu_group},
        }
    )
    return Host(engine, gateway, paths, config, socket_group, admin_group, gpu_group, dev)


def connects(user, path: str) -> bool:
    """Whether ``user`` (a UnixUser) can connect to ``path``: a forked child takes the user's
    uid, gid and groups, and tries."""
    groups = os.getgrouplist(user.name, user.gid)
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 2
        try:
            os.setgroups(groups)
            os.setgid(user.gid)
            os.setuid(user.uid)
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(path)
            code = 0
        except PermissionError:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 1), f"probe failed with {code}"
    return code == 0


def doctor_cli(host: Host, *args: str):
    return CliRunner().invoke(cli, ["--config", str(host.config), "admin", "doctor", *args])


def set_acl(path: str, entries: list[tuple[int, int, int]]) -> None:
    """Write a POSIX access ACL (tag, perm, id) the way setfacl does."""
    raw = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    os.setxattr(path, "system.posix_acl_access", raw)


ANY = 0xFFFFFFFF
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


# -- the engine socket ----------------------------------------------------------------------------


def test_a_non_admin_in_the_socket_group_is_a_problem_until_removed(host, unix_users):
    result = doctor_cli(host, "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    problems = [f for f in report["findings"] if not f["ok"]]
    assert report["problems"] == 1 and not report["ok"]
    assert [(p["check"], p["subject"]) for p in problems] == [("engine-socket", host.engine)]
    assert f"user ds01ta can connect to {host.engine}" in problems[0]["message"]
    assert f"is in group {host.socket_group}" in problems[0]["message"]
    assert problems[0]["fix"] == f"`gpasswd -d ds01ta {host.socket_group}`"
    assert "ds01tb" not in json.dumps(problems)  # an admin
    # the kernel agrees: both can connect, only one of them may
    assert connects(unix_users["ds01ta"], host.engine)
    assert connects(unix_users["ds01tb"], host.engine)

    text = doctor_cli(host)
    assert text.exit_code == 1
    assert f"fix: `gpasswd -d ds01ta {host.socket_group}`" in text.output
    assert "1 problem(s) found" in text.output

    subprocess.run(["gpasswd", "-d", "ds01ta", host.socket_group], check=True, capture_output=True)
    clean = doctor_cli(host)
    assert clean.exit_code == 0, clean.output
    assert clean.output.rstrip().endswith("no problems found")
    assert not connects(unix_users["ds01ta"], host.engine)


def test_a_world_accessible_socket_unless_a_directory_above_it_is_closed(host, unix_users):
    os.chmod(host.engine, 0o666)
    problems = host.problems()
    assert [p.check for p in problems] == ["engine-socket"]
    assert "can be opened by every user" in problems[0].message
    assert problems[0].fix.startswith(f"chmod o-rwx {host.engine}")
    assert connects(unix_users["ds01ta"], host.engine)

    directory = os.path.dirname(host.engine)
    os.chmod(directory, 0o750)  # root:root: ds01ta may not search it, so not reach the socket
    assert host.problems() == []
    assert not connects(unix_users["ds01ta"], host.engine)


def test_a_primary_group_counts(host, unix_users):
    os.chown(host.engine, 0, unix_users["ds01ta"].gid)  # ds01ta's own primary group
    problems = host.problems()
    assert len(problems) == 1
    assert "has ds01ta as primary group" in problems[0].message
    assert "usermod -g" in problems[0].fix
    assert connects(unix_users["ds01ta"], host.engine)


def test_acl_entries_count_and_their_mask_applies(host, unix_users):
    os.chown(host.engine, 0, 0)
    os.chmod(host.engine, 0o600)
    assert host.problems() == []
    ta = unix_users["ds01ta"].uid
    entries = [
        (USER_OBJ, 6, ANY),
        (USER, 6, ta),
        (GROUP_OBJ, 0, ANY),
        (MASK, 6, ANY),
        (OTHER, 0, ANY),
    ]
    set_acl(host.engine, entries)
    problems = host.problems()
    assert len(problems) == 1
    assert "ds01ta is named in its ACL" in problems[0].message
    assert problems[0].fix == f"`setfacl -x u:ds01ta {host.engine}`"
    assert connects(unix_users["ds01ta"], host.engine)

    entries[3] = (MASK, 4, ANY)  # the mask takes write away from every named entry
    set_acl(host.engine, entries)
    assert host.problems() == []
    assert not connects(unix_users["ds01ta"], host.engine)

    group = _gid(host.socket_group)  # a named group (ds01ta in it, and admin ds01tb)
    set_acl(
        host.engine,
        [
            (USER_OBJ, 6, ANY),
            (GROUP_OBJ, 0, ANY),
            (GROUP, 6, group),
            (MASK, 6, ANY),
            (OTHER, 0, ANY),
        ],
    )
    problems = host.problems()
    assert len(problems) == 1
    assert problems[0].message.startswith(
        f"user ds01ta can connect to {host.engine} (root:root 0660 +ACL)"
    )
    assert f"is in group {host.socket_group}, named in its ACL" in problems[0].message
    assert connects(unix_users["ds01ta"], host.engine)


def test_daemon_json_hosts_and_dockerd_arguments(host, sockets):
    other = sockets.listen(f"{sockets.dir()}/other.sock", 0o666)
    Path(host.paths.daemon_json).write_text(
        json.dumps({"hosts": [f"unix://{other}", "tcp://127.0.0.1:2375", "fd://"]})
    )
    subprocess.run(["gpasswd", "-d", "ds01ta", host.socket_group], check=True, capture_output=True)
    problems = host.problems()
    assert [(p.check, p.subject) for p in problems] == [
        ("engine-socket", other),
        ("engine-tcp", "tcp://127.0.0.1:2375"),
    ]
    assert "without TLS client verification" in problems[1].message

    Path(host.paths.daemon_json).write_text(
        json.dumps({"hosts": ["tcp://0.0.0.0:2376"], "tlsverify": True})
    )
    assert host.problems() == []
    Path(host.paths.daemon_json).write_text("{not json")
    assert [p.check for p in host.problems()] == ["engine-config"]

    assert doctor.hosts_from_args(
        ["-H", "fd://", "--host=tcp://0.0.0.0:2375", "-Hunix:///x.sock", "--host", "unix:///y"]
    ) == ["fd://", "tcp://0.0.0.0:2375", "unix:///x.sock", "unix:///y"]


def test_a_dockerd_command_line_is_read_from_proc(host, sockets, tmp_path):
    other = sockets.listen(f"{sockets.dir()}/cmdline.sock", 0o666)
    fake = tmp_path / "proc" / "4321"
    fake.mkdir()
    (fake / "cmdline").write_bytes(b"/usr/bin/dockerd\0-H\0unix://" + other.encode() + b"\0")
    subprocess.run(["gpasswd", "-d", "ds01ta", host.socket_group], check=True, capture_output=True)
    assert [(p.check, p.subject) for p in host.problems()] == [("engine-socket", other)]


# -- the gateway, the profile snippet, the GPUs ----------------------------------------------------


def test_gateway_socket_checks(host, sockets):
    subprocess.run(["gpasswd", "-d", "ds01ta", host.socket_group], check=True, capture_output=True)
    assert host.problems() == []
    os.chmod(host.gateway, 0o660)
    [problem] = host.problems()
    assert (problem.check, problem.message.split(":")[0]) == ("gateway", "mode 0660")
    os.chmod(host.gateway, 0o666)

    listener = next(s for s in sockets.listeners if s.getsockname() == host.gateway)
    listener.close()  # the file stays, nobody answers
    [problem] = host.problems()
    assert "a stale socket" in problem.message
    os.unlink(host.gateway)
    [problem] = host.problems()
    assert "the gateway is not running" in problem.message
    assert "ds01-gateway" in problem.fix


def test_profile_snippet_checks(host):
    subprocess.run(["gpasswd", "-d", "ds01ta", host.socket_group], check=True, capture_output=True)
    snippet = Path(host.paths.profile_snippet)
    assert (PACKAGING / "profile.d/ds01-docker-host.sh").read_text().count(
        f"unix://{GatewayConfig().socket}"
    ) == 1  # the shipped file matches the default gateway socket
    snippet.write_text("export DOCKER_HOST=unix:///somewhere/else.sock\n")
    [problem] = host.problems()
    assert problem.check == "profile" and "does not point DOCKER_HOST" in problem.message
    snippet.unlink()
    [problem] = host.problems()
    assert problem.check == "profile" and "missing" in problem.message
    assert problem.fix.startswith("`install -m 0644 packaging/profile.d/ds01-docker-host.sh")


def test_gpu_device_nodes_and_the_group(host, unix_users):
    subprocess.run(["gpasswd", "-d", "ds01ta", host.socket_group], check=True, capture_output=True)
    assert host.problems() == []
    os.chmod(host.dev / "nvidia1", 0o666)
    os.chown(host.dev / "nvidia-caps/nvidia-cap1", 0, 0)
    problems = host.problems()
    assert [p.check for p in problems] == ["gpu-devices", "gpu-devices"]
    assert f"{host.dev}/nvidia1" in problems[0].message and "every user" in problems[0].message
    assert f"{host.dev}/nvidia-caps/nvidia-cap1 (root:root 0660)" in problems[1].message
    assert "udevadm control --reload && udevadm trigger" in problems[0].fix

    os.chmod(host.dev / "nvidia1", 0o660)
    os.chown(host.dev / "nvidia-caps/nvidia-cap1", 0, _gid(host.gpu_group))
    subprocess.run(["gpasswd", "-a", "ds01ta", host.gpu_group], check=True, capture_output=True)
    [problem] = host.problems()  # in the group by hand: access that never expires
    assert problem.check == "bare-metal" and "user ds01ta is in" in problem.message
    grant(host.runtime(), "ds01ta", 3600, "", "admin")
    assert host.problems() == []

    subprocess.run(["groupdel", host.gpu_group], check=True, capture_output=True)
    [problem] = host.problems()
    assert f"groupadd --system {host.gpu_group}" in problem.fix


def test_homes_must_be_nosuid_nodev_or_root_remapped(host, tmp_path):
    subprocess.run(["gpasswd", "-d", "ds01ta", host.socket_group], check=True, capture_output=True)
    assert host.problems() == []
    Path(host.paths.mounts).write_text("/dev/vda / ext4 rw,relatime 0 0\n")
    [problem] = host.problems()
    assert problem.check == "user-mounts" and "without nodev,nosuid" in problem.message
    assert "userns-remap" in problem.fix
    Path(host.paths.daemon_json).write_text(json.dumps({"userns-remap": "default"}))
    assert host.problems() == []
