"""The unit files and the tmpfiles.d entry, checked by systemd's own tools, and against what
docs/install.md installs and what the configuration's defaults say.

``systemd-analyze verify`` must exist: missing, these tests are skipped locally and fail under
``CI=true`` (scripts/ci/setup-systemd.sh installs it). Behaviour under a running systemd is
tested in tests/integration/test_systemd_units.py.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from ds01_core.domain.config import Config
from tests.conftest import in_ci

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "packaging" / "systemd"
TMPFILES = ROOT / "packaging" / "tmpfiles.d" / "ds01.conf"
INSTALL_MD = ROOT / "docs" / "install.md"
# the plugins' units, installed with their plugin (docs/reports.md), not by install.md
PLUGIN_UNIT_FILES = [
    UNITS / "ds01-report-monthly.service",
    UNITS / "ds01-report-monthly.timer",
    UNITS / "ds01-web.service",
    UNITS / "ds01-mlflow.service",
]
# ds01's own units; NVIDIA's dcgm-exporter's (optional, tests/core/test_dcgm_unit_files.py) and
# the plugins' aside
UNIT_FILES = sorted(
    p
    for p in UNITS.iterdir()
    if not p.name.startswith("ds01-dcgm-exporter") and p not in PLUGIN_UNIT_FILES
)


def tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        reason = f"{name} is missing; install it with: bash scripts/ci/setup-systemd.sh"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: these tests must not be skipped)", pytrace=False)
        pytest.skip(reason)
    return path


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def exec_start(path: Path) -> str | None:
    parsed = unit(path)
    if not parsed.has_option("Service", "ExecStart"):
        return None
    return parsed.get("Service", "ExecStart").split()[0]


def test_the_units_are_what_the_issue_asked_for() -> None:
    names = {path.name for path in UNIT_FILES}
    assert names == {
        "ds01d.service",
        "ds01-gateway.socket",
        "ds01-gateway.service",
        "ds01-api.socket",
        "ds01-api.service",
    }


@pytest.mark.parametrize("path", UNIT_FILES + PLUGIN_UNIT_FILES, ids=lambda p: p.name)
def test_systemd_analyze_verify(path: Path, tmp_path: Path) -> None:
    """The unit as systemd parses it, with its programs present (verify checks they exist):
    the units are copied with /opt/ds01/bin pointing at stand-ins."""
    verify = tool("systemd-analyze")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("ds01", "ds01d", "ds01-gateway", "ds01-api", "ds01-web", "ds01-mlflow-server"):
        stub = bin_dir / name
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    for each in UNIT_FILES + PLUGIN_UNIT_FILES:
        (tmp_path / each.name).write_text(each.read_text().replace("/opt/ds01/bin", str(bin_dir)))
    result = subprocess.run(
        [verify, "verify", "--man=no", str(tmp_path / path.name)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # warnings too: a misspelt key is only a warning


def test_no_unit_owns_run_ds01() -> None:
    """systemd deletes a unit's RuntimeDirectory= when the unit stops, and the users' sockets
    live in /run/ds01: it must come from tmpfiles.d, never from a service."""
    for path in UNIT_FILES:
        parsed = unit(path)
        keys = [key for section in parsed.sections() for key in parsed[section]]
        assert not [key for key in keys if key.startswith("RuntimeDirectory")], path.name


def test_tmpfiles_make_run_ds01_world_readable_and_never_clean_it(tmp_path: Path) -> None:
    tmpfiles = tool("systemd-tmpfiles")
    result = subprocess.run(
        [tmpfiles, f"--root={tmp_path}", "--create", str(TMPFILES)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    made = tmp_path / "run" / "ds01"
    assert made.is_dir()
    assert oct(made.stat().st_mode & 0o7777) == "0o755"
    assert made.stat().st_uid == 0 or made.owner() == "root"
    (line,) = [x for x in TMPFILES.read_text().splitlines() if x and not x.startswith("#")]
    assert line.split() == ["d", Config().paths.runtime_dir, "0755", "root", "root", "-"]


def test_the_sockets_are_the_configured_ones_and_open_to_everyone() -> None:
    gateway = unit(UNITS / "ds01-gateway.socket")["Socket"]
    assert gateway["ListenStream"] == Config().gateway.socket
    api = unit(UNITS / "ds01-api.socket")["Socket"]
    api_config = getattr(Config(), "api", None)
    expected_api = getattr(api_config, "socket", None) or "/run/ds01/api.sock"
    assert api["ListenStream"] == expected_api
    for section in (gateway, api):
        assert section["SocketMode"] == "0666"  # who the caller is comes from SO_PEERCRED
        assert section.get("Accept", "no") == "no"  # one long-running server, not one per client


@pytest.mark.parametrize("name", ["ds01-gateway", "ds01-api"])
def test_socket_activated_services_need_their_socket(name: str) -> None:
    service = unit(UNITS / f"{name}.service")
    assert f"{name}.socket" in service["Unit"]["Requires"].split()
    assert f"{name}.socket" in service["Unit"]["After"].split()
    assert service["Service"]["Restart"] == "always"
    assert f"{name}.socket" in service["Install"]["Also"].split()


def installed_programs() -> set[str]:
    """The program paths docs/install.md's commands create: the venv's console scripts, and
    the links it makes."""
    text = INSTALL_MD.read_text()
    venv = re.search(r"^# python3 -m venv (\S+)$", text, re.MULTILINE)
    assert venv, "install.md no longer creates the venv"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    if not (ROOT / "ds01_core" / "api_socket").is_dir():
        scripts = {**scripts, "ds01-api": "(the local API server, not in this checkout yet)"}
    programs = {f"{venv.group(1)}/bin/{name}" for name in scripts}
    for links in re.findall(r"^# ln -s (.+)$", text, re.MULTILINE):
        *sources, target = links.split()
        for source in sources:
            if source in programs:
                programs.add(f"{target.rstrip('/')}/{Path(source).name}")
    return programs


def test_every_unit_runs_a_program_install_md_installs() -> None:
    """The gateway's unit ran /usr/local/bin/ds01-gateway, which install.md never linked."""
    programs = installed_programs()
    for path in UNIT_FILES:
        program = exec_start(path)
        if program is not None:
            assert program in programs, f"{path.name} runs {program}; install.md makes {programs}"


def test_install_md_installs_every_unit_and_the_tmpfiles_entry() -> None:
    text = INSTALL_MD.read_text()
    for path in UNIT_FILES:
        assert f"packaging/systemd/{path.name}" in text, path.name
    assert "packaging/tmpfiles.d/ds01.conf" in text
    enabled = " ".join(re.findall(r"^# systemctl enable --now (.+)$", text, re.MULTILINE))
    for path in UNIT_FILES:
        assert path.name in enabled.split(), f"install.md never enables {path.name}"
