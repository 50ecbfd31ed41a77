"""The user's containers, for ``ds01 container``: created, found and acted on for that user only.

They are created through ds01's one admission path (:mod:`ds01_core.services.admission`:
exactly their GPU slots, labelled, always released).

Every operation acts for one user (the caller, or the user an admin acts for) and only on that
user's containers, as detection attributes them.
"""

from __future__ import annotations

import pwd
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ds01_core.cycle.pipeline import detect
from ds01_core.domain.container_facts import ORIGIN_LABEL
from ds01_core.domain.docker_engine import DockerError
from ds01_core.domain.images import image_owner
from ds01_core.domain.model import GpuRequest, Workload
from ds01_core.domain.state.allocations import Allocations
from ds01_core.domain.users import uid_for_username
from ds01_core.services.admission import (
    AdmissionRefused,
    AdmissionRequest,
    Prepared,
    admit,
    in_process,
    readmit,
)

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

WORKSPACE_LABEL = "ds01.workspace"
PROJECT_LABEL = "ds01.project"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


class ContainerError(Exception):
    """A user-facing failure: the message says what was wrong and what to do."""


class ContainerNotFound(ContainerError):
    """No container of the user's by that name (another user's is not found either)."""


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
    #: the container's environment (``KEY=VALUE``; a user's ``--env``, or a service's)
    env: tuple[str, ...] = ()
    #: for services (never from a user's request): exact GPU slots, labels, the user's own
    #: uid:gid in the container, a batch (no terminal) container, who asked
    slot_uuids: tuple[str, ...] = ()
    labels: Mapping[str, str] = attrs.Factory(dict)
    as_user: bool = False
    batch: bool = False
    source: str = "ds01"


@attrs.frozen
class Created:
    id: str
    name: str
    slots: tuple[str, ...]
    uuids: tuple[str, ...]
    warning: str | None = None
    device_requests: bool = False


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
            raise ContainerNotFound(
                f"no container {name_or_id!r} of yours (see `ds01 container list`)"
            )
        if len(matches) > 1:
            raise ContainerError(f"{name_or_id!r} matches several containers; use more of the id")
        return matches[0]

    # -- creating -----------------------------------------------------------------------------

    def _gpu_request(self, req: CreateRequest) -> GpuRequest | None:
        if req.slot_uuids:
            return GpuRequest(
                self.user, req.name, count=len(req.slot_uuids), slot_uuids=req.slot_uuids
            )
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

    def _uid_gid(self) -> str:
        try:
            entry = pwd.getpwnam(self.user)
        except KeyError:
            raise ContainerError(f"{self.user} is not in the passwd database") from None
        return f"{entry.pw_uid}:{entry.pw_gid}"

    def _nvidia_runtime(self) -> bool:
        try:
            return "nvidia" in (self.docker.info().get("Runtimes") or {})
        except DockerError:
            return False

    def create(self, req: CreateRequest) -> Created:
        """Check what only this transport knows (name, image, workspace), then admit."""
        if not _NAME.match(req.name):
            raise ContainerError(
                f"invalid name {req.name!r}: use letters, digits, '_', '.', '-' (max 128)"
            )
        image = self.docker.inspect_image(req.image)
        owner = image_owner(image) if image is not None else None
        if image is None or owner not in (None, self.user):  # another's image: not disclosed
            raise ContainerError(f"image {req.image!r} not found on this server; pull it first")
        if self.docker.inspect_container(req.name) is not None:
            raise ContainerError(f"a container named {req.name!r} exists; pick another name")
        gpu_request = self._gpu_request(req)
        labels = {**req.labels, ORIGIN_LABEL: "ds01"}
        body: dict[str, Any] = {
            "Image": req.image,
            "Labels": labels,
            "Tty": not req.batch,
            "OpenStdin": not req.batch,
            "HostConfig": {},
        }
        if req.env:
            body["Env"] = list(req.env)
        if req.as_user:
            body["User"] = self._uid_gid()
        if req.workspace:
            bind = self._workspace_bind(req.workspace)
            body["HostConfig"]["Binds"] = [bind]
            body["WorkingDir"] = "/workspace"
            labels[WORKSPACE_LABEL] = bind.rsplit(":", 1)[0]
        if req.project:
            labels[PROJECT_LABEL] = req.project
        if req.command:
            body["Cmd"] = list(req.command)
        request = AdmissionRequest(
            self.user,
            req.name,
            body,
            gpu_request,
            wait=req.wait,
            nvidia_runtime=gpu_request is not None and self._nvidia_runtime(),
            source=req.source,
        )

        def create(prepared: Prepared, created: Callable[[str], None]) -> Created:
            container_id = self.docker.create_container(prepared.body, name=req.name)
            created(container_id)
            return Created(
                container_id,
                req.name,
                prepared.slots,
                prepared.uuids,
                prepared.warning,
                prepared.device_requests,
            )

        try:
            return admit(request, create, run=in_process(self.runtime))
        except AdmissionRefused as refused:
            raise ContainerError(str(refused)) from None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, name: str) -> Workload:
        """Start one of the user's containers; GPUs released while it was stopped are taken
        back first (:func:`~ds01_core.services.admission.readmit`), or the start is refused."""
        workload = self.find(name)
        inspect = self.docker.inspect_container(workload.id)
        if inspect is None:
            raise ContainerError(f"{workload.name} no longer exists (see `ds01 container list`)")
        try:
            reserved = readmit(self.runtime, self.user, inspect)
        except AdmissionRefused as refused:
            raise ContainerError(str(refused)) from None
        try:
            self.docker.start(workload.id)
        except BaseException:
            if reserved is not None and reserved.id is not None:
                self.allocations.release([reserved.id], "container start failed")
            raise
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
        # the SDK takes a count as an int and silently turns any other string into "all"
        lines: int | Literal["all"] = "all" if tail == "all" else int(tail)
        return self.docker.api.logs(workload.id, stream=True, follow=follow, tail=lines)

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
