"""Moving legacy ``aime.mlc.*`` containers into the ``ds01.*`` namespace.

Recording is always safe: the mapping goes into the state store and the container is left
alone. Recreating is for stopped containers only: the old one is renamed aside, a new one is
created from its exact configuration with ``ds01.*`` labels added, and only when that
succeeded is the old one removed; on any failure the old one gets its name back.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.domain.labels import LEGACY_PREFIX, is_legacy, legacy_mapping
from ds01_core.domain.model import Event
from ds01_core.domain.state.label_migrations import mark_recreated, record

if TYPE_CHECKING:
    from ds01_core.domain.docker_engine import DockerAdapter
    from ds01_core.framework.runtime import Runtime

#: HostConfig fields carried over on recreation (everything that shapes what the container
#: can reach: mounts, devices and GPUs, limits, namespaces, restart policy).
HOST_CONFIG_KEYS = (
    "Binds",
    "Mounts",
    "NetworkMode",
    "PortBindings",
    "RestartPolicy",
    "VolumeDriver",
    "VolumesFrom",
    "CapAdd",
    "CapDrop",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "IpcMode",
    "Cgroup",
    "Links",
    "OomScoreAdj",
    "PidMode",
    "Privileged",
    "ReadonlyRootfs",
    "SecurityOpt",
    "Tmpfs",
    "UTSMode",
    "UsernsMode",
    "ShmSize",
    "Sysctls",
    "Runtime",
    "CgroupParent",
    "BlkioWeight",
    "CpuShares",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "CpusetMems",
    "Devices",
    "DeviceCgroupRules",
    "DeviceRequests",
    "Memory",
    "MemoryReservation",
    "MemorySwap",
    "NanoCpus",
    "PidsLimit",
    "Ulimits",
    "Init",
    "AutoRemove",
    "LogConfig",
)
CONFIG_KEYS = (
    "Hostname",
    "Domainname",
    "User",
    "Env",
    "Cmd",
    "Entrypoint",
    "Image",
    "WorkingDir",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
    "StopTimeout",
    "Shell",
    "Healthcheck",
)


@attrs.define
class LegacyContainer:
    id: str
    name: str
    status: str
    mapping: dict[str, str]
    recorded_now: bool = False
    recreated_as: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def create_body(inspect: Mapping[str, Any]) -> dict[str, Any]:
    """A create body reproducing ``inspect``'s container, with ``ds01.*`` labels added."""
    config = inspect.get("Config") or {}
    body = {k: copy.deepcopy(config[k]) for k in CONFIG_KEYS if config.get(k) is not None}
    body["Image"] = config.get("Image") or inspect.get("Image")
    labels = dict(config.get("Labels") or {})
    for key, value in legacy_mapping(labels).items():
        labels.setdefault(key, value)
    labels.setdefault("ds01.migrated_from", inspect["Id"])
    body["Labels"] = labels
    host = inspect.get("HostConfig") or {}
    body["HostConfig"] = {
        k: copy.deepcopy(host[k]) for k in HOST_CONFIG_KEYS if host.get(k) is not None
    }
    return body


def recreate(docker: DockerAdapter, inspect: Mapping[str, Any]) -> str:
    """Recreate a stopped container under the same name with ``ds01.*`` labels; the new id."""
    old_id = inspect["Id"]
    name = inspect["Name"].lstrip("/")
    aside = f"{name}-legacy-{old_id[:8]}"
    docker.api.rename(old_id, aside)
    try:
        new_id = docker.create_container(create_body(inspect), name=name)
    except Exception:
        docker.api.rename(old_id, name)
        raise
    docker.remove(old_id)
    return new_id


def migrate(
    runtime: Runtime, *, dry_run: bool = False, recreate_stopped: bool = False
) -> list[LegacyContainer]:
    """Find every legacy container, record its mapping, and optionally recreate stopped ones."""
    docker = runtime.docker
    found: list[LegacyContainer] = []
    now = runtime.now()
    for summary in docker.list_containers(all=True):
        labels = summary.get("Labels") or {}
        if not any(k.startswith(LEGACY_PREFIX) for k in labels) or not is_legacy(labels):
            continue
        item = LegacyContainer(
            id=summary["Id"],
            name=(summary.get("Names") or ["/?"])[0].lstrip("/"),
            status=summary.get("State", ""),
            mapping=legacy_mapping(labels),
        )
        found.append(item)
        if dry_run:
            continue
        with runtime.state.transaction() as db:
            item.recorded_now = record(db, item.id, item.name, labels, now)
        if item.recorded_now:
            runtime.events.append(
                Event(
                    "labels.migration_recorded",
                    item.mapping.get("ds01.user"),
                    "labels",
                    {"container": item.name, "container_id": item.id, "mapping": item.mapping},
                )
            )
        if recreate_stopped and item.status in ("exited", "created", "dead"):
            inspect = docker.inspect_container(item.id)
            if inspect is None:
                continue
            try:
                item.recreated_as = recreate(docker, inspect)
            except Exception as exc:  # reported per container; the others go on
                item.error = str(exc)
                continue
            with runtime.state.transaction() as db:
                mark_recreated(db, item.id, item.recreated_as)
            runtime.events.append(
                Event(
                    "labels.container_recreated",
                    item.mapping.get("ds01.user"),
                    "labels",
                    {"container": item.name, "old_id": item.id, "new_id": item.recreated_as},
                )
            )
    return found
