"""Each program (``ds01``, ``ds01d``, ``ds01-gateway``, ``ds01-api``) run as a process that cannot
start: the exit code of the kind of failure, and one line saying what was wrong, never a
traceback (ds01_core.framework.startup)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ds01_core.framework.startup import EXIT_CONFIG, EXIT_PLUGINS, EXIT_UNAVAILABLE
from tests.helpers.config import write_config

PROGRAMS = ("ds01", "ds01d", "ds01-gateway", "ds01-api")
SERVERS = ("ds01-gateway", "ds01-api")
MAINS = {
    "ds01d": "ds01_core.cycle.daemon",
    "ds01-gateway": "ds01_core.transports.gateway.main",
    "ds01-api": "ds01_core.transports.api_socket.main",
}


@pytest.fixture(autouse=True)
def _as_root():
    """``ds01`` loads the configuration in-process only for root (others ask ds01-api)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: ds01 runs in-process only for root")


def program_path(name: str) -> str:
    """The console script the package installs, beside this interpreter."""
    path = Path(sysconfig.get_path("scripts")) / name
    if not path.exists():
        path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is not installed beside {sys.executable}"
    return str(path)


def start(program: str, config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``program`` with ``--config``; a command for ``ds01``, whose commands load lazily."""
    args = ["gpu", "status"] if program == "ds01" else []
    env = {k: v for k, v in os.environ.items() if k not in ("DS01_API_SOCKET", "DS01_CONFIG")}
    return subprocess.run(
        [program_path(program), "--config", str(config), *args, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def the_line(program: str, result: subprocess.CompletedProcess[str]) -> str:
    """The one line the program said on stderr (nothing else, no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{program}: cannot start: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("program", PROGRAMS)
def test_an_invalid_configuration_exits_2_naming_the_problem(program, tmp_path):
    config = write_config(tmp_path, {"limits": {"defaults": {"max_gpu_equivalents": "two"}}})
    result = start(program, config)
    assert result.returncode == EXIT_CONFIG == 2
    line = the_line(program, result)
    assert f"configuration refused: {config}: 1 problem(s): " in line
    assert "limits.defaults.max_gpu_equivalents: expected a number, got 'two'" in line
    assert "`ds01 config check` lists every problem" in line


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_missing_configuration_exits_2_saying_how_to_name_one(program, tmp_path):
    result = start(program, tmp_path / "nowhere.yaml")
    assert result.returncode == EXIT_CONFIG
    line = the_line(program, result)
    assert line.endswith(
        f"configuration refused: {tmp_path / 'nowhere.yaml'}: file not found "
        "(pass --config FILE or set DS01_CONFIG)"
    )


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_required_plugin_not_installed_exits_3(program, tmp_path):
    config = write_config(tmp_path, {"plugins": {"required": ["no-such-plugin"]}})
    result = start(program, config)
    assert result.returncode == EXIT_PLUGINS == 3
    line = the_line(program, result)
    assert "required plugin 'no-such-plugin' is not installed (install its distribution)" in line


@pytest.mark.parametrize("program", SERVERS)
def test_a_socket_another_server_answers_exits_4(program, tmp_path):
    config = write_config(tmp_path)
    busy = tmp_path / "busy.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(busy))
        other.listen()
        result = start(program, config, "--socket", str(busy))
    assert result.returncode == EXIT_UNAVAILABLE == 4
    line = the_line(program, result)
    assert f"another server is listening on {busy}" in line


@pytest.mark.parametrize("program", SERVERS)
def test_a_socket_path_that_cannot_exist_exits_4(program, tmp_path):
    config = write_config(tmp_path)
    result = start(program, config, "--socket", "/dev/null/ds01.sock")
    assert result.returncode == EXIT_UNAVAILABLE
    line = the_line(program, result)
    assert "cannot listen on /dev/null/ds01.sock: " in line


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory other users can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="ds01-startup-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("program", sorted(MAINS))
def test_a_user_who_may_not_write_the_state_exits_4(program, reachable_dir, unix_users, user_cli):
    """Started by a user who cannot write the state directory: refused before serving, naming
    the directory (it used to be a traceback from the first event written)."""
    shut = reachable_dir / "root-only"
    shut.mkdir(mode=0o700)
    config = write_config(
        reachable_dir,
        {
            "paths": {
                "state_dir": str(shut / "state"),
                "log_dir": str(shut / "log"),
                "runtime_dir": str(shut / "run"),
            }
        },
    )
    config.chmod(0o644)
    site = user_cli / "site"
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r}); from {MAINS[program]} import main; main()"
    )
    extra = ["--socket", str(reachable_dir / "s.sock")] if program in SERVERS else []
    user = unix_users["ds01ta"]
    command = ["runuser", "-u", user.name, "--", "/usr/bin/python3", "-I", "-c", code]
    result = subprocess.run(
        [*command, "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=user.home,
    )
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    assert "Traceback" not in result.stderr
    said = [ln for ln in result.stderr.splitlines() if ln.startswith(f"{program}: ")]
    assert said == [
        f"{program}: cannot start: Permission denied: {shut} (run it as root, or as the user "
        "its systemd unit names)"
    ], result.stderr
