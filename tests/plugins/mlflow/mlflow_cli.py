"""``ds01`` run against the real MLflow server: as real users through a real ``ds01-api`` on the
server's configuration, and as root in-process; and what the tests check with MLflow directly."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ds01_core.api import load_runtime
from ds01_mlflow.client import MlflowClient, MlflowError
from ds01_mlflow.config import MlflowConfig
from ds01_mlflow.credentials import Credentials, CredentialStore
from ds01_mlflow.provision import ensure_user, mlflow_config
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as
from tests.plugins.mlflow.mlflow_env import MlflowServer


@pytest.fixture(scope="module")
def api_sock(mlflow_server: MlflowServer) -> Iterator[str]:
    """A ``ds01-api`` on the MLflow server's own configuration (users reach it)."""
    with running_api(mlflow_server.config_path) as sock:
        yield sock


def config_of(server: MlflowServer) -> MlflowConfig:
    return mlflow_config(load_runtime(str(server.config_path)))


def as_user(user: Any, cli: Path, sock: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``ds01 ARGS`` as ``user`` (a real login) through the API socket."""
    return run_as(user, cli, list(args), env={"DS01_API_SOCKET": sock})


def as_root(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``ds01 ARGS`` as root, in-process."""
    env = {k: v for k, v in os.environ.items() if k not in ("DS01_API_SOCKET", "SUDO_USER")}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from ds01_core.transports.cli import main; main()",
            "--config",
            str(config),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def credentials(server: MlflowServer, user: str) -> Credentials:
    """The user's working credentials (their account made when missing)."""
    with server.admin() as admin:
        return ensure_user(config_of(server), admin, user)


def forget(server: MlflowServer, user: str) -> None:
    """No MLflow account and no credential file for ``user``."""
    with server.admin() as admin, contextlib.suppress(MlflowError):
        admin.delete_user(user)
    CredentialStore(config_of(server).credentials_dir).remove(user)


def create_run(client: MlflowClient, experiment_id: str) -> str:
    """A run in the experiment, made as the client's account (MLflow's REST API)."""
    found = client._call(
        "POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id}
    )
    return str(found["run"]["info"]["run_id"])


def assert_clean(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    """No traceback, no password in what the command printed."""
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    for secret in secrets:
        assert secret not in out
