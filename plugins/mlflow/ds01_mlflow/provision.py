"""Provisioning: an MLflow account for each ds01 user, and experiments named after them kept theirs.

Everything here runs in a root service (``ds01-api``, the gateway, ``ds01d``) as MLflow's admin
account, whose password is in ``plugins.mlflow.admin_password_file``.

- :func:`ensure_user`: the user's account exists and their credential file holds its password
  (made on first need; a file whose password the server refuses is replaced by a new one).
- :func:`ensure_experiment`: the experiment ``<user>/<name>`` exists and is the user's. ds01
  makes it (as the admin) and gives the user ``MANAGE``; one made before by someone else is the
  user's only when no other account holds a permission on it (another user may have made
  ``alice/thesis`` first, to read what alice logs there): otherwise :class:`ExperimentTaken`.
  Experiments checked are remembered in a root-only file, so a create costs one lookup.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ds01_mlflow.client import MlflowClient, MlflowError
from ds01_mlflow.config import MlflowConfig
from ds01_mlflow.credentials import Credentials, CredentialStore, new_password

if TYPE_CHECKING:
    from ds01_core.api import Runtime

OWNED_DB = ".experiments.db"


class ProvisionError(Exception):
    """Provisioning failed; the message says why and what to do."""


class ExperimentTaken(ProvisionError):
    """``<user>/<name>`` exists and another account holds a permission on it."""


def mlflow_config(runtime: Runtime) -> MlflowConfig:
    """``plugins.mlflow``, or its defaults when the section is missing."""
    config = runtime.plugin_config("mlflow")
    return config if isinstance(config, MlflowConfig) else MlflowConfig()


def admin_password(config: MlflowConfig) -> str:
    path = Path(config.admin_password_file)
    try:
        password = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ProvisionError(
            f"cannot read the MLflow admin password from {path} ({exc.strerror}); "
            "write it there (mode 0600, root's) — see docs/mlflow-admin.md"
        ) from None
    if len(password) < 12:
        raise ProvisionError(f"the MLflow admin password in {path} is shorter than 12 characters")
    return password


def admin_client(config: MlflowConfig) -> MlflowClient:
    """A client as MLflow's admin account (close it when done)."""
    return MlflowClient(
        config.url, config.admin_username, admin_password(config), timeout=float(config.timeout)
    )


def store(config: MlflowConfig) -> CredentialStore:
    return CredentialStore(Path(config.credentials_dir))


def is_group_admin(user: str, group_name: str) -> bool:
    """As the core decides a caller is an admin: listed in the group, or it is their primary."""
    try:
        entry, group = pwd.getpwnam(user), grp.getgrnam(group_name)
    except KeyError:
        return False
    return entry.pw_uid != 0 and (user in group.gr_mem or entry.pw_gid == group.gr_gid)


def ensure_user(
    config: MlflowConfig, admin: MlflowClient, user: str, *, is_admin: bool = False
) -> Credentials:
    """The user's working credentials, making their account (or a new password) when needed.

    :param is_admin: the user is a ds01 admin: an account made now is an MLflow admin at once
        (admins see everything); ``ds01 admin mlflow sync`` keeps the flag in line later.
    """
    files = store(config)
    known = files.read(user)
    if known is not None and credentials_accepted(config, known):  # the account is there
        return known
    account = admin.get_user(user)
    credentials = Credentials(user, new_password())
    if account is None:
        try:
            admin.create_user(user, credentials.password)
        except MlflowError as exc:
            if exc.code != "RESOURCE_ALREADY_EXISTS":  # made meanwhile by another process
                raise
            admin.update_password(user, credentials.password)
        if is_admin:
            admin.update_admin(user, True)
    else:
        admin.update_password(user, credentials.password)
    try:
        files.write(credentials)
    except KeyError:
        raise ProvisionError(f"{user} is not a local account; no MLflow credentials made") from None
    return credentials


def credentials_accepted(config: MlflowConfig, credentials: Credentials) -> bool:
    """The server takes these credentials (one request as the user; not remembered: a
    password changed on the server applies at once)."""
    with MlflowClient(
        config.url, credentials.username, credentials.password, timeout=float(config.timeout)
    ) as client:
        return client.accepts_credentials()


def ensure_experiment(config: MlflowConfig, admin: MlflowClient, user: str, name: str) -> str:
    """The id of experiment ``name`` (``<user>/…``), made and given to ``user`` when missing."""
    with _owned(config) as owned:
        found = admin.get_experiment_by_name(name)
        if found is None:
            try:
                experiment_id = admin.create_experiment(name)
            except MlflowError as exc:
                if exc.code != "RESOURCE_ALREADY_EXISTS":
                    raise
                return ensure_experiment(config, admin, user, name)  # made meanwhile: check it
            admin.grant(user, experiment_id, "MANAGE")
            owned.execute("INSERT OR REPLACE INTO owned VALUES (?, ?)", (experiment_id, user))
            return experiment_id
        experiment_id = found.experiment_id
        row = owned.execute("SELECT user FROM owned WHERE id = ?", (experiment_id,)).fetchone()
        if row is not None and row[0] == user:
            if admin.permission(user, experiment_id) != "MANAGE":  # the account was made again
                admin.grant(user, experiment_id, "MANAGE")
            return experiment_id
        others = [
            other
            for other in store(config).users()
            if other != user and admin.permission(other, experiment_id) is not None
        ]
        if others or admin.permission(user, experiment_id) != "MANAGE":
            raise ExperimentTaken(
                f"the MLflow experiment {name!r} exists and is not yours alone; "
                "pick another experiment name (MLFLOW_EXPERIMENT_NAME) or ask an admin"
            )
        owned.execute("INSERT OR REPLACE INTO owned VALUES (?, ?)", (experiment_id, user))
        return experiment_id


def experiment_owner(config: MlflowConfig, experiment_id: str) -> str | None:
    """The user ds01 knows ``experiment_id`` to be made for (None: not one ds01 made)."""
    with _owned(config) as owned:
        row = owned.execute("SELECT user FROM owned WHERE id = ?", (experiment_id,)).fetchone()
    return str(row[0]) if row is not None else None


@contextlib.contextmanager
def _owned(config: MlflowConfig) -> Iterator[sqlite3.Connection]:
    """The experiments ds01 knows to be a user's (root-only, beside the credential files)."""
    root = Path(config.credentials_dir)
    store(config).make_dir(root)
    path = root / OWNED_DB
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
    db = sqlite3.connect(path, timeout=10)
    try:
        with db:
            db.execute("CREATE TABLE IF NOT EXISTS owned (id TEXT PRIMARY KEY, user TEXT NOT NULL)")
            yield db
    finally:
        db.close()
