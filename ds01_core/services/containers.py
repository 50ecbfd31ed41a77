"""The caller's containers: create, start, stop, remove, list, stats, logs, exec, keep-alive.

Thin on purpose: the rules live in :class:`ds01_core.services.user_containers.ContainerService` (one
admission path for every transport); this module decides *whose* containers an operation acts
on and turns failures into service errors.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterator
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from ds01_core.cycle.detection.inventory import workload_json
from ds01_core.domain.docker_engine import DockerError
from ds01_core.domain.model import Event, utc_text
from ds01_core.domain.state.grants import add_grant
from ds01_core.domain.units import Duration
from ds01_core.services.errors import Conflict, Invalid, NotFound, ServiceError, Unavailable
from ds01_core.services.operations import Operation, Param, ServiceContext
from ds01_core.services.user_containers import (
    ContainerError,
    ContainerNotFound,
    ContainerService,
    Created,
    CreateRequest,
    parse_filter,
)
from ds01_core.services.workloads import slot_names, with_slot_ids

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def service_errors(fn: F) -> F:
    """ds01's and Docker's failures as service errors (one clear line for the caller)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ServiceError:
            raise
        except ContainerNotFound as exc:  # 404, as for any object the caller cannot see
            raise NotFound(str(exc)) from None
        except ContainerError as exc:
            raise Conflict(str(exc)) from None
        except DockerError as exc:
            if exc.status is None:
                raise Unavailable(f"cannot reach Docker: {exc}") from None
            raise Conflict(f"Docker: {exc}") from None

    return wrapper  # type: ignore[return-value]


def _service(ctx: ServiceContext, user: str | None) -> ContainerService:
    return ContainerService(ctx.runtime, ctx.target_user(user, "another user's containers"))


@service_errors
def list_containers(ctx: ServiceContext, all: bool = False, user: str | None = None) -> Any:
    svc = _service(ctx, user)
    items = sorted((w for w in svc.mine() if all or w.status == "running"), key=lambda w: w.name)
    slots = slot_names(ctx)
    return [with_slot_ids(workload_json(w), slots) for w in items]


@service_errors
def create(
    ctx: ServiceContext,
    name: str,
    image: str,
    gpus: int | None = None,
    mig: str | None = None,
    full_gpu: bool = False,
    cpu_only: bool = False,
    min_memory: int | None = None,
    workspace: str | None = None,
    project: str | None = None,
    command: list[str] | None = None,
    wait: float | None = None,
    user: str | None = None,
    env: list[str] | None = None,
) -> dict[str, Any]:
    if sum([bool(gpus), bool(mig), full_gpu, cpu_only]) > 1:
        raise Invalid("choose one of --gpus, --mig, --full-gpu, --cpu-only")
    if gpus is not None and gpus < 1:
        raise Invalid(f"--gpus must be at least 1, got {gpus}")
    if workspace is not None and not os.path.isabs(workspace):
        raise Invalid(f"workspace {workspace!r} must be an absolute path")
    if wait is not None and wait < 0:
        raise Invalid("--wait must not be negative")
    for entry in env or []:
        key, sep, _ = str(entry).partition("=")
        if not sep or not _ENV_KEY.match(key):
            raise Invalid(f"environment entry {entry!r}: write it as KEY=VALUE")
        if key == "NVIDIA_VISIBLE_DEVICES":
            raise Invalid("NVIDIA_VISIBLE_DEVICES is set by ds01: ask for GPUs with --gpus/--mig")
    svc = _service(ctx, user)
    created = svc.create(
        CreateRequest(
            name=name,
            image=image,
            gpus=gpus,
            mig=mig,
            full_gpu=full_gpu,
            cpu_only=cpu_only,
            min_memory=min_memory,
            workspace=workspace,
            project=project,
            command=tuple(command or ()),
            wait=wait,
            env=tuple(str(e) for e in env or ()),
        )
    )
    return _created_json(created, svc.user)


def _created_json(created: Created, user: str) -> dict[str, Any]:
    return {
        "id": created.id,
        "name": created.name,
        "user": user,
        "slots": created.slots,
        "uuids": created.uuids,
        "warning": created.warning,
        "device_requests": created.device_requests,
    }


@service_errors
def create_for(runtime: Runtime, user: str, **fields: Any) -> dict[str, Any]:
    """A service's container for ``user`` (:func:`ds01_core.api.create_container`): the same
    checks and admission as ``containers.create``, with the service's own labels, environment
    and, when it chose them, exact GPU slots."""
    svc = ContainerService(runtime, user)
    return _created_json(svc.create(CreateRequest(batch=True, **fields)), user)


@service_errors
def start(ctx: ServiceContext, name: str, user: str | None = None) -> dict[str, Any]:
    workload = _service(ctx, user).start(name)
    return {"name": workload.name, "id": workload.id}


