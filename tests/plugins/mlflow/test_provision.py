"""Provisioning against a real MLflow server with basic-auth: each user's account and credential
file, experiments named after a user kept theirs, nothing of another user's readable."""

from __future__ import annotations

import os
import stat

import pytest

from ds01_mlflow.client import MlflowError
from ds01_mlflow.credentials import CredentialStore
from ds01_mlflow.provision import ExperimentTaken, ensure_experiment, ensure_user
from tests.plugins.mlflow.mlflow_cli import config_of
from tests.plugins.mlflow.mlflow_env import MlflowServer

pytestmark = pytest.mark.integration


def test_a_user_gets_an_account_and_a_file_only_they_can_read(
    mlflow_server: MlflowServer, unix_users
) -> None:
    config = config_of(mlflow_server)
    alice = unix_users["ds01ta"]
    with mlflow_server.admin() as admin:
        first = ensure_user(config, admin, alice.name)
        again = ensure_user(config, admin, alice.name)
    assert first == again  # kept while the server accepts it
    path = CredentialStore(config.credentials_dir).path(alice.name)
    info = os.stat(path)
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o400, alice.uid)
    parent = os.stat(path.parent)
    assert (stat.S_IMODE(parent.st_mode), parent.st_uid) == (0o711, 0)
    with mlflow_server.as_user(alice.name, first.password) as client:
        client.search_experiments()  # accepted
    wrong = mlflow_server.as_user(alice.name, "wrong-password-123")
    with wrong, pytest.raises(MlflowError) as refused:
        wrong.search_experiments()
    assert refused.value.status == 401


def test_a_password_the_server_refuses_is_replaced(mlflow_server: MlflowServer, unix_users) -> None:
    config = config_of(mlflow_server)
    alice = unix_users["ds01ta"].name
    with mlflow_server.admin() as admin:
        before = ensure_user(config, admin, alice)
        admin.update_password(alice, "changed-elsewhere-123")
        after = ensure_user(config, admin, alice)
    assert after.password != before.password
    assert CredentialStore(config.credentials_dir).read(alice) == after
    with mlflow_server.as_user(alice, after.password) as client:
        client.search_experiments()


def test_an_experiment_named_after_a_user_is_theirs_and_a_squatted_one_refused(
    mlflow_server: MlflowServer, unix_users
) -> None:
    config = config_of(mlflow_server)
    alice, bob = unix_users["ds01ta"].name, unix_users["ds01tb"].name
    with mlflow_server.admin() as admin:
        a = ensure_user(config, admin, alice)
        b = ensure_user(config, admin, bob)
        mine = ensure_experiment(config, admin, alice, f"{alice}/provision")
        assert ensure_experiment(config, admin, alice, f"{alice}/provision") == mine
        with mlflow_server.as_user(bob, b.password) as client:  # bob makes alice's name first
            squatted = client.create_experiment(f"{alice}/squatted")
            client.grant(alice, squatted, "MANAGE")
        with pytest.raises(ExperimentTaken, match="not yours alone"):
            ensure_experiment(config, admin, alice, f"{alice}/squatted")
    with mlflow_server.as_user(alice, a.password) as client:
        assert mine in [e.experiment_id for e in client.search_experiments()]
    with mlflow_server.as_user(bob, b.password) as client:
        assert mine not in [e.experiment_id for e in client.search_experiments()]
        with pytest.raises(MlflowError) as refused:
            client.get_experiment_by_name(f"{alice}/provision")
    assert refused.value.status == 403


def test_an_admin_made_an_account_at_first_need_sees_everything_at_once(
    mlflow_server: MlflowServer, unix_users
) -> None:
    """A ds01 admin's account made at their first container is an MLflow admin already (not
    only after the next ``ds01 admin mlflow sync``); a plain user's is not."""
    config = config_of(mlflow_server)
    admin_user, plain = unix_users["ds01tc"].name, unix_users["ds01ta"].name
    with mlflow_server.admin() as admin:
        if admin.get_user(admin_user) is not None:  # made anew here, whatever tests made before
            admin.delete_user(admin_user)
        CredentialStore(config.credentials_dir).remove(admin_user)
        ensure_user(config, admin, admin_user, is_admin=True)
        ensure_user(config, admin, plain)
        assert admin.get_user(admin_user)["is_admin"] is True
        assert admin.get_user(plain)["is_admin"] is False
        theirs = ensure_experiment(config, admin, plain, f"{plain}/seen-by-admins")
    made = CredentialStore(config.credentials_dir).read(admin_user)
    assert made is not None
    with mlflow_server.as_user(admin_user, made.password) as client:
        assert theirs in [e.experiment_id for e in client.search_experiments()]


def test_an_experiment_ds01_made_is_given_back_to_an_account_made_again(
    mlflow_server: MlflowServer, unix_users
) -> None:
    """An admin deleted and re-made an account (MLflow forgets its permissions): the
    experiments ds01 made for that user are theirs again at their next create."""
    config = config_of(mlflow_server)
    user = unix_users["ds01tb"].name
    with mlflow_server.admin() as admin:
        ensure_user(config, admin, user)
        experiment = ensure_experiment(config, admin, user, f"{user}/made-again")
        admin.delete_user(user)
        credentials = ensure_user(config, admin, user)
        assert admin.permission(user, experiment) is None  # MLflow forgot
        assert ensure_experiment(config, admin, user, f"{user}/made-again") == experiment
        assert admin.permission(user, experiment) == "MANAGE"
    with mlflow_server.as_user(user, credentials.password) as client:
        assert experiment in [e.experiment_id for e in client.search_experiments()]
