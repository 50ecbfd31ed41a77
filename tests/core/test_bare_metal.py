"""Bare-metal GPU access: grants as real group membership, and the daemon's watch over host GPU
processes, with real groups, real users and real processes (reported as GPU processes through
the simulated provider's processes file)."""

from __future__ import annotations

import datetime as dt
import grp
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ds01_core.builtin.bare_metal_watch import SEEN_KIND, ProcessRef, stop_processes, watch
from ds01_core.cycle.detection.procfs import read_proc
from ds01_core.cycle.pipeline import run_cycle
from ds01_core.domain.gpu.simulated import SimulatedProvider
from ds01_core.domain.model import Workload
from ds01_core.framework.runtime import Runtime, load_runtime
from ds01_core.services.bare_metal_grants import (
    BareMetalError,
    UnixGroups,
    expire,
    grant,
    list_grants,
    revoke,
)
from ds01_core.transports.cli import cli

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


# -- fixtures -----------------------------------------------------------------------------------


def make_group(prefix: str) -> str:
    name = f"{prefix}{secrets.token_hex(3)}"
    subprocess.run(["groupadd", "--system", name], check=True, capture_output=True)
    return name


@pytest.fixture
def groups(unix_users) -> Iterator[Callable[[str], str]]:
    """``groups(prefix)``: a real, new system group, deleted after the test."""
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(make_group(prefix))
        return made[-1]

    yield make
    for name in made:
        subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture
def gpu_group(groups) -> str:
    return groups("ds01bm")


@pytest.fixture
def processes_file(tmp_path: Path) -> Path:
    path = tmp_path / "gpu-processes.yaml"
    path.write_text("[]\n")
    return path


@pytest.fixture
def slot():
    return next(s for s in SimulatedProvider().slots() if s.kind == "gpu")


@pytest.fixture
def make_runtime(tmp_config, gpu_group, processes_file) -> Callable[..., Runtime]:
    """A runtime on a temporary config: the test's group, the processes file, host processes
    reported at first sight, no Docker detector (these tests need no engine)."""

    def make(**bare_metal) -> Runtime:
        extra = bare_metal.pop("extra", {})
        data = {
            "bare_metal": {"group": gpu_group, **bare_metal},
            "gpu": {"simulated": {"processes_file": str(processes_file)}},
            "detection": {"process_confirm_cycles": 1},
            "plugins": {"disabled": ["docker-detector"]},
        }
        data.update(extra)
        return load_runtime(str(tmp_config(data)))

    return make


@pytest.fixture
def spawn(unix_users) -> Iterator[Callable[..., subprocess.Popen]]:
    """``spawn(user_name or None, *argv)``: a real process as that user (root when None),
    started by fork + setuid in the child; killed after the test."""
    started: list[subprocess.Popen] = []

    def start(user: str | None, *argv: str) -> subprocess.Popen:
        kwargs = {}
        if user is not None:
            u = unix_users[user]
            kwargs = {"user": u.uid, "group": u.gid, "extra_groups": []}
        started.append(subprocess.Popen(list(argv or ("sleep", "3600")), **kwargs))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def on_gpu(processes_file: Path, slot_uuid: str, *procs: subprocess.Popen) -> None:
    processes_file.write_text(yaml.safe_dump([{"pid": p.pid, "slot": slot_uuid} for p in procs]))


def members(group: str) -> list[str]:
    return grp.getgrnam(group).gr_mem


def logged(runtime: Runtime, prefix: str) -> list[dict]:
    return runtime.events.query(type_prefix=prefix)


def later(runtime: Runtime, monkeypatch: pytest.MonkeyPatch, **delta: float) -> None:
    moved = dt.datetime.now(dt.UTC) + dt.timedelta(**delta)
    monkeypatch.setattr(runtime, "now", lambda: moved)


def gone(proc: subprocess.Popen, timeout: float = 10) -> int | None:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


# -- grants -------------------------------------------------------------------------------------


