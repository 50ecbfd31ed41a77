"""Docker containers as workloads, at the cost of one container listing per cycle.

What never changes after creation (labels, mounts, environment, host config, device requests)
is cached by container id from one inspect; what changes on start/stop (main PID, start time)
is re-read only when the listing shows the container's state changed. In a steady state a cycle
is exactly one ``GET /containers/json?all=1``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ds01_core.cycle.detection.procfs import PROC, read_proc
from ds01_core.domain.container_facts import (
    Owner,
    classify_origin,
    container_name,
    gpu_access,
    gpu_managed,
    resolve_owner,
)
from ds01_core.domain.docker_engine import DockerAdapter
from ds01_core.domain.labels import ds01_view
from ds01_core.domain.model import GpuSlot, Origin, Workload

log = logging.getLogger(__name__)


def parse_docker_time(value: str | None) -> dt.datetime | None:
    """Docker's RFC 3339 with nanoseconds (``2026-11-22T10:00:00.123456789Z``); zero → None."""
    if not value or value.startswith("0001-01-01"):
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    frac_digits = "".join(ch for ch in frac if ch.isdigit())[:6]
    offset = ""
    for sign in ("+", "-"):
        if sign in frac:
            offset = sign + frac.split(sign, 1)[1]
    text = head + (f".{frac_digits}" if frac_digits else "") + (offset or "+00:00")
    try:
        return dt.datetime.fromisoformat(text).astimezone(dt.UTC)
    except ValueError:
        return None


@attrs.define
class ContainerRecord:
    """Cached facts about one container."""

    id: str
    origin: Origin
    owner: Owner
    labels: dict[str, str]
    image: str
    created_at: dt.datetime | None
    gpu_view: dict[str, Any]
    state: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    pid: int | None


def _gpu_view(inspect: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an inspect result that decides GPU access (kept instead of the whole)."""
    host = inspect.get("HostConfig") or {}
    keep = ("DeviceRequests", "Runtime", "Devices", "DeviceCgroupRules", "Privileged")
    return {
        "HostConfig": {k: host.get(k) for k in keep},
        "Config": {"Env": (inspect.get("Config") or {}).get("Env") or []},
    }


class ContainerDetector:
    """Turns the engine's container listing into workloads, caching per container id."""

    def __init__(self, home_roots: Sequence[str] = ("/home",), proc_root: Any = PROC):
        self.home_roots = tuple(home_roots)
        self.proc_root = proc_root
        self.records: dict[str, ContainerRecord] = {}
        self.inspects = 0  # how many inspect calls were needed: benchmarks and tests read it

    def _record(self, docker: DockerAdapter, summary: Mapping[str, Any]) -> ContainerRecord | None:
        inspect = docker.inspect_container(summary["Id"])
        self.inspects += 1
        if inspect is None:
            return None
        state = inspect.get("State") or {}
        pid = state.get("Pid") or None
        uid = None
        if pid:
            info = read_proc(pid, self.proc_root)
            uid = info.uid if info else None
        raw_labels = dict((inspect.get("Config") or {}).get("Labels") or {})
        labels = ds01_view(raw_labels)  # legacy aime.mlc.* also readable as ds01.*
        name = container_name(inspect)
        owner = resolve_owner(  # raw labels: owner_source says which namespace decided
            name, raw_labels, inspect.get("Mounts") or [], uid, home_roots=self.home_roots
        )
        created = parse_docker_time(inspect.get("Created"))
        return ContainerRecord(
            id=inspect["Id"],
            origin=classify_origin(raw_labels, name),
            owner=owner,
            labels=labels,
            image=(inspect.get("Config") or {}).get("Image") or summary.get("Image", ""),
            created_at=created,
            gpu_view=_gpu_view(inspect),
            # the inspect's state, not the listing's: right after an event the listing (served
            # from the engine's replica) can still show the state before it
            state=state.get("Status") or summary.get("State", ""),
            started_at=parse_docker_time(state.get("StartedAt")),
            finished_at=parse_docker_time(state.get("FinishedAt")),
            pid=pid,
        )

    def detect(self, docker: DockerAdapter, slots: Sequence[GpuSlot]) -> list[Workload]:
        summaries = docker.list_containers(all=True)
        seen = set()
        workloads = []
        for summary in summaries:
            cid = summary["Id"]
            seen.add(cid)
            record = self.records.get(cid)
            if record is None or record.state != summary.get("State"):
                record = self._record(docker, summary)
                if record is None:  # removed between the listing and the inspect
                    continue
                self.records[cid] = record
            workloads.append(self._workload(record, container_name(summary), slots))
        for gone in set(self.records) - seen:
            del self.records[gone]
        return workloads

    @staticmethod
    def _workload(record: ContainerRecord, name: str, slots: Sequence[GpuSlot]) -> Workload:
        access = gpu_access(record.gpu_view, slots)
        flags = []
        if access.unrestricted:
            flags.append("unrestricted_gpu")
        if access.any and not gpu_managed(record.origin, record.labels, access):
            flags.append("unmanaged_gpu")
        return Workload(
            kind="container",
            id=record.id,
            name=name,
            origin=record.origin,
            owner=record.owner.user,
            owner_source=record.owner.source,
            status=record.state,
            gpu_slots=list(access.slot_uuids),
            unrestricted_gpu=access.unrestricted,
            pids=[record.pid] if record.pid and record.state == "running" else [],
            created_at=record.created_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            image=record.image,
            labels=record.labels,
            flags=flags,
        )

    def invalidate(self, container_id: str) -> None:
        """Forget a container's cached state (the daemon calls this on its Docker events, so a
        restart's new PID is read even though the listing shows "running" both times)."""
        self.records.pop(container_id, None)

    def owner_of(self, container_id: str) -> tuple[str, Origin, str] | None:
        """(owner, origin, name-less id) of a cached container, for process attribution."""
        record = self.records.get(container_id)
        if record is None:
            return None
        return record.owner.user, record.origin, record.owner.source
