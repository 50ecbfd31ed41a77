"""The one way a container comes to exist, or to run again, with GPUs: ds01's admission.

Every transport — ``ds01 container create``, the Docker API gateway, the API socket, a web or
REST front end — builds a create body for its user and hands it to :func:`admit`, which runs
the same steps in the same order: allocate (waiting in the queue if asked) → give the container
exactly its slots → every plugin's ``prepare_container`` → create (the transport's own call to
the engine) → bind the allocation to the new container and write ``container.created_by_ds01``.
A refusal or a failure at any step releases what was allocated. A transport cannot skip or
reorder a step, so the CLI and the gateway can no longer drift apart.

Starting a stopped container again goes through :func:`readmit`: when its allocation was
released while it was stopped, it gets the same slots back if they are free and the user's
quota allows, and is refused otherwise — for ``docker start``/``restart`` and
``ds01 container start`` alike.

The steps that touch the runtime (state store, plugins) run through ``run``: in-process
callers pass :func:`in_process`; the gateway passes its runtime thread, so that only its own
engine call runs on the connection's thread.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ds01_core.domain.container_facts import (
    ALLOCATED_AT_LABEL,
    OWNER_LABEL,
    REQUEST_LABEL,
    SLOTS_LABEL,
    UUIDS_LABEL,
    classify_origin,
    container_name,
    gpu_access,
)
from ds01_core.domain.gpu.access import GpuUnavailableError
from ds01_core.domain.model import Allocation, ContainerSpec, Event, GpuRequest, utc_text
from ds01_core.domain.state.allocations import (
    AllocationRefused,
    Allocations,
    Granted,
    inventory_slots,
)
from ds01_core.domain.state.waiting_allocation import allocate_waiting
from ds01_core.framework.telemetry import ALLOCATION_SECONDS
from ds01_core.services.bare_metal_grants import gpu_group_id

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

CREATED_AT_LABEL = "ds01.created_at"
CREATED_EVENT = "container.created_by_ds01"

R = TypeVar("R")
#: ``run(fn, *args)`` calls ``fn(runtime, *args)`` where the runtime lives, and returns its result
Runner = Callable[..., Any]


class AdmissionRefused(Exception):
    """The container may not be created or started; the message says why and what to do."""


@attrs.frozen
class AdmissionRequest:
    """A container a transport wants created for ``user``.

    :param body: the Docker create body as the transport built it (its image, command, mounts,
        labels). Whatever GPU access it names (``NVIDIA_VISIBLE_DEVICES``, device requests) is
        replaced: the container gets exactly what ``gpu_request`` is granted, or none.
    :param source: who asked (``ds01``, ``gateway``, ``api``): the events' source.
    """

    user: str
    name: str | None
    body: Mapping[str, Any]
    gpu_request: GpuRequest | None = None
    wait: float | None = None
    nvidia_runtime: bool = False
    source: str = "ds01"


@attrs.frozen
class Prepared:
    """A create body ready for the engine, and what was allocated for it."""

    body: dict[str, Any]
    allocation_id: int | None
    slots: tuple[str, ...]
    uuids: tuple[str, ...]
    warning: str | None
    device_requests: bool


def in_process(runtime: Runtime) -> Runner:
    """The runner for a caller that owns ``runtime`` in its own thread."""
    return lambda fn, *args: fn(runtime, *args)


def admit(
    request: AdmissionRequest,
    create: Callable[[Prepared, Callable[[str], None]], R],
    *,
    run: Runner,
) -> R:
    """Admit one container: allocate → give GPUs → ``prepare_container`` → create → bind.

    ``create(prepared, created)`` sends ``prepared.body`` to the engine and calls
    ``created(container_id)`` as soon as the engine has made the container (before the client
    hears of it, so a ``start`` that follows at once finds the allocation bound); its result is
    returned. If it raises, or returns without calling ``created``, the allocation is released.

    :raises AdmissionRefused: an allocation or a plugin refused (nothing is left allocated).
    """
    prepared: Prepared = run(prepare, request)
    made: list[str] = []

    def created(container_id: str) -> None:
        made.append(container_id)  # first: the container exists whatever happens next
        run(record_created, request, prepared, container_id)

    try:
        result = create(prepared, created)
    except BaseException:
        if not made:
            run(abandon, prepared, "container create failed")
        raise
    if not made:
        run(abandon, prepared, "container create failed")
    return result


def prepare(runtime: Runtime, request: AdmissionRequest) -> Prepared:
    """Allocate, give the GPUs and let every plugin prepare (or refuse) the body."""
    body: dict[str, Any] = copy.deepcopy(dict(request.body))
    labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
    labels[OWNER_LABEL] = request.user
    labels[CREATED_AT_LABEL] = utc_text(runtime.now())
    env = [e for e in body.get("Env") or [] if not str(e).startswith("NVIDIA_VISIBLE_DEVICES=")]
    host: dict[str, Any] = dict(body.get("HostConfig") or {})
    host.pop("DeviceRequests", None)
    granted: Granted | None = None
    if request.gpu_request is not None:
        try:
            with ALLOCATION_SECONDS.time():  # the answer, granted or refused (for the exporter)
                granted = allocate_waiting(runtime, request.gpu_request, request.wait)
        except AllocationRefused as refused:
            raise AdmissionRefused(str(refused)) from None
    if request.gpu_request is not None:
        asked = request.gpu_request
        labels[REQUEST_LABEL] = json.dumps(
            {
                "count": asked.count,
                "mig": asked.mig_profile,
                "full_gpu": asked.full_gpu,
                "min_memory": asked.min_memory,
            }
        )
    allocation_id = granted.allocation.id if granted else None
    try:
        device_requests = granted is not None and request.nvidia_runtime
        give_gpus(runtime, granted, labels, env, host, nvidia_runtime=device_requests)
        body["Labels"], body["Env"], body["HostConfig"] = labels, env, host
        spec = ContainerSpec(
            user=request.user,
            name=request.name,
            body=body,
            origin=classify_origin(labels, request.name or ""),
            gpu_request=request.gpu_request,
        )
        refusal = runtime.hooks.prepare_container(runtime, spec)
    except BaseException:
        abandon_allocation(runtime, allocation_id, "container create failed")
        raise
    if refusal is not None:
        abandon_allocation(runtime, allocation_id, "container create refused")
        raise AdmissionRefused(refusal.reason)
    return Prepared(
        spec.body,
        allocation_id,
        tuple(s.slot_id for s in granted.slots) if granted else (),
        tuple(s.uuid for s in granted.slots) if granted else (),
        granted.warning if granted else None,
        device_requests,
    )


def give_gpus(
    runtime: Runtime,
    granted: Granted | None,
    labels: dict[str, str],
    env: list[str],
    host: dict[str, Any],
    *,
    nvidia_runtime: bool,
) -> None:
    """Make a create body give the container exactly its granted slots, or none.

    The slot labels (only admission writes them; detection reads them as "managed"), the
    ``NVIDIA_VISIBLE_DEVICES`` list (``void`` without a grant: CUDA images default to ``all``),
    a device request for those UUIDs where the engine has the nvidia runtime, and the GPU
    group, whose members alone may open the device nodes (docs/bare-metal.md).
    """
    if granted is None:
        env.append("NVIDIA_VISIBLE_DEVICES=void")
        return
    uuids = [s.uuid for s in granted.slots]
    labels[UUIDS_LABEL] = ",".join(uuids)
    labels[SLOTS_LABEL] = ",".join(s.slot_id for s in granted.slots)
    labels[ALLOCATED_AT_LABEL] = utc_text(granted.allocation.allocated_at)
    env.append(f"NVIDIA_VISIBLE_DEVICES={','.join(uuids)}")
    if not any(str(e).startswith("NVIDIA_DRIVER_CAPABILITIES=") for e in env):
        env.append("NVIDIA_DRIVER_CAPABILITIES=compute,utility")
    if nvidia_runtime:
        host["DeviceRequests"] = [
            {"Driver": "nvidia", "DeviceIDs": uuids, "Capabilities": [["gpu"]]}
        ]
    gid = gpu_group_id(runtime)
    if gid is not None:
        host["GroupAdd"] = [*(host.get("GroupAdd") or []), str(gid)]


def record_created(
    runtime: Runtime, request: AdmissionRequest, prepared: Prepared, container_id: str
) -> None:
    """The container exists: bind its allocation and write the one audit event every admitted
    container gets, whichever transport asked."""
    if prepared.allocation_id is not None:
        Allocations(runtime).bind(prepared.allocation_id, container_id)
    labels = prepared.body.get("Labels") or {}
    details: dict[str, Any] = {
        "container": request.name or container_id[:12],
        "container_id": container_id,
        "image": prepared.body.get("Image"),
        "origin": classify_origin(labels, request.name or ""),
        "via": request.source,
        "slots": list(prepared.slots),
        "uuids": list(prepared.uuids),
    }
    if prepared.warning:
        details["warning"] = prepared.warning
    runtime.events.append(Event(CREATED_EVENT, request.user, request.source, details))


def abandon(runtime: Runtime, prepared: Prepared, reason: str) -> None:
    """The create did not happen: give the GPUs back at once."""
    abandon_allocation(runtime, prepared.allocation_id, reason)


def abandon_allocation(runtime: Runtime, allocation_id: int | None, reason: str) -> None:
    if allocation_id is not None:
        Allocations(runtime).release([allocation_id], reason)


# -- starting again ----------------------------------------------------------------------------


def readmit(runtime: Runtime, user: str, inspect: Mapping[str, Any]) -> Allocation | None:
    """Before a stopped container of ``user`` starts (or restarts): make sure the GPU slots it
    will reach are allocated to it.

    Nothing to do when it holds a live allocation (its hold after stop has not run out) or
    reaches no GPU. Otherwise the same slots are taken again — only if all are free and, like
    any allocation, within the user's quota; the new record is bound to the container at once.

    :param inspect: the engine's inspect of the container.
    :return: the new allocation, or None when none was needed.
    :raises AdmissionRefused: the slots are taken, gone or over quota (nothing is allocated).
    """
    container_id = str(inspect.get("Id", ""))
    name = container_name(inspect)
    allocations = Allocations(runtime)
    if allocations.for_container(container_id):
        return None
    try:
        slots = inventory_slots(runtime)
    except GpuUnavailableError as exc:  # a stopped container waits for its GPUs like a new one
        raise AdmissionRefused(str(exc)) from None
    access = gpu_access(inspect, slots)
    if access.unrestricted:
        raise AdmissionRefused(
            f"{name} can reach every GPU ({', '.join(access.via)}), which ds01 cannot allocate; "
            "remove it and create a new one that asks for a number of GPUs (--gpus N)"
        )
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    uuids = list(dict.fromkeys([*slot_uuids(labels), *access.slot_uuids]))
    if not uuids:
        return None
    try:
        return allocations.reserve(user, container_id, name, uuids)
    except AllocationRefused as refused:
        raise AdmissionRefused(
            f"{name} cannot start: its GPU was released while it was stopped "
            f"(after allocation.gpu_hold_after_stop) and cannot be allocated again: {refused}. "
            "Start it when that changes, or remove it and create a new container, which gets "
            "whichever GPU is free"
        ) from None


def slot_uuids(labels: Mapping[str, str]) -> Sequence[str]:
    """The slot UUIDs admission recorded on a container (empty: none)."""
    return [u for u in str(labels.get(UUIDS_LABEL, "")).split(",") if u]