def test_grant_and_revoke_change_real_group_membership(make_runtime, gpu_group):
    runtime = make_runtime()
    first = grant(runtime, "DS01TA", 3600, "thesis deadline", "prof")
    assert first.user == "ds01ta"
    assert "ds01ta" in members(gpu_group)
    assert 3590 < (first.expires - runtime.now()).total_seconds() <= 3600
    again = grant(runtime, "ds01ta", 7200, "extended", "prof")  # replaces the first
    assert [(g.id, g.user, g.reason) for g in list_grants(runtime)] == [
        (again.id, "ds01ta", "extended")
    ]

    done = revoke(runtime, "ds01ta", "prof")
    assert (done.grants, done.membership_removed) == ([again.id], True)
    assert "ds01ta" not in members(gpu_group)
    assert list_grants(runtime) == []
    events = logged(runtime, "bare_metal.")
    assert [e["event_type"] for e in events] == [
        "bare_metal.granted",
        "bare_metal.granted",
        "bare_metal.revoked",
    ]
    assert events[1]["details"]["replaced"] == [first.id]
    assert events[2]["details"] == {
        "group": gpu_group,
        "grants": [again.id],
        "membership_removed": True,
        "by": "prof",
    }


def test_default_duration_comes_from_the_config(make_runtime):
    runtime = make_runtime(default_duration="90m")
    given = grant(runtime, "ds01tb", None, "", "admin")
    assert 5390 < (given.expires - runtime.now()).total_seconds() <= 5400


def test_revoke_removes_a_membership_made_by_hand(make_runtime, gpu_group):
    runtime = make_runtime()
    subprocess.run(["gpasswd", "-a", "ds01tb", gpu_group], check=True, capture_output=True)
    done = revoke(runtime, "ds01tb", "admin")
    assert (done.grants, done.membership_removed) == ([], True)
    assert "ds01tb" not in members(gpu_group)
    with pytest.raises(BareMetalError, match="nothing to revoke"):
        revoke(runtime, "ds01tb", "admin")


def test_a_missing_group_or_user_is_refused_with_what_to_do(make_runtime, gpu_group):
    runtime = make_runtime(extra={"bare_metal": {"group": "ds01-no-such-group"}})
    with pytest.raises(BareMetalError, match=r"groupadd --system ds01-no-such-group"):
        grant(runtime, "ds01ta", 3600, "", "admin")
    with pytest.raises(BareMetalError, match="no user 'nobody-here-x'"):
        grant(make_runtime(), "nobody-here-x", 3600, "", "admin")
    assert list_grants(runtime) == []


def test_membership_is_injectable_and_a_failed_add_records_nothing(make_runtime):
    class Refusing(UnixGroups):
        def __init__(self) -> None:
            self.calls: list[tuple[str, str, str]] = []

        def add(self, user: str, group: str) -> None:
            self.calls.append(("add", user, group))
            raise BareMetalError("directory service is read-only")

    runtime = make_runtime()
    refusing = Refusing()
    with pytest.raises(BareMetalError, match="read-only"):
        grant(runtime, "ds01ta", 3600, "", "admin", groups=refusing)
    assert refusing.calls == [("add", "ds01ta", runtime.config.bare_metal.group)]
    assert list_grants(runtime) == []
    assert logged(runtime, "bare_metal.") == []


def test_an_expired_grant_is_ended_by_the_daemon(make_runtime, gpu_group, monkeypatch):
    runtime = make_runtime()
    given = grant(runtime, "ds01ta", 3600, "", "admin")
    assert run_cycle(runtime).events == []  # not yet
    assert "ds01ta" in members(gpu_group)

    later(runtime, monkeypatch, hours=2)
    report = run_cycle(runtime)
    expired = [e for e in report.events if e.event_type == "bare_metal.expired"]
    assert [(e.user, e.details["grants"], e.details["membership_removed"]) for e in expired] == [
        ("ds01ta", [given.id], True)
    ]
    assert "ds01ta" not in members(gpu_group)
    assert list_grants(runtime) == []
    assert [e["user"] for e in logged(runtime, "bare_metal.expired")] == ["ds01ta"]
    notices = logged(runtime, "notice.recorded")
    assert [(n["user"], n["details"]["about"]) for n in notices] == [
        ("ds01ta", "bare_metal.expired")
    ]
    assert expire(runtime) == []  # ended once


# -- the daemon's watch over host GPU processes ---------------------------------------------------


