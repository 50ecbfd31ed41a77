"""The user's containers: created with exactly their GPU slots, labelled, and always released.

Every operation acts for one user (the caller, or the user an admin acts for) and only on that
user's containers, as detection attributes them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.allocation import (
    ALLOCATED_AT_LABEL,
    SLOTS_LABEL,
    UUIDS_LABEL,
    AllocationRefused,
    Allocations,
    Granted,
)
from ds01_core.bare_metal import gpu_group_id
from ds01_core.detection.containers import ORIGIN_LABEL, OWNER_LABEL
from ds01_core.docker import DockerError
from ds01_core.gpu_queue import allocate_waiting
from ds01_core.model import ContainerSpec, Event, GpuRequest, Workload, utc_text
from ds01_core.pipeline import detect
from ds01_core.users import uid_for_username

if TYPE_CHECKING:
    from ds01_core.runtime import Runtime

CREATED_AT_LABEL = "ds01.created_at"
WORKSPACE_LABEL = "ds01.workspace"
PROJECT_LABEL = "ds01.project"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


class ContainerError(Exception):
    """A user-facing failure: the message says what was wrong and what to do."""


@attrs.frozen
class CreateRequest:
    name: str
    image: str
    gpus: int | None = None
    mig: str | None = None
    full_gpu: bool = False
    cpu_only: bool = False
    min_memory: int | None = None
    workspace: str | None = None
    project: str | None = None
    command: tuple[str, ...] = ()
    wait: float | None = None


@attrs.frozen
class Created:
    id: str
    name: str
    slots: tuple[str, ...]
    uuids: tuple[str, ...]
    warning: str | None = None
    device_requests: bool = False


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

    Shared by ``ds01 container create`` and the gateway: the slot labels, the
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


class ContainerService:
    """ds01's container operations for ``user``."""

    def __init__(self, runtime: Runtime, user: str):
        self.runtime = runtime
        self.user = user
        self.docker = runtime.docker
        self.allocations = Allocations(runtime)

    # -- looking up ---------------------------------------------------------------------------

    def mine(self) -> list[Workload]:
        """The user's containers, as detection attributes them (not only ds01's own)."""
        return [w for w in detect(self.runtime) if w.kind == "container" and w.owner == self.user]

    def find(self, name_or_id: str) -> Workload:
        """One of the user's containers by name or id prefix; another user's is "not found"
        too, so that names of others' containers are not disclosed."""
        matches = [
            w
            for w in self.mine()
            if w.name == name_or_id or (len(name_or_id) >= 6 and w.id.startswith(name_or_id))
        ]
        if not matches:
            raise ContainerError(
                f"no container {name_or_id!r} of yours (see `ds01 container list`)"
            )
        if len(matches) > 1:
            raise ContainerError(f"{name_or_id!r} matches several containers; use more of the id")
        return matches[0]

    # -- creating -----------------------------------------------------------------------------

    def _gpu_request(self, req: CreateRequest) -> GpuRequest | None:
        if req.cpu_only:
            return None
        chosen = [bool(req.gpus), bool(req.mig), req.full_gpu]
        if sum(chosen) > 1:
            raise ContainerError("choose one of --gpus, --mig, --full-gpu, --cpu-only")
        return GpuRequest(
            user=self.user,
            container=req.name,
            count=req.gpus or 1,
            mig_profile=req.mig,
            full_gpu=req.full_gpu,
            min_memory=req.min_memory,
        )

    def _workspace_bind(self, workspace: str) -> str:
        path = Path(workspace).expanduser().resolve()
        if not path.is_dir():
            raise ContainerError(f"workspace {workspace} is not a directory")
        uid = uid_for_username(self.user)
        if uid is None or path.stat().st_uid != uid:
            raise ContainerError(
                f"workspace {path} is not owned by {self.user}; use a directory of your own"
            )
        return f"{path}:/workspace"

    def _nvidia_runtime(self) -> bool:
        try:
            return "nvidia" in (self.docker.info().get("Runtimes") or {})
        except DockerError:
            return False

    def create(self, req: CreateRequest) -> Created:
        if not _NAME.match(req.name):
            raise ContainerError(
                f"invalid name {req.name!r}: use letters, digits, '_', '.', '-' (max 128)"
            )
        if self.docker.inspect_image(req.image) is None:
            raise ContainerError(f"image {req.image!r} not found on this server; pull it first")
        if self.docker.inspect_container(req.name) is not None:
            raise ContainerError(f"a container named {req.name!r} exists; pick another name")
        gpu_request = self._gpu_request(req)
        binds = [self._workspace_bind(req.workspace)] if req.workspace else []
        granted: Granted | None = None
        if gpu_request is not None:
            try:
                granted = allocate_waiting(self.runtime, gpu_request, req.wait)
            except AllocationRefused as refused:
                raise ContainerError(str(refused)) from None
        try:
            return self._create(req, granted, binds, gpu_request)
        except BaseException:
            if granted is not None and granted.allocation.id is not None:
                self.allocations.release([granted.allocation.id], "container create failed")
            raise

    def _create(
        self,
        req: CreateRequest,
        granted: Granted | None,
        binds: list[str],
        gpu_request: GpuRequest | None,
    ) -> Created:
        now = self.runtime.now()
        labels = {
            OWNER_LABEL: self.user,
            ORIGIN_LABEL: "ds01",
            CREATED_AT_LABEL: utc_text(now),
        }
        if req.workspace:
            labels[WORKSPACE_LABEL] = binds[0].rsplit(":", 1)[0]
        if req.project:
            labels[PROJECT_LABEL] = req.project
        env: list[str] = []
        host: dict[str, Any] = {}
        use_device_requests = granted is not None and self._nvidia_runtime()
        give_gpus(self.runtime, granted, labels, env, host, nvidia_runtime=use_device_requests)
        uuids = [s.uuid for s in granted.slots] if granted else []
        slot_ids = [s.slot_id for s in granted.slots] if granted else []
        if binds:
            host["Binds"] = binds
        body: dict[str, Any] = {
            "Image": req.image,
            "Labels": labels,
            "Env": env,
            "Tty": True,
            "OpenStdin": True,
            "HostConfig": host,
        }
        if req.command:
            body["Cmd"] = list(req.command)
        if req.workspace:
            body["WorkingDir"] = "/workspace"
        spec = ContainerSpec(
            user=self.user, name=req.name, body=body, origin="ds01", gpu_request=gpu_request
        )
        refusal = self.runtime.hooks.prepare_container(self.runtime, spec)
        if refusal is not None:
            raise ContainerError(refusal.reason)
        container_id = self.docker.create_container(spec.body, name=req.name)
        if granted is not None and granted.allocation.id is not None:
            self.allocations.bind(granted.allocation.id, container_id)
        self.runtime.events.append(
            Event(
                "container.created_by_ds01",
                self.user,
                "ds01",
                {
                    "container": req.name,
                    "container_id": container_id,
                    "image": req.image,
                    "slots": slot_ids,
                    "uuids": uuids,
                },
            )
        )
        return Created(
            container_id,
            req.name,
            tuple(slot_ids),
            tuple(uuids),
            granted.warning if granted else None,
            use_device_requests,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, name: str) -> Workload:
        workload = self.find(name)
        uuids = [u for u in workload.labels.get(UUIDS_LABEL, "").split(",") if u]
        if uuids and not self.allocations.for_container(workload.id):
            try:  # the hold after stop ran out: take the same slots back, if still free
                self.allocations.reserve(self.user, workload.id, workload.name, uuids)
            except AllocationRefused as refused:
                raise ContainerError(
                    f"{refused}; its GPU was released while it was stopped. Remove it and "
                    "create a new one."
                ) from None
        self.docker.start(workload.id)
        return workload

    def stop(self, name: str, timeout: float | None = None) -> Workload:
        workload = self.find(name)
        grace = (
            timeout if timeout is not None else float(self.runtime.config.allocation.stop_timeout)
        )
        self.docker.stop(workload.id, timeout=int(grace))
        return workload

    def remove(self, name: str, force: bool = False) -> Workload:
        workload = self.find(name)
        if workload.status == "running" and not force:
            raise ContainerError(f"{workload.name} is running: stop it first, or use --force")
        self.docker.remove(workload.id, force=force)
        self.allocations.release_container(workload.id, "container removed")
        return workload

    def logs(self, name: str, *, follow: bool = False, tail: str = "all") -> Iterator[bytes]:
        workload = self.find(name)
        return self.docker.api.logs(workload.id, stream=True, follow=follow, tail=tail)

    def exec(self, name: str, command: Sequence[str]) -> tuple[int, str]:
        workload = self.find(name)
        return self.docker.exec_run(workload.id, list(command))

    def stats(self, filters: Sequence[str] = ()) -> list[dict[str, Any]]:
        """One stats sample per own running container, filtered like ``docker ps --filter``."""
        selected = [w for w in self.mine() if w.status == "running" and _matches(w, filters)]
        rows = []
        for workload in selected:
            raw = self.docker.api.stats(workload.id, stream=False)
            rows.append(stats_row(workload, raw))
        return rows


