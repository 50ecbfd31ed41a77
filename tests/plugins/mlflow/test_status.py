"""``ds01 mlflow status`` as a real user through ``ds01-api``, asked of the real MLflow server
with the user's own credentials: without an account, with one, with refused credentials, and
with the server down."""

from __future__ import annotations

import json
import secrets

import pytest

from ds01_mlflow.provision import ensure_experiment
from tests.helpers.config import write_config
from tests.plugins.mlflow.mlflow_cli import (
    api_sock,
    as_root,
    as_user,
    assert_clean,
    config_of,
    create_run,
    credentials,
    forget,
)
from tests.plugins.mlflow.mlflow_env import MlflowServer, bridge_address, free_port

pytestmark = pytest.mark.integration
__all__ = ["api_sock"]


def test_status_without_an_account(
    mlflow_server: MlflowServer, api_sock: str, unix_users, user_cli
) -> None:
    alice = unix_users["ds01ta"]
    forget(mlflow_server, alice.name)
    result = as_user(alice, user_cli, api_sock, "mlflow", "status", "--json")
    assert result.returncode == 0, result
    data = json.loads(result.stdout)
    assert data["server"] == "up" and data["url"] == mlflow_server.url
    assert (data["user"], data["account"], data["credentials_file"]) == (alice.name, False, None)
    assert "ds01 admin mlflow sync --user ds01ta" in data["advice"]
    text = as_user(alice, user_cli, api_sock, "mlflow", "status")
    assert "your account:     ds01ta: none yet" in text.stdout
    assert_clean(text)


def test_status_counts_what_mlflow_lets_the_user_see(
    mlflow_server: MlflowServer, api_sock: str, unix_users, user_cli
) -> None:
    alice = unix_users["ds01ta"]
    mine = credentials(mlflow_server, alice.name)
    with mlflow_server.admin() as admin:
        experiment = ensure_experiment(
            config_of(mlflow_server), admin, alice.name, f"ds01ta/status-{secrets.token_hex(3)}"
        )
    with mlflow_server.as_user(alice.name, mine.password) as client:
        create_run(client, experiment)
        create_run(client, experiment)
        seen = client.search_experiments()
        runs = len(client.search_runs([e.experiment_id for e in seen]))
    result = as_user(alice, user_cli, api_sock, "mlflow", "status", "--json")
    assert result.returncode == 0, result
    data = json.loads(result.stdout)
    assert data["account"] is True and data["credentials_accepted"] is True
    assert data["credentials_file"].endswith("/ds01ta/credentials")
    assert (data["experiments"], data["runs"]) == (len(seen), runs)
    assert runs >= 2
    assert_clean(result, mine.password)
    # bob's status is what MLflow lets bob see, and alice's experiment is not in it
    bob = unix_users["ds01tb"]
    with mlflow_server.as_user(bob.name, credentials(mlflow_server, bob.name).password) as client:
        bobs = client.search_experiments()
    assert experiment not in [e.experiment_id for e in bobs]
    theirs = json.loads(as_user(bob, user_cli, api_sock, "mlflow", "status", "--json").stdout)
    assert theirs["experiments"] == len(bobs)


def test_refused_credentials_are_one_line(
    mlflow_server: MlflowServer, api_sock: str, unix_users, user_cli
) -> None:
    alice = unix_users["ds01ta"]
    credentials(mlflow_server, alice.name)
    with mlflow_server.admin() as admin:
        admin.update_password(alice.name, "changed-elsewhere-" + secrets.token_hex(4))
    try:
        result = as_user(alice, user_cli, api_sock, "mlflow", "status")
    finally:
        credentials(mlflow_server, alice.name)  # renewed for the other tests
    assert result.returncode == 1, result
    assert result.stderr.startswith("Error: the server refuses the credentials in your file")
    assert_clean(result)


def test_a_server_that_is_down_is_one_line_with_what_to_do(tmp_path) -> None:
    password = tmp_path / "pw"
    password.write_text("x" * 20)
    password.chmod(0o600)
    host = bridge_address()
    config = write_config(
        tmp_path,
        {
            "plugins": {
                "mlflow": {
                    "url": f"http://{host}:{free_port(host)}",
                    "admin_password_file": str(password),
                    "credentials_dir": str(tmp_path / "users"),
                }
            }
        },
    )
    for args in (("mlflow", "status"), ("mlflow", "share", "x", "ds01tb")):
        result = as_root(config, *args)
        assert result.returncode == 1, result
        assert result.stderr.count("\n") == 1 and "does not answer" in result.stderr
        assert "systemctl status ds01-mlflow" in result.stderr
        assert_clean(result, "x" * 20)