def test_notify_mode_reports_once_and_never_kills(
    make_runtime, spawn, processes_file, slot, monkeypatch
):
    runtime = make_runtime(action="notify", grace="1s")
    proc = spawn("ds01tb", "sleep", "3601")
    on_gpu(processes_file, slot.uuid, proc)

    report = run_cycle(runtime)
    found = [e for e in report.events if e.event_type == "bare_metal.unauthorised"]
    assert len(found) == 1
    # flagged in the cycle's inventory (the exporter's ds01_host_gpu_processes_without_grant)
    assert [w.pids for w in report.workloads if "no_grant" in w.flags] == [[proc.pid]]
    assert found[0].user == "ds01tb"
    assert found[0].details["pid"] == proc.pid
    assert found[0].details["command"] == "sleep 3601"
    assert found[0].details["gpu"] == [slot.slot_id]
    notices = logged(runtime, "notice.recorded")
    assert [(n["user"], n["details"]["about"]) for n in notices] == [
        ("ds01tb", "bare_metal.unauthorised")
    ]
    assert str(proc.pid) in notices[0]["details"]["message"]

    later(runtime, monkeypatch, days=1)  # far past the grace: notify mode still never kills
    again = run_cycle(runtime)
    assert [e for e in again.events if e.event_type.startswith("bare_metal.")] == []
    assert proc.poll() is None
    assert len(logged(runtime, "bare_metal.unauthorised")) == 1


def test_kill_mode_stops_only_that_process_and_only_after_the_grace(
    make_runtime, spawn, processes_file, slot, monkeypatch
):
    runtime = make_runtime(action="kill", grace="1h")
    target = spawn("ds01tb", "sleep", "3602")
    bystander = spawn("ds01tb", "sleep", "3603")  # the same user's, not on a GPU
    roots = spawn(None, "sleep", "3604")  # root's, on a GPU
    on_gpu(processes_file, slot.uuid, target, roots)

    first = run_cycle(runtime)
    assert [e.event_type for e in first.events if e.event_type.startswith("bare_metal.")] == [
        "bare_metal.unauthorised"
    ]
    assert "will be stopped in 1h" in logged(runtime, "notice.recorded")[0]["details"]["message"]
    assert target.poll() is None  # within the grace

    later(runtime, monkeypatch, minutes=61)
    report = run_cycle(runtime)
    killed = [e for e in report.events if e.event_type == "bare_metal.killed"]
    assert [(e.user, e.details["pid"], e.details["signal"]) for e in killed] == [
        ("ds01tb", target.pid, "SIGTERM")
    ]
    assert killed[0].details["seen_seconds"] >= 3600
    assert gone(target) == -signal.SIGTERM
    assert bystander.poll() is None and roots.poll() is None
    assert [n["details"]["about"] for n in logged(runtime, "notice.recorded")] == [
        "bare_metal.unauthorised",
        "bare_metal.killed",
    ]
    # what was remembered about the process goes with it
    run_cycle(runtime)
    rows = runtime.state.db.execute(
        "SELECT * FROM notices_sent WHERE kind = ?", (SEEN_KIND,)
    ).fetchall()
    assert rows == []


def test_the_grace_runs_in_real_time(make_runtime, spawn, processes_file, slot):
    runtime = make_runtime(action="kill", grace="1s")
    proc = spawn("ds01ta", "sleep", "3605")
    on_gpu(processes_file, slot.uuid, proc)
    run_cycle(runtime)
    assert proc.poll() is None
    time.sleep(1.2)
    run_cycle(runtime)
    assert gone(proc) == -signal.SIGTERM


