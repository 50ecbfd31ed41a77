"""The MLflow server's restart loses nothing: accounts and their admin flags, experiments, runs
with their metrics and artifacts, shared permissions, and the credential files still accepted."""

from __future__ import annotations

import json
import secrets

import pytest
import requests

from ds01_mlflow.credentials import CredentialStore
from ds01_mlflow.provision import ensure_experiment
from tests.plugins.mlflow.mlflow_cli import as_root, config_of, create_run, credentials
from tests.plugins.mlflow.mlflow_env import MlflowServer

pytestmark = pytest.mark.integration


def artifact_url(server: MlflowServer, experiment: str, run: str) -> str:
    return f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/note.txt"


def test_a_restart_loses_nothing(mlflow_server: MlflowServer, unix_users, admin_member) -> None:
    config = config_of(mlflow_server)
    alice, bob = credentials(mlflow_server, "ds01ta"), credentials(mlflow_server, "ds01tb")
    name = f"ds01ta/restart-{secrets.token_hex(3)}"
    with mlflow_server.admin() as admin:
        experiment = ensure_experiment(config, admin, "ds01ta", name)
    with mlflow_server.as_user("ds01ta", alice.password) as client:
        run = create_run(client, experiment)
        client.log_batch(run, {"loss": 0.25}, {"ds01.container": "restart-box"}, step=3)
    note = secrets.token_hex(8)
    put = requests.put(
        artifact_url(mlflow_server, experiment, run), data=note, auth=("ds01ta", alice.password)
    )
    assert put.status_code == 200, put.text
    shared = as_root(
        mlflow_server.config_path, "mlflow", "share", name, "ds01tb", "--permission", "EDIT"
    )
    assert shared.returncode == 0, shared
    synced = as_root(mlflow_server.config_path, "admin", "mlflow", "sync", "--user", "ds01tc")
    assert synced.returncode == 0, synced
    status_before = as_root(mlflow_server.config_path, "mlflow", "status", "--json")

    mlflow_server.restart()

    files = CredentialStore(config.credentials_dir)
    assert files.read("ds01ta") == alice and files.read("ds01tb") == bob  # files untouched
    with mlflow_server.as_user("ds01ta", alice.password) as client:  # and still accepted
        kept = client.get_run(run)
        assert kept.experiment_id == experiment and kept.tags["ds01.container"] == "restart-box"
        [point] = client.metric_history(run, "loss")
        assert (point["value"], point["step"]) == (0.25, 3)
    with mlflow_server.as_user("ds01tb", bob.password) as client:  # bob's EDIT is still there
        assert client.get_experiment_by_name(name) is not None
        create_run(client, experiment)
    got = requests.get(
        artifact_url(mlflow_server, experiment, run), auth=("ds01ta", alice.password)
    )
    assert (got.status_code, got.text) == (200, note)
    with mlflow_server.admin() as admin:
        assert admin.permission("ds01ta", experiment) == "MANAGE"
        assert admin.permission("ds01tb", experiment) == "EDIT"
        assert admin.get_user("ds01tc")["is_admin"] is True
        assert admin.get_user("ds01tb")["is_admin"] is False
    status_after = as_root(mlflow_server.config_path, "mlflow", "status", "--json")
    assert json.loads(status_after.stdout)["server"] == json.loads(status_before.stdout)["server"]
