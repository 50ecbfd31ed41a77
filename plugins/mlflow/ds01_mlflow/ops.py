"""The user operations ``mlflow.status``, ``mlflow.share`` and ``mlflow.unshare``.

They run in the root service (``ds01-api``, or in-process for root): a user's status is asked
of the MLflow server *as that user*, with the credentials in their file, so the counts are
what MLflow itself lets them see. Sharing is MLflow's own permissions, changed by ds01's admin
account only after the server says the caller holds ``MANAGE`` on the experiment (or the
caller is a ds01 admin). No answer, event or error carries a password.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ds01_core.api import (
    Event,
    Invalid,
    NotFound,
    Operation,
    Param,
    ServiceContext,
    Unavailable,
    normalize_username,
    uid_for_username,
)
from ds01_mlflow.client import Experiment, MlflowClient, MlflowError
from ds01_mlflow.config import PERMISSIONS, MlflowConfig
from ds01_mlflow.provision import (
    ProvisionError,
    admin_client,
    ensure_user,
    experiment_owner,
    mlflow_config,
    store,
)

#: what an admin does when the server does not answer
SERVER_HINT = "an admin can check it with: systemctl status ds01-mlflow (docs/mlflow-admin.md)"
#: how many experiments one runs/search asks about
RUN_BATCH = 100


def not_set_up(config: MlflowConfig) -> str | None:
    """Why MLflow is not set up on this server (no admin password file), or None."""
    if Path(config.admin_password_file).exists():
        return None
    return (
        "MLflow is not set up on this server (no admin password file "
        f"{config.admin_password_file}, plugins.mlflow.admin_password_file); "
        "docs/mlflow-admin.md says how to set it up"
    )


def require_set_up(config: MlflowConfig) -> None:
    """Refuse at once, in one line, where MLflow is not set up."""
    reason = not_set_up(config)
    if reason is not None:
        raise Unavailable(reason)


def server_down(config: MlflowConfig) -> str:
    return f"the MLflow server at {config.url} does not answer" + (
        f" — {reason}" if (reason := not_set_up(config)) else f"; {SERVER_HINT}"
    )


@contextlib.contextmanager
def as_service_errors(config: MlflowConfig) -> Iterator[None]:
    """MLflow's and provisioning's failures as the service errors users see (one line each)."""
    try:
        yield
    except ProvisionError as exc:
        raise Unavailable(not_set_up(config) or str(exc)) from None
    except MlflowError as exc:
        if exc.status == 0:  # unreachable
            raise Unavailable(server_down(config)) from None
        if exc.status == 401:
            raise Unavailable(
                f"the MLflow server refused ds01's admin account {config.admin_username!r}: "
                f"the password in {config.admin_password_file} is not the server's; restart "
                "ds01-mlflow after changing it (it sets the admin password at start)"
            ) from None
        raise Unavailable(f"the MLflow server refused the request: {exc}") from None


def _count_runs(client: MlflowClient, experiments: list[Experiment]) -> int:
    ids = [e.experiment_id for e in experiments]
    return sum(
        len(client.search_runs(ids[i : i + RUN_BATCH])) for i in range(0, len(ids), RUN_BATCH)
    )


def status(ctx: ServiceContext) -> dict[str, Any]:
    """The server (up?), the URL to open, the caller's account, credential file and what they
    can see: experiments and runs counted by MLflow for their own account."""
    config = mlflow_config(ctx.runtime)
    user = ctx.caller.name
    with MlflowClient(config.url, timeout=float(config.timeout)) as probe:
        if not probe.health():
            raise Unavailable(server_down(config))
    path = store(config).path(user)
    found: dict[str, Any] = {
        "server": "up",
        "url": config.url,
        "container_url": config.tracking_uri(),
        "user": user,
        "account": False,
        "credentials_file": None,
        "credentials_accepted": None,
        "experiments": None,
        "runs": None,
        "advice": None,
    }
    credentials = store(config).read(user)
    if credentials is None:
        found["advice"] = (
            "you have no MLflow account yet: you get one with your next container "
            "(ds01 container create), or ask an admin (ds01 admin mlflow sync --user "
            f"{user})"
        )
        with contextlib.suppress(ProvisionError, MlflowError), admin_client(config) as admin:
            found["account"] = admin.get_user(user) is not None
        return found
    found.update(account=True, credentials_file=str(path))
    with (
        MlflowClient(
            config.url, credentials.username, credentials.password, timeout=float(config.timeout)
        ) as client,
        as_service_errors(config),
    ):
        try:
            experiments = client.search_experiments()
        except MlflowError as exc:
            if exc.status != 401:
                raise
            found["credentials_accepted"] = False
            found["advice"] = (
                "the server refuses the credentials in your file: they are renewed with your "
                f"next container, or by an admin (ds01 admin mlflow sync --user {user})"
            )
            return found
        found.update(
            credentials_accepted=True,
            experiments=len(experiments),
            runs=_count_runs(client, experiments),
        )
    return found


# -- sharing --------------------------------------------------------------------------------


def _permission(value: str) -> str:
    permission = value.strip().upper()
    if permission not in PERMISSIONS:
        raise Invalid(f"permission {value!r}: choose one of {', '.join(PERMISSIONS)}")
    return permission


def _local_user(name: str) -> str:
    user = normalize_username(name)
    if uid_for_username(user) is None:
        raise Invalid(f"{user!r} is not a user of this server; check the name (getent passwd)")
    return user


def _experiment(ctx: ServiceContext, admin: MlflowClient, given: str) -> Experiment:
    """EXP by id or name (``thesis`` is also tried as ``<caller>/thesis``), only when the caller
    manages it (or is a ds01 admin); the same refusal whether it exists or not."""
    caller = ctx.caller
    found: Experiment | None = None
    if given.isdigit():
        found = admin.get_experiment(given)
    if found is None:
        found = admin.get_experiment_by_name(given)
    if found is None and "/" not in given:
        found = admin.get_experiment_by_name(f"{caller.name}/{given}")
    if found is not None and (
        caller.admin or admin.permission(caller.name, found.experiment_id) == "MANAGE"
    ):
        return found
    raise NotFound(
        f"you manage no MLflow experiment {given!r} (by name or id): only an experiment's "
        "managers share it; `ds01 mlflow status` shows what you can see"
    )


def _record(ctx: ServiceContext, kind: str, **details: Any) -> None:
    ctx.runtime.events.append(
        Event(f"mlflow.{kind}", user=ctx.caller.name, source="ds01-mlflow", details=details)
    )


def share(
    ctx: ServiceContext, experiment: str, user: str, permission: str = "READ"
) -> dict[str, Any]:
    """Give USER ``permission`` on EXP (their MLflow account made if missing)."""
    config = mlflow_config(ctx.runtime)
    require_set_up(config)
    level = _permission(permission)
    target = _local_user(user)
    if target == ctx.caller.name:
        raise Invalid("you cannot share an experiment with yourself; name another user")
    with as_service_errors(config), admin_client(config) as admin:
        found = _experiment(ctx, admin, experiment)
        if target == experiment_owner(config, found.experiment_id):
            raise Invalid(f"{target} owns {found.name!r}; their MANAGE stays")
        ensure_user(config, admin, target)
        before = admin.permission(target, found.experiment_id)
        admin.grant(target, found.experiment_id, level)
    _record(
        ctx,
        "shared",
        experiment=found.name,
        experiment_id=found.experiment_id,
        target=target,
        permission=level,
        before=before,
    )
    return {
        "experiment": found.name,
        "experiment_id": found.experiment_id,
        "user": target,
        "permission": level,
        "before": before,
    }


def unshare(ctx: ServiceContext, experiment: str, user: str) -> dict[str, Any]:
    """Take USER's permission on EXP away (its owner's stays)."""
    config = mlflow_config(ctx.runtime)
    require_set_up(config)
    target = normalize_username(user)
    if target == ctx.caller.name:
        raise Invalid("you cannot unshare an experiment from yourself; name another user")
    with as_service_errors(config), admin_client(config) as admin:
        found = _experiment(ctx, admin, experiment)
        if target == experiment_owner(config, found.experiment_id):
            raise Invalid(f"{target} owns {found.name!r}; their MANAGE stays")
        before = admin.permission(target, found.experiment_id)
        if before is not None:
            admin.revoke(target, found.experiment_id)
    if before is not None:
        _record(
            ctx,
            "unshared",
            experiment=found.name,
            experiment_id=found.experiment_id,
            target=target,
            before=before,
        )
    return {
        "experiment": found.name,
        "experiment_id": found.experiment_id,
        "user": target,
        "removed": before,
    }


OPERATIONS = [
    Operation(
        "mlflow.status",
        "GET",
        "/v1/mlflow/status",
        status,
        summary="The MLflow server, its URL, your account and what you can see there.",
    ),
    Operation(
        "mlflow.share",
        "POST",
        "/v1/mlflow/share",
        share,
        params=(
            Param("experiment", required=True),
            Param("user", required=True),
            Param("permission", default="READ"),
        ),
        summary="Give a user READ, USE, EDIT or MANAGE on an MLflow experiment you manage.",
    ),
    Operation(
        "mlflow.unshare",
        "POST",
        "/v1/mlflow/unshare",
        unshare,
        params=(Param("experiment", required=True), Param("user", required=True)),
        summary="Take a user's permission on an MLflow experiment you manage away.",
    ),
]

__all__ = ["OPERATIONS", "as_service_errors", "not_set_up", "require_set_up", "server_down"]
