"""Turning a user's container create body into the one ds01 lets reach the engine.

After the create policy accepted the body: the client's ``ds01.*`` (and legacy ``aime.mlc.*``)
labels are dropped and the owner's are added; a GPU request in any of its three spellings
(``--gpus N``, a device request, ``NVIDIA_VISIBLE_DEVICES``) goes through ``allocate_gpu`` like
``ds01 container create`` does and is rewritten to the allocated UUIDs; a container without one
gets ``NVIDIA_VISIBLE_DEVICES=void`` (CUDA images default to ``all``); then every plugin's
``prepare_container`` applies (the cgroups plugin's parent and limits, disk quota refusals).

These functions run in the gateway's single runtime thread: the state store's SQLite connection
and the plugins' caches belong to that thread.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.allocation import (
    AllocationRefused,
    Allocations,
    Granted,
)
from ds01_core.containers import CREATED_AT_LABEL, give_gpus
from ds01_core.detection.containers import OWNER_LABEL, classify_origin
from ds01_core.labels import LEGACY_PREFIX
from ds01_core.model import ContainerSpec, Event, GpuRequest, utc_text

if TYPE_CHECKING:
    from ds01_core.runtime import Runtime

_NO_GPU = frozenset({"", "none", "void"})


class CreateRefused(Exception):
    """The create may not go ahead; the message is for the user."""


@attrs.frozen
class PreparedCreate:
    body: dict[str, Any]
    allocation_id: int | None
    uuids: tuple[str, ...]


def _capabilities(request: Mapping[str, Any]) -> list[str]:
    """A device request's capabilities, flattened (``[["gpu", "compute"]]``)."""
    return [c for group in request.get("Capabilities") or [] for c in group or []]


def gpu_count(body: Mapping[str, Any]) -> int:
    """How many GPUs the body asks for, whichever way it asks (0: none)."""
    host = body.get("HostConfig") or {}
    count = 0
    for request in host.get("DeviceRequests") or []:
        capabilities = _capabilities(request)
        if request.get("Driver") not in (None, "", "nvidia") and "gpu" not in capabilities:
            continue
        ids = request.get("DeviceIDs") or []
        count += len(ids) if ids else max(int(request.get("Count") or 0), 0)
    for item in body.get("Env") or []:
        key, _, value = str(item).partition("=")
        if key == "NVIDIA_VISIBLE_DEVICES" and value.strip().lower() not in _NO_GPU:
            count = max(count, len([v for v in value.split(",") if v.strip()]))
    return count


def unsupported_device_requests(body: Mapping[str, Any]) -> list[str]:
    host = body.get("HostConfig") or {}
    problems = []
    for request in host.get("DeviceRequests") or []:
        capabilities = _capabilities(request)
        if request.get("Driver") not in (None, "", "nvidia") or (
            capabilities and "gpu" not in capabilities
        ):
            problems.append(f"device request {request!r} is not a GPU request ds01 understands")
        if request.get("Options"):
            problems.append("device request options are not allowed")
    return problems


def own_labels(labels: Mapping[str, Any] | None) -> dict[str, str]:
    """The client's labels without any that ds01 gives meaning to."""
    return {
        str(k): str(v)
        for k, v in (labels or {}).items()
        if not str(k).startswith(("ds01.", LEGACY_PREFIX))
    }


def prepare_create(
    runtime: Runtime, user: str, name: str | None, body: Mapping[str, Any], nvidia_runtime: bool
) -> PreparedCreate:
    """The body to send, with the GPU allocated (release it if the engine then fails)."""
    out: dict[str, Any] = copy.deepcopy(dict(body))
    host: dict[str, Any] = dict(out.get("HostConfig") or {})
    labels = own_labels(out.get("Labels"))
    labels[OWNER_LABEL] = user
    labels[CREATED_AT_LABEL] = utc_text(runtime.now())
    origin = classify_origin(labels, name or "")
    count = gpu_count(out)
    env = [e for e in out.get("Env") or [] if not str(e).startswith("NVIDIA_VISIBLE_DEVICES=")]
    host.pop("DeviceRequests", None)
    gpu_request = None
    granted: Granted | None = None
    if count:
        gpu_request = GpuRequest(user=user, container=name or "", count=count)
        try:
            granted = Allocations(runtime).allocate(gpu_request)
        except AllocationRefused as refused:
            raise CreateRefused(str(refused)) from None
    give_gpus(runtime, granted, labels, env, host, nvidia_runtime=nvidia_runtime)
    out["Env"], out["Labels"], out["HostConfig"] = env, labels, host
    spec = ContainerSpec(user=user, name=name, body=out, origin=origin, gpu_request=gpu_request)
    try:
        refusal = runtime.hooks.prepare_container(runtime, spec)
    except BaseException:
        release(runtime, granted.allocation.id if granted else None, "container create failed")
        raise
    if refusal is not None:
        release(runtime, granted.allocation.id if granted else None, "container create refused")
        raise CreateRefused(refusal.reason)
    if granted is not None and granted.warning:
        runtime.events.append(
            Event("gpu.over_quota_granted", user, "gateway", {"warning": granted.warning})
        )
    return PreparedCreate(
        spec.body,
        granted.allocation.id if granted else None,
        tuple(s.uuid for s in granted.slots) if granted else (),
    )


def bind(runtime: Runtime, allocation_id: int | None, container_id: str) -> None:
    if allocation_id is not None:
        Allocations(runtime).bind(allocation_id, container_id)


def release(runtime: Runtime, allocation_id: int | None, reason: str) -> None:
    if allocation_id is not None:
        Allocations(runtime).release([allocation_id], reason)


def release_container(runtime: Runtime, container_id: str, reason: str) -> None:
    Allocations(runtime).release_container(container_id, reason)