def test_users_with_a_grant_and_admins_are_left_alone(
    make_runtime, groups, spawn, processes_file, slot, gpu_group
):
    admins = groups("ds01adm")
    subprocess.run(["gpasswd", "-a", "ds01ta", admins], check=True, capture_output=True)
    runtime = make_runtime(action="kill", grace="0s", extra={"gateway": {"admin_group": admins}})
    grant(runtime, "ds01tb", 3600, "benchmark", "admin")
    granted = spawn("ds01tb", "sleep", "3606")
    admin = spawn("ds01ta", "sleep", "3607")
    on_gpu(processes_file, slot.uuid, granted, admin)
    report = run_cycle(runtime)
    assert [e for e in report.events if e.event_type.startswith("bare_metal.")] == []
    assert granted.poll() is None and admin.poll() is None
    assert [w for w in report.workloads if "no_grant" in w.flags] == []

    revoke(runtime, "ds01tb", "admin")  # from now on, ds01tb's process is unauthorised
    report = run_cycle(runtime)
    assert [(e.event_type, e.details["pid"]) for e in report.events] == [
        ("bare_metal.unauthorised", granted.pid),
        ("bare_metal.killed", granted.pid),
    ]
    assert gone(granted) == -signal.SIGTERM
    assert admin.poll() is None


def test_a_process_that_ignores_sigterm_gets_sigkill(spawn, unix_users):
    proc = spawn("ds01ta", "sh", "-c", "trap '' TERM; exec sleep 3608")
    info = wait_for_exec(proc.pid, "sleep 3608")
    started = time.monotonic()
    assert stop_processes([ProcessRef(proc.pid, info.start_ticks, info.uid)], wait=0.5) == [
        "SIGKILL"
    ]
    assert time.monotonic() - started < 5
    assert gone(proc) == -signal.SIGKILL


def test_a_reused_pid_or_another_owner_is_never_signalled(spawn, unix_users):
    proc = spawn("ds01ta", "sleep", "3609")
    info = wait_for_exec(proc.pid, "sleep 3609")
    other = unix_users["ds01tb"].uid
    assert stop_processes(
        [
            ProcessRef(proc.pid, info.start_ticks + 1, info.uid),  # an earlier process's pid
            ProcessRef(proc.pid, info.start_ticks, other),
            ProcessRef(4_999_999, 1, info.uid),
        ],
        wait=0.2,
    ) == ["pid reused by another process", "pid reused by another process", "gone"]
    assert proc.poll() is None


