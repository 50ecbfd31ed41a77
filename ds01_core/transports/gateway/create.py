"""What the gateway adds to ds01's admission for a Docker create body.

After the create policy accepted the body: the client's ``ds01.*`` (and legacy ``aime.mlc.*``)
labels are dropped, and a GPU request in any of its three spellings (``--gpus N``, a device
request, ``NVIDIA_VISIBLE_DEVICES``) becomes the admission's GPU request. The rest — allocating,
giving exactly the granted slots (``NVIDIA_VISIBLE_DEVICES=void`` without any), the owner's
labels, every plugin's ``prepare_container``, binding, the audit event, releasing on failure —
is :func:`ds01_core.services.admission.admit`, the same as for ``ds01 container create``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ds01_core.domain.labels import LEGACY_PREFIX
from ds01_core.domain.model import GpuRequest
from ds01_core.domain.state.allocations import Allocations
from ds01_core.services.admission import AdmissionRequest

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

_NO_GPU = frozenset({"", "none", "void"})


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


def admission_request(
    user: str, name: str | None, body: Mapping[str, Any], nvidia_runtime: bool
) -> AdmissionRequest:
    """The admission request for a checked create body (no queue: a Docker client cannot wait)."""
    out: dict[str, Any] = copy.deepcopy(dict(body))
    out["Labels"] = own_labels(out.get("Labels"))
    count = gpu_count(out)
    gpu_request = GpuRequest(user=user, container=name or "", count=count) if count else None
    return AdmissionRequest(
        user, name, out, gpu_request, nvidia_runtime=nvidia_runtime, source="gateway"
    )


def release_container(runtime: Runtime, container_id: str, reason: str) -> None:
    Allocations(runtime).release_container(container_id, reason)
