"""``ds01-mlflow-server`` and the shipped unit: ``--print`` shows the command and writes the
auth app's files (nobody else can read them), a bad configuration is refused in one line, the
unit runs the program as docs/mlflow-admin.md installs it, and ``ds01 admin doctor``'s checks
see what is wrong. (``systemd-analyze verify`` of the unit: tests/core/test_systemd_unit_files.py.)"""

from __future__ import annotations

import configparser
import os
import stat
import subprocess
from pathlib import Path

import attrs
import pytest

from ds01_core.api import load_runtime
from ds01_mlflow import doctor
from tests.helpers.config import write_config
from tests.plugins.mlflow.mlflow_cli import config_of
from tests.plugins.mlflow.mlflow_env import VENV, MlflowServer, server_program

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "packaging" / "systemd" / "ds01-mlflow.service"


def section(tmp_path: Path, **extra: object) -> Path:
    password = tmp_path / "admin-password"
    password.write_text("p4ssword-not-printed\n")
    password.chmod(0o600)
    values = {
        "url": "http://127.0.0.1:19599",
        "data_dir": str(tmp_path / "data"),
        "mlflow_command": str(VENV / "bin" / "mlflow"),
        "admin_password_file": str(password),
        **extra,
    }
    return write_config(tmp_path, {"plugins": {"mlflow": values}})


def serve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [server_program(), "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_print_shows_the_command_and_writes_private_files(tmp_path: Path) -> None:
    result = serve(section(tmp_path), "--print")
    assert result.returncode == 0, result
    data = tmp_path / "data"
    assert result.stdout.split() == [
        str(VENV / "bin" / "mlflow"), "server", "--app-name", "basic-auth",
        "--host", "127.0.0.1", "--port", "19599", "--workers", "2",
        "--backend-store-uri", f"sqlite:///{data / 'mlflow.db'}",
        "--artifacts-destination", str(data / "artifacts"),
    ]  # fmt: skip
    assert "p4ssword" not in result.stdout + result.stderr
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    ini = data / "basic_auth.ini"
    assert stat.S_IMODE(os.stat(ini).st_mode) == 0o600
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read(ini)
    assert parsed["mlflow"]["default_permission"] == "NO_PERMISSIONS"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"url": "ftp://example.org"}, "plugins.mlflow.url: must be an http(s) URL"),
        ({"mlflow_command": "/nonexistent/mlflow"}, "is not an executable mlflow"),
        ({"admin_password_file": "/nonexistent/pw"}, "cannot read the MLflow admin password"),
    ],
)
def test_a_bad_configuration_is_one_line(tmp_path: Path, extra: dict, message: str) -> None:
    result = serve(section(tmp_path, **extra))
    assert result.returncode == 1, result
    assert result.stderr.startswith("ds01-mlflow-server: cannot start:"), result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_the_unit_runs_the_program_after_docker_and_always_restarts() -> None:
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]
    parsed.read_string(UNIT.read_text())
    service = parsed["Service"]
    assert service["ExecStart"] == "/opt/ds01/bin/ds01-mlflow-server --config /etc/ds01/ds01.yaml"
    assert service["Restart"] == "always"
    assert "docker.service" in parsed["Unit"]["After"].split()
    assert "docker.service" in parsed["Unit"]["Wants"].split()
    pyproject = (ROOT / "plugins" / "mlflow" / "pyproject.toml").read_text()
    assert 'ds01-mlflow-server = "ds01_mlflow.server:main"' in pyproject


def test_doctor_passes_on_a_sound_server_and_names_each_problem(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    runtime = load_runtime(str(mlflow_server.config_path))
    try:
        found = doctor.doctor_checks(runtime)  # its admin password file is there: set up
    finally:
        runtime.close()
    assert {f.check for f in found} >= {"mlflow server", "mlflow admin", "mlflow permissions",
                                        "mlflow secrets"}  # fmt: skip
    assert [f for f in found if not f.ok] == []
    elsewhere = attrs.evolve(config_of(mlflow_server), admin_password_file=str(tmp_path / "none"))
    assert doctor.set_up_here(elsewhere) is None  # (no unit here either), though a server runs

    config = config_of(mlflow_server)
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-servers-password\n")
    wrong.chmod(0o644)
    ini = tmp_path / "data" / "basic_auth.ini"
    ini.parent.mkdir()
    ini.write_text("[mlflow]\ndefault_permission = READ\n")
    bad = attrs.evolve(config, admin_password_file=str(wrong), data_dir=str(ini.parent))
    problems = {f.check: f for f in doctor.checks_for(bad) if not f.ok}
    assert set(problems) == {"mlflow admin", "mlflow permissions", "mlflow secrets"}
    assert "refuses ds01's admin account" in problems["mlflow admin"].message
    assert "default_permission is READ" in problems["mlflow permissions"].message
    assert problems["mlflow secrets"].fix == f"chown root: {wrong} && chmod 0600 {wrong}"
    down = attrs.evolve(config, url="http://127.0.0.1:1")
    [server] = [f for f in doctor.checks_for(down) if f.check == "mlflow server"]
    assert not server.ok and "systemctl status ds01-mlflow" in (server.fix or "")