@service_errors
def stop(
    ctx: ServiceContext, name: str, grace: float | None = None, user: str | None = None
) -> dict[str, Any]:
    if grace is not None and grace < 0:
        raise Invalid("the grace before SIGKILL must not be negative")
    workload = _service(ctx, user).stop(name, grace)
    hold = ctx.runtime.config.allocation.gpu_hold_after_stop
    return {
        "name": workload.name,
        "id": workload.id,
        "gpu_held_for": str(hold) if workload.gpu_slots else None,
    }


@service_errors
def remove(
    ctx: ServiceContext, name: str, force: bool = False, user: str | None = None
) -> dict[str, Any]:
    workload = _service(ctx, user).remove(name, force)
    return {"name": workload.name, "id": workload.id}


@service_errors
def stats(ctx: ServiceContext, filter: list[str] | None = None, user: str | None = None) -> Any:
    filters = list(filter or [])
    for text in filters:
        try:
            parse_filter(text)
        except ContainerError as exc:
            raise Invalid(str(exc)) from None
    return _service(ctx, user).stats(filters)


@service_errors
def logs(
    ctx: ServiceContext,
    name: str,
    follow: bool = False,
    tail: str = "all",
    user: str | None = None,
) -> Iterator[bytes]:
    if tail != "all" and not tail.isdigit():
        raise Invalid(f"--tail must be a number of lines or 'all', got {tail!r}")
    return iter(_service(ctx, user).logs(name, follow=follow, tail=tail))


@service_errors
def exec_(
    ctx: ServiceContext, name: str, command: list[str], user: str | None = None
) -> dict[str, Any]:
    if not command:
        raise Invalid("give the command to run")
    code, output = _service(ctx, user).exec(name, command)
    return {"exit_code": code, "output": output}


@service_errors
def keepalive(
    ctx: ServiceContext, name: str, seconds: float = 7200.0, user: str | None = None
) -> dict[str, Any]:
    """Keep one of the caller's containers from being stopped for idleness, for a while."""
    svc = _service(ctx, user)
    workload = svc.find(name)
    runtime = ctx.runtime
    cap = float(runtime.config.lifecycle.keepalive_max)
    if seconds <= 0:
        raise Invalid("--for must be longer than 0s")
    if seconds > cap:
        raise Invalid(f"--for {Duration(seconds)} is longer than keepalive_max ({Duration(cap)})")
    now = runtime.now()
    until = now + dt.timedelta(seconds=seconds)
    with runtime.state.transaction() as db:
        grant = add_grant(
            db,
            "keepalive",
            svc.user,
            f"container:{workload.id}",
            until,
            "keepalive",
            ctx.caller.name,
            now,
        )
    runtime.events.append(
        Event(
            "lifecycle.keepalive",
            svc.user,
            "cli",
            {
                "container": workload.name,
                "container_id": workload.id,
                "until": utc_text(until),
                "grant": grant,
                "by": ctx.caller.name,
            },
        )
    )
    return {"container": workload.name, "id": workload.id, "until": until, "grant": grant}


_USER = Param("user")
_NAME = Param("name", required=True)

OPERATIONS = (
    Operation(
        "containers.list",
        "GET",
        "/v1/containers",
        list_containers,
        (Param("all", "bool", default=False), _USER),
        summary="Your containers.",
    ),
    Operation(
        "containers.create",
        "POST",
        "/v1/containers",
        create,
        (
            _NAME,
            Param("image", required=True),
            Param("gpus", "int"),
            Param("mig"),
            Param("full_gpu", "bool", default=False),
            Param("cpu_only", "bool", default=False),
            Param("min_memory", "int"),
            Param("workspace"),
            Param("project"),
            Param("command", "list"),
            Param("wait", "float"),
            _USER,
            Param("env", "list"),
        ),
        summary="Create a container with GPU slots allocated to you.",
    ),
    Operation("containers.start", "POST", "/v1/containers/{name}/start", start, (_NAME, _USER)),
    Operation(
        "containers.stop",
        "POST",
        "/v1/containers/{name}/stop",
        stop,
        (_NAME, Param("grace", "float"), _USER),
    ),
    Operation(
        "containers.remove",
        "DELETE",
        "/v1/containers/{name}",
        remove,
        (_NAME, Param("force", "bool", default=False), _USER),
    ),
    Operation(
        "containers.stats",
        "GET",
        "/v1/containers/stats",
        stats,
        (Param("filter", "list"), _USER),
    ),
    Operation(
        "containers.logs",
        "GET",
        "/v1/containers/{name}/logs",
        logs,
        (_NAME, Param("follow", "bool", default=False), Param("tail", default="all"), _USER),
        stream="bytes",
    ),
    Operation(
        "containers.exec",
        "POST",
        "/v1/containers/{name}/exec",
        exec_,
        (_NAME, Param("command", "list", required=True), _USER),
    ),
    Operation(
        "containers.keepalive",
        "POST",
        "/v1/containers/{name}/keepalive",
        keepalive,
        (_NAME, Param("seconds", "float", default=7200.0), _USER),
    ),
)
