"""``ds01 admin mlflow sync`` against the real MLflow server: refused for a plain user, run by a
member of the admin group through ``ds01-api`` and by root in-process; accounts made, MLflow's
admin flag following the admin group, ``--rotate`` and ``--dry-run``, no password printed."""

from __future__ import annotations

import json

import pytest

from ds01_mlflow.client import MlflowError
from ds01_mlflow.credentials import CredentialStore
from tests.plugins.mlflow.mlflow_cli import (
    api_sock,
    as_root,
    as_user,
    assert_clean,
    config_of,
    credentials,
    forget,
)
from tests.plugins.mlflow.mlflow_env import MlflowServer

pytestmark = pytest.mark.integration
__all__ = ["api_sock"]


def test_a_plain_user_is_refused(
    mlflow_server: MlflowServer, api_sock: str, unix_users, user_cli
) -> None:
    for args in ((), ("--dry-run",), ("--user", "ds01ta", "--rotate")):
        result = as_user(unix_users["ds01ta"], user_cli, api_sock, "admin", "mlflow", "sync", *args)
        assert result.returncode == 2, result
        assert result.stderr == (
            "Error: this is an admin operation; ds01ta is not in the admin group (ds01-admin)\n"
        )


def test_an_admin_group_member_syncs_one_user(
    mlflow_server: MlflowServer, api_sock: str, unix_users, admin_member, user_cli
) -> None:
    forget(mlflow_server, "ds01tb")
    result = as_user(
        admin_member, user_cli, api_sock, "admin", "mlflow", "sync", "--user", "ds01tb", "--json"
    )
    assert result.returncode == 0, result
    [row] = json.loads(result.stdout)["users"]
    assert (row["user"], row["admin"], row["done"]) == ("ds01tb", False, ["account created"])
    made = CredentialStore(config_of(mlflow_server).credentials_dir).read("ds01tb")
    assert made is not None
    with mlflow_server.as_user("ds01tb", made.password) as client:
        client.search_experiments()  # the file's password is the server's
    with mlflow_server.admin() as admin:
        assert admin.get_user("ds01tb")["is_admin"] is False
    assert_clean(result, made.password)
    again = as_user(admin_member, user_cli, api_sock, "admin", "mlflow", "sync", "--user", "ds01tb")
    assert "ds01tb  no     up to date" in again.stdout
    assert "0 of 1 account(s) changed" in again.stdout


def test_root_syncs_everyone_admin_flags_from_the_group(
    mlflow_server: MlflowServer, unix_users, admin_member
) -> None:
    config = mlflow_server.config_path
    for name in ("ds01ta", "ds01tb"):
        credentials(mlflow_server, name)
    with mlflow_server.admin() as admin:
        admin.update_admin("ds01tb", True)  # not in the admin group: loses it
    dry = as_root(config, "admin", "mlflow", "sync", "--dry-run", "--json")
    assert dry.returncode == 0, dry
    rows = {r["user"]: r for r in json.loads(dry.stdout)["users"]}
    assert {"ds01ta", "ds01tb", "ds01tc"} <= set(rows)  # the files' users, the admin group's
    assert rows["ds01tb"]["done"] == ["MLflow admin taken away"]
    assert rows["ds01tc"]["admin"] is True
    with mlflow_server.admin() as admin:
        assert admin.get_user("ds01tb")["is_admin"] is True  # a dry run changes nothing

    done = as_root(config, "admin", "mlflow", "sync", "--json")
    assert done.returncode == 0, done
    rows = {r["user"]: r for r in json.loads(done.stdout)["users"]}
    with mlflow_server.admin() as admin:
        assert admin.get_user("ds01tb")["is_admin"] is False
        assert admin.get_user("ds01tc")["is_admin"] is True
        assert admin.get_user("ds01ta")["is_admin"] is False
    with mlflow_server.admin() as admin:
        if admin.get_experiment_by_name("ds01ta/sync-seen") is None:
            admin.create_experiment("ds01ta/sync-seen")
    tc = credentials(mlflow_server, "ds01tc")
    with mlflow_server.as_user("ds01tc", tc.password) as client:  # an admin sees everything
        assert client.get_experiment_by_name("ds01ta/sync-seen") is not None


def test_rotate_gives_new_passwords_and_the_old_ones_stop_working(
    mlflow_server: MlflowServer,
) -> None:
    before = credentials(mlflow_server, "ds01ta")
    result = as_root(
        mlflow_server.config_path, "admin", "mlflow", "sync", "--user", "ds01ta", "--rotate"
    )
    assert result.returncode == 0, result
    assert "password rotated" in result.stdout
    after = CredentialStore(config_of(mlflow_server).credentials_dir).read("ds01ta")
    assert after is not None and after.password != before.password
    assert_clean(result, before.password, after.password)
    with mlflow_server.as_user("ds01ta", after.password) as client:
        client.search_experiments()
    old = mlflow_server.as_user("ds01ta", before.password)
    with old, pytest.raises(MlflowError) as refused:
        old.search_experiments()
    assert refused.value.status == 401


def test_an_unknown_user_is_refused_in_one_line(mlflow_server: MlflowServer) -> None:
    result = as_root(mlflow_server.config_path, "admin", "mlflow", "sync", "--user", "nosuchuser9")
    assert result.returncode == 2, result
    assert result.stderr == "Error: 'nosuchuser9' is not a user of this server (getent passwd)\n"