FILTER_KEYS = ("name", "id", "label", "status", "origin")


def parse_filter(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or key not in FILTER_KEYS:
        raise ContainerError(
            f"bad filter {text!r}: use KEY=VALUE with KEY one of {', '.join(FILTER_KEYS)}"
        )
    return key, value


def _matches(workload: Workload, filters: Sequence[str]) -> bool:
    for text in filters:
        key, value = parse_filter(text)
        if key == "name" and value not in workload.name:
            return False
        if key == "id" and not workload.id.startswith(value):
            return False
        if key == "status" and workload.status != value:
            return False
        if key == "origin" and workload.origin != value:
            return False
        if key == "label":
            label, _, wanted = value.partition("=")
            if label not in workload.labels or (wanted and workload.labels[label] != wanted):
                return False
    return True


def stats_row(workload: Workload, raw: dict[str, Any]) -> dict[str, Any]:
    """CPU percent, memory and pids from one Docker stats sample (the way ``docker stats``
    computes them)."""
    cpu, pre = raw.get("cpu_stats") or {}, raw.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
        pre.get("cpu_usage") or {}
    ).get("total_usage", 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    cpus = (
        cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    )
    percent = (cpu_delta / system_delta) * cpus * 100 if system_delta > 0 and cpu_delta > 0 else 0.0
    memory = raw.get("memory_stats") or {}
    usage = memory.get("usage") or 0
    cache = (memory.get("stats") or {}).get("cache") or 0
    return {
        "name": workload.name,
        "id": workload.id,
        "cpu_percent": round(percent, 2),
        "memory_bytes": max(0, usage - cache),
        "memory_limit_bytes": memory.get("limit"),
        "pids": (raw.get("pids_stats") or {}).get("current"),
        "gpu_slots": workload.gpu_slots,
    }


def caller_identity() -> tuple[str, bool]:
    """(user name, is admin) of whoever runs this command.

    Under sudo the user is ``SUDO_USER`` (not root); root itself, and members of the admin
    group, are admins.
    """
    from ds01_core.users import normalize_username, unix_groups_of, username_for_uid

    if os.geteuid() == 0 and os.environ.get("SUDO_USER"):
        name = normalize_username(os.environ["SUDO_USER"])
        return name, "ds01-admin" in unix_groups_of(name)
    name = username_for_uid(os.getuid()) or f"uid:{os.getuid()}"
    return name, os.getuid() == 0 or "ds01-admin" in unix_groups_of(name)
