"""Every new container wired to the tracking server (``prepare_container``, every create path).

For a container of ``alice`` (unless ``wire_containers`` is off, or its ``Env`` says
``DS01_MLFLOW=off``: ``--no-mlflow``, ``docker run -e DS01_MLFLOW=off``, the REST ``env``):

- her MLflow account and credential file exist (:func:`~ds01_mlflow.provision.ensure_user`),
  and the experiment ``alice/<project or container name>`` is hers;
- ``Env`` gets ``MLFLOW_TRACKING_URI`` and ``MLFLOW_EXPERIMENT_NAME`` (hers kept when she set
  one; an experiment named ``alice/…`` is then made hers as well);
- her credential directory is mounted read-only at ``<container HOME>/.mlflow``
  (:mod:`ds01_mlflow.home`), where MLflow reads ``~/.mlflow/credentials``: the password is in
  no environment variable, label or command, nothing ``docker inspect`` shows;
- labels record it: ``ds01.mlflow.experiment`` (what ds01d attaches GPU metrics by),
  ``ds01.mlflow`` (``wired``, ``off``, or why not).

The mount is added to the body after the gateway's create policy judged the user's own mounts
(admission runs ``prepare_container`` after it), and the ``ds01.user`` label decides the owner
before any bind mount is looked at, so ds01's own mount neither trips the policy nor confuses
ownership.

Nothing happens on a host where the server is not set up (no admin password file). Never
does tracking stop a create: when the server is down (or the admin password unreadable)
the container is created unwired, with a warning in the log and an ``mlflow.unwired`` audit
event; ``alice/<project>`` taken by another account (someone made it first, to read what she
logs) gives her ``alice/<project>.<6 hex>`` instead (event ``mlflow.experiment_taken``). A
``MLFLOW_TRACKING_URI`` of her own that is not ds01's server leaves the container unwired: her
ds01 password must not be sent to another server.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ds01_core.api import DockerError, Event, Refusal
from ds01_mlflow.client import MlflowError
from ds01_mlflow.config import MlflowConfig
from ds01_mlflow.home import container_home, env_value
from ds01_mlflow.provision import (
    ExperimentTaken,
    ProvisionError,
    admin_client,
    ensure_experiment,
    ensure_user,
    is_group_admin,
    mlflow_config,
    store,
)

if TYPE_CHECKING:
    from ds01_core.api import ContainerSpec, Runtime

log = logging.getLogger(__name__)

#: the switch, in the create body's Env (``--no-mlflow`` sets it to ``off``)
SWITCH = "DS01_MLFLOW"
OFF = ("off", "0", "false", "no")
STATE_LABEL = "ds01.mlflow"
EXPERIMENT_LABEL = "ds01.mlflow.experiment"
PROJECT_LABELS = ("ds01.project", "com.docker.compose.project")


def experiment_label(spec: ContainerSpec) -> str:
    """What names the container's experiment: its project, else its name."""
    labels = spec.body.get("Labels") or {}
    for key in PROJECT_LABELS:
        value = str(labels.get(key) or "").strip()
        if value:
            return value
    return (spec.name or "").strip() or "default"


def prepare(runtime: Runtime, spec: ContainerSpec) -> Refusal | None:
    """The ``prepare_container`` hook: wire the container, or record why not. Never refuses."""
    config = mlflow_config(runtime)
    if not config.wire_containers or not set_up(config):
        return None
    body = spec.body
    labels: dict[str, str] = body.setdefault("Labels", {})
    env: list[str] = body.setdefault("Env", [])
    switch = (env_value(env, SWITCH) or "").strip().lower()
    if switch in OFF:
        labels[STATE_LABEL] = "off"
        return None
    own_uri = env_value(env, "MLFLOW_TRACKING_URI")
    if own_uri and own_uri.rstrip("/") != config.tracking_uri().rstrip("/"):
        labels[STATE_LABEL] = "own-server"
        return None
    own_name = env_value(env, "MLFLOW_EXPERIMENT_NAME")
    wanted = own_name or f"{spec.user}/{experiment_label(spec)}"
    try:
        experiment = _provision(runtime, config, spec, wanted, own=own_name is not None)
    except (MlflowError, ProvisionError, OSError) as exc:
        _unwired(runtime, spec, labels, str(exc))
        return None
    if experiment is None:
        _unwired(runtime, spec, labels, f"no experiment of {spec.user}'s could be made")
        return None
    try:
        image = runtime.docker.inspect_image(str(body.get("Image") or ""))
    except DockerError:
        image = None
    home = container_home(body, image)
    target = home.rstrip("/") + "/.mlflow"
    host = body.setdefault("HostConfig", {})
    if not _mounted_at(host, target):
        host["Binds"] = [
            *(host.get("Binds") or []),
            f"{store(config).directory(spec.user)}:{target}:ro",
        ]
    if not own_uri:
        env.append(f"MLFLOW_TRACKING_URI={config.tracking_uri()}")
    if not own_name:
        env.append(f"MLFLOW_EXPERIMENT_NAME={experiment}")
    labels[STATE_LABEL] = "wired"
    labels[EXPERIMENT_LABEL] = experiment
    return None


def set_up(config: MlflowConfig) -> bool:
    """The server is set up here: its admin password file exists (a host with the plugin
    installed and no server gets no wiring, and no warning on every create)."""
    return os.path.lexists(config.admin_password_file)


def _provision(
    runtime: Runtime, config: MlflowConfig, spec: ContainerSpec, wanted: str, *, own: bool
) -> str | None:
    """The user's account, and the experiment name the container gets (made theirs). A name
    of the user's own outside ``<user>/`` is left to MLflow's rules (its creator owns it)."""
    with admin_client(config) as admin:
        ensure_user(
            config,
            admin,
            spec.user,
            is_admin=is_group_admin(spec.user, runtime.config.gateway.admin_group),
        )
        if own and not wanted.startswith(f"{spec.user}/"):
            return wanted
        candidates = [wanted] if own else [wanted, f"{wanted}.{secrets.token_hex(3)}"]
        for name in candidates:
            try:
                ensure_experiment(config, admin, spec.user, name)
            except ExperimentTaken as exc:
                log.warning("mlflow: %s: %s", spec.user, exc)
                runtime.events.append(
                    Event(
                        "mlflow.experiment_taken",
                        spec.user,
                        "mlflow",
                        {"experiment": name, "container": spec.name or ""},
                    )
                )
                continue
            return name
    return None


def _unwired(runtime: Runtime, spec: ContainerSpec, labels: dict[str, str], reason: str) -> None:
    log.warning("mlflow: %s's container %s created unwired: %s", spec.user, spec.name, reason)
    labels[STATE_LABEL] = "unwired"
    runtime.events.append(
        Event(
            "mlflow.unwired",
            spec.user,
            "mlflow",
            {"container": spec.name or "", "reason": reason[:300]},
        )
    )


def _mounted_at(host: Mapping[str, Any], target: str) -> bool:
    """Something (the user's own) is mounted at ``target`` already."""
    for bind in host.get("Binds") or []:
        parts = str(bind).split(":")
        if len(parts) >= 2 and parts[1].rstrip("/") == target:
            return True
    return any(
        str(m.get("Target") or "").rstrip("/") == target
        for m in host.get("Mounts") or []
        if isinstance(m, Mapping)
    )
