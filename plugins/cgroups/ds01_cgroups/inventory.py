"""Which containers sit in which cgroup, at one inspect per container for its whole life.

``HostConfig.CgroupParent`` never changes after a container is created, and the engine's
listing does not show it, so each container is inspected once and its parent cached by id; a
cycle in a steady state asks the engine nothing. The per-container ``Memory`` can change
(``docker update``), so it is re-read for the few containers an admission check counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from ds01_cgroups.naming import same_parent

#: container states in which a container holds (or is about to hold) its memory
ACTIVE_STATES = frozenset({"created", "running", "restarting", "paused"})
#: the cache is pruned on every admission check; this bounds it between them
MAX_CACHED = 10_000


class DockerLike(Protocol):
    """The part of :class:`ds01_core.api.DockerAdapter` this plugin uses."""

    def info(self) -> dict[str, Any]: ...

    def list_containers(
        self, all: bool = True, filters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]: ...

    def inspect_container(self, container: str) -> dict[str, Any] | None: ...


@attrs.frozen
class Member:
    """A container in a user's cgroup, with the memory it reserves (0: no limit of its own)."""

    id: str
    name: str
    memory: int


def _name(inspect: Mapping[str, Any]) -> str:
    return str(inspect.get("Name") or inspect.get("Id", "")[:12]).lstrip("/")


class ContainerParents:
    """Cache of container id → ``CgroupParent`` ("" for Docker's default)."""

    def __init__(self, docker: DockerLike):
        self.docker = docker
        self._parents: dict[str, str] = {}
        self.inspects = 0  # tests and benchmarks read it

    def parent_of(self, container_id: str) -> str | None:
        """The container's cgroup parent, or None when it no longer exists."""
        if container_id not in self._parents:
            if len(self._parents) >= MAX_CACHED:  # containers come and go between creates
                self._parents.clear()
            inspect = self.docker.inspect_container(container_id)
            self.inspects += 1
            if inspect is None:
                return None
            self._parents[container_id] = str(
                (inspect.get("HostConfig") or {}).get("CgroupParent") or ""
            )
        return self._parents[container_id]

    def forget_except(self, alive: set[str]) -> None:
        for gone in set(self._parents) - alive:
            del self._parents[gone]

    def members(self, parent: str) -> list[Member]:
        """The active containers whose cgroup parent is ``parent``, with their memory now."""
        summaries = self.docker.list_containers(all=True)
        self.forget_except({s["Id"] for s in summaries})
        found = []
        for summary in summaries:
            if summary.get("State") not in ACTIVE_STATES:
                continue
            if not same_parent(self.parent_of(summary["Id"]), parent):
                continue
            inspect = self.docker.inspect_container(summary["Id"])
            self.inspects += 1
            if inspect is None:
                continue
            memory = int((inspect.get("HostConfig") or {}).get("Memory") or 0)
            found.append(Member(summary["Id"], _name(inspect), memory))
        return found
