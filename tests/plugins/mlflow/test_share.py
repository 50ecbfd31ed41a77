"""``ds01 mlflow share|unshare`` between real users through ``ds01-api``, proven by what the
other user can then read and write through the real MLflow server: only an experiment's
manager shares it, its owner keeps it, and the audit log says who shared what (no password)."""

from __future__ import annotations

import secrets

import pytest

from ds01_core.api import load_runtime
from ds01_mlflow.client import MlflowError
from ds01_mlflow.provision import ensure_experiment
from tests.plugins.mlflow.mlflow_cli import (
    api_sock,
    as_user,
    assert_clean,
    config_of,
    create_run,
    credentials,
)
from tests.plugins.mlflow.mlflow_env import MlflowServer

pytestmark = pytest.mark.integration
__all__ = ["api_sock"]


def can_read(server: MlflowServer, user: str, name: str) -> bool:
    with server.as_user(user, credentials(server, user).password) as client:
        try:
            client.get_experiment_by_name(name)
        except MlflowError as exc:
            assert exc.status == 403, exc
            return False
    return True


def can_write(server: MlflowServer, user: str, experiment_id: str) -> bool:
    with server.as_user(user, credentials(server, user).password) as client:
        try:
            run = create_run(client, experiment_id)
            client.log_batch(run, {"loss": 0.5})
        except MlflowError as exc:
            assert exc.status == 403, exc
            return False
    return True


def test_share_and_unshare_change_what_the_other_user_can_do(
    mlflow_server: MlflowServer, api_sock: str, unix_users, user_cli
) -> None:
    alice, bob, carol = (unix_users[n] for n in ("ds01ta", "ds01tb", "ds01tc"))
    short = f"share-{secrets.token_hex(3)}"
    name = f"ds01ta/{short}"
    mine = credentials(mlflow_server, alice.name)
    credentials(mlflow_server, bob.name)
    with mlflow_server.admin() as admin:
        experiment = ensure_experiment(config_of(mlflow_server), admin, alice.name, name)
    assert not can_read(mlflow_server, bob.name, name)

    shared = as_user(alice, user_cli, api_sock, "mlflow", "share", short, "ds01tb")  # READ
    assert shared.returncode == 0, shared
    assert shared.stdout == f"shared {name} (id {experiment}) with ds01tb: READ\n"
    assert can_read(mlflow_server, bob.name, name)
    assert not can_write(mlflow_server, bob.name, experiment)

    edit = as_user(
        alice, user_cli, api_sock, "mlflow", "share", experiment, "ds01tb", "--permission", "edit"
    )
    assert edit.returncode == 0, edit
    assert "EDIT (was READ)" in edit.stdout
    assert can_write(mlflow_server, bob.name, experiment)

    # bob may write, but does not manage it: he cannot share it on, nor take alice's away
    for args in (("share", experiment, "ds01tc"), ("unshare", experiment, "ds01ta")):
        refused = as_user(bob, user_cli, api_sock, "mlflow", *args)
        assert refused.returncode == 1, refused
        assert refused.stderr.startswith(f"Error: you manage no MLflow experiment '{experiment}'")
        assert_clean(refused)
    with mlflow_server.admin() as admin:
        assert admin.permission(carol.name, experiment) is None
        assert admin.permission(alice.name, experiment) == "MANAGE"

    gone = as_user(alice, user_cli, api_sock, "mlflow", "unshare", name, "ds01tb")
    assert gone.returncode == 0, gone
    assert gone.stdout == f"unshared {name} from ds01tb (had EDIT)\n"
    assert not can_read(mlflow_server, bob.name, name)
    again = as_user(alice, user_cli, api_sock, "mlflow", "unshare", name, "ds01tb")
    assert "had no permission" in again.stdout

    runtime = load_runtime(str(mlflow_server.config_path))
    try:
        log = runtime.config.paths.event_log_path
        records = [r for r in runtime.events.read() if r["event_type"].startswith("mlflow.")]
    finally:
        runtime.close()
    mine_events = [
        (r["event_type"], r["user"], r["details"]["target"], r["details"].get("permission"))
        for r in records
        if r["details"].get("experiment_id") == experiment
    ]
    assert mine_events == [
        ("mlflow.shared", "ds01ta", "ds01tb", "READ"),
        ("mlflow.shared", "ds01ta", "ds01tb", "EDIT"),
        ("mlflow.unshared", "ds01ta", "ds01tb", None),
    ]
    text = log.read_text()
    assert mine.password not in text and credentials(mlflow_server, bob.name).password not in text


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("share", "x", "nosuchuser9"), 2, "'nosuchuser9' is not a user of this server"),
        (("share", "x", "ds01ta"), 2, "you cannot share an experiment with yourself"),
        (("share", "ds01tb/nothing-here", "ds01tb"), 1, "you manage no MLflow experiment"),
        (("share", "x", "ds01tb", "--permission", "ALL"), 2, "Invalid value for '--permission'"),
    ],
)
def test_bad_requests_are_one_line(
    mlflow_server: MlflowServer, api_sock: str, unix_users, user_cli, args, code, message
) -> None:
    result = as_user(unix_users["ds01ta"], user_cli, api_sock, "mlflow", *args)
    assert result.returncode == code, result
    assert message in result.stderr
    assert_clean(result)
