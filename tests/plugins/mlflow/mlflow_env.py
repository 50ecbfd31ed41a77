"""A real MLflow tracking server (basic-auth app) for the tests, started the way the shipped unit
starts it: ``ds01-mlflow-server --config <ds01.yaml>``, from the venv scripts/ci/setup-mlflow.sh
installs (/opt/ds01-test-mlflow; ``DS01_MLFLOW_VENV`` chooses another).

It listens on the Docker bridge's address (where containers reach it, as on a real server) on a
free port; its data, the admin password file and the users' credential files are in the test's
own directory. :meth:`MlflowServer.restart` stops and starts it on the same data.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from ds01_mlflow.client import MlflowClient, MlflowError
from tests.helpers.config import write_config

VENV = Path(os.environ.get("DS01_MLFLOW_VENV", "/opt/ds01-test-mlflow"))
START_TIMEOUT = 90.0  # ~11 s on an idle 2-core machine; much more while other tests run


def bridge_address() -> str:
    """The host's address on Docker's default bridge (containers reach the host there)."""
    client = docker.from_env()
    try:
        config = client.api.inspect_network("bridge")["IPAM"]["Config"]
    finally:
        client.close()
    return str(config[0]["Gateway"])


def free_port(host: str, first: int = 19500, last: int = 19599) -> int:
    """A free port, tried from a random one on: parallel sessions (and a port left free for
    a moment by a restart) seldom pick the same."""
    start = secrets.randbelow(last - first + 1)
    for offset in range(last - first + 1):
        port = first + (start + offset) % (last - first + 1)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {first}-{last} on {host}")


def server_program() -> str:
    found = shutil.which(
        "ds01-mlflow-server", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    )
    assert found, "ds01-mlflow-server is not installed (pip install ./plugins/mlflow)"
    return found


class MlflowServer:
    """One ``ds01-mlflow-server`` process group on its own data, and what tests need to use it."""

    def __init__(self, base: Path, extra: dict[str, Any] | None = None):
        if not (VENV / "bin" / "mlflow").exists():
            pytest.fail(f"no MLflow in {VENV}: run scripts/ci/setup-mlflow.sh")
        self.base = base
        host = bridge_address()
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.admin_password = secrets.token_urlsafe(18)
        password_file = base / "mlflow-admin-password"
        password_file.write_text(self.admin_password + "\n")
        password_file.chmod(0o600)
        self.section: dict[str, Any] = {
            "url": self.url,
            "data_dir": str(base / "mlflow-data"),
            "credentials_dir": str(base / "mlflow-users"),
            "mlflow_command": str(VENV / "bin" / "mlflow"),
            "admin_password_file": str(password_file),
            "workers": 1,
            "timeout": "10s",
            **(extra or {}),
        }
        self.config_path = write_config(base, {"plugins": {"mlflow": self.section}})
        self.process: subprocess.Popen[bytes] | None = None
        self.log = base / "mlflow-server.log"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [server_program(), "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        with MlflowClient(self.url, timeout=2) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"the MLflow server died:\n{self.log.read_text()[-3000:]}")
                if probe.health() and self._ours():
                    return
                time.sleep(0.2)
        raise AssertionError(f"the MLflow server did not answer:\n{self.log.read_text()[-3000:]}")

    def _ours(self) -> bool:
        """The server answering is this one (its admin password is accepted), not another
        session's that took the port while this one was stopped."""
        with self.admin() as admin:
            try:
                admin.search_experiments(max_results=1)
            except MlflowError:
                return False
        return True

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def admin(self) -> MlflowClient:
        """A client as MLflow's admin account."""
        return MlflowClient(self.url, "ds01-admin", self.admin_password, timeout=10)

    def as_user(self, username: str, password: str) -> MlflowClient:
        return MlflowClient(self.url, username, password, timeout=10)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server for the whole session (it takes seconds to start); tests use their own
    experiment names, so they do not see each other's."""
    base = tmp_path_factory.mktemp("mlflow")
    base.chmod(0o755)
    server = MlflowServer(base)
    server.start()
    try:
        yield server
    finally:
        server.stop()