def wait_for_exec(pid: int, cmdline: str):
    """The /proc view of ``pid`` once it runs ``cmdline`` (after the fork, before the exec, it is
    still the parent's image)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        info = read_proc(pid)
        if info is not None and info.cmdline == cmdline:
            return info
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} never ran {cmdline!r}")


@pytest.mark.integration
def test_a_process_in_a_container_is_never_killed(
    make_runtime, processes_file, slot, container_factory, unix_users
):
    box = container_factory({"Labels": {"ds01.user": "ds01ta"}, "User": "1001"})
    container_factory.engine.exec_run(box.id, ["sh", "-c", "sleep 3610 &"])
    pid = _container_pid(box.id, "sleep 3610")
    processes_file.write_text(yaml.safe_dump([{"pid": pid, "slot": slot.uuid}]))
    runtime = make_runtime(action="kill", grace="0s", extra={"plugins": {"disabled": []}})
    report = run_cycle(runtime)
    assert [e for e in report.events if e.event_type.startswith("bare_metal.")] == []
    # even reported (wrongly) as a host process, it is refused at every step
    info = read_proc(pid)
    assert info is not None and info.container_id == box.id
    fake = Workload(
        kind="process",
        id=str(pid),
        name="sleep",
        origin="host",
        owner="ds01ta",
        owner_source="process_uid",
        status="running",
        pids=[pid],
    )
    assert watch(runtime, [fake]) == []
    assert stop_processes([ProcessRef(pid, info.start_ticks, info.uid)], wait=0.2) == [
        "runs in a container"
    ]
    assert read_proc(pid) is not None


def _container_pid(container_id: str, cmdline: str) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                info = read_proc(int(entry.name))
                if info and info.container_id == container_id and info.cmdline == cmdline:
                    return info.pid
        time.sleep(0.1)
    raise AssertionError(f"no {cmdline!r} in {container_id}")


# -- the command line ---------------------------------------------------------------------------


def test_cli_grant_list_revoke(make_runtime, gpu_group, tmp_config):
    runtime = make_runtime()
    config = runtime.config.source

    def run(*args: str):
        return CliRunner().invoke(cli, ["--config", config, "admin", "bare-metal", *args])

    done = run("grant", "ds01ta", "2h", "--reason", "profiling")
    assert done.exit_code == 0, done.output
    assert re.search(rf"ds01ta may use the GPUs directly until .*group {gpu_group}", done.output)
    assert "ds01ta" in members(gpu_group)
    subprocess.run(["gpasswd", "-a", "ds01tb", gpu_group], check=True, capture_output=True)

    listing = json.loads(run("list", "--json").output)
    assert listing["group"] == gpu_group
    assert [(g["user"], g["reason"]) for g in listing["grants"]] == [("ds01ta", "profiling")]
    assert listing["members_without_grant"] == ["ds01tb"]
    table = run("list").output
    assert "profiling" in table and "without a grant (never expires): ds01tb" in table

    assert run("grant", "ds01ta", "two hours").exit_code == 2  # a bad duration is a usage error
    revoked = run("revoke", "ds01ta")
    assert revoked.exit_code == 0 and "ended grant(s)" in revoked.output
    assert "removed from" in revoked.output
    by_hand = run("revoke", "ds01tb")
    assert by_hand.exit_code == 0
    assert f"ds01tb had no ds01 grant; removed from {gpu_group} anyway" in by_hand.output
    nothing = run("revoke", "ds01tb")
    assert nothing.exit_code == 1 and "nothing to revoke" in nothing.output
    assert members(gpu_group) == []


def test_cli_grant_without_the_group_says_how_to_create_it(tmp_config):
    config = tmp_config({"bare_metal": {"group": "ds01-no-such-group"}})
    result = CliRunner().invoke(
        cli, ["--config", str(config), "admin", "bare-metal", "grant", "ds01ta"]
    )
    assert result.exit_code == 1
    assert "groupadd --system ds01-no-such-group" in result.output


# -- the shipped packaging files ----------------------------------------------------------------


def test_udev_rule_covers_every_nvidia_node():
    rules = [
        line
        for line in (PACKAGING / "udev/70-ds01-gpu-direct.rules").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    kernels = [re.search(r'KERNEL=="([^"]+)"', line).group(1) for line in rules]
    assert kernels == [
        "nvidia[0-9]*",
        "nvidiactl",
        "nvidia-uvm",
        "nvidia-uvm-tools",
        "nvidia-modeset",
        "nvidia-cap[0-9]*",
    ]
    assert all('GROUP="ds01-gpu-direct", MODE="0660"' in line for line in rules)


def test_modprobe_template_takes_a_numeric_gid():
    text = (PACKAGING / "modprobe.d/ds01-nvidia.conf.in").read_text()
    options = [line for line in text.splitlines() if line.startswith("options")]
    assert options == [
        "options nvidia NVreg_DeviceFileUID=0 NVreg_DeviceFileGID=@GID@ NVreg_DeviceFileMode=0660"
    ]
    gid = grp.getgrnam("root").gr_gid
    rendered = text.replace("@GID@", str(gid))
    assert re.search(r"NVreg_DeviceFileGID=\d+ ", rendered)


def test_profile_snippet_points_users_at_the_gateway(unix_users):
    snippet = (PACKAGING / "profile.d/ds01-docker-host.sh").read_text()
    assert "/run/ds01/docker.sock" in snippet
    directory = tempfile.mkdtemp(prefix="ds01-profile-", dir="/tmp")
    os.chmod(directory, 0o755)
    path = f"{directory}/docker.sock"
    script = snippet.replace("/run/ds01/docker.sock", path) + '\nprintf "%s" "${DOCKER_HOST-}"'
    listener = socket.socket(socket.AF_UNIX)

    def docker_host(user: str | None, **env: str) -> str:
        command = ["sh", "-c", script]
        if user:
            command = ["runuser", "-u", user, "--", *command]
        clean = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", **env}
        return subprocess.run(command, env=clean, capture_output=True, text=True).stdout

    try:
        assert docker_host("ds01ta") == ""  # no gateway socket yet: nothing changes
        listener.bind(path)
        assert docker_host("ds01ta") == f"unix://{path}"
        assert docker_host(None) == ""  # root keeps the engine
        assert docker_host("ds01ta", DOCKER_HOST="tcp://mine:2375") == "tcp://mine:2375"
    finally:
        listener.close()
        subprocess.run(["rm", "-rf", directory], check=False)
