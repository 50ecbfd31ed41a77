"""The plugin's state for one runtime: the host's cgroup facts, the backend that writes limits
(and remembers what it wrote), the container-parent cache, and what was already reported.

The hooks in :mod:`ds01_cgroups` are thin wrappers over :class:`Enforcer`; tests build one
with fakes (:func:`install`) to record every file write and every systemctl command.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ds01_cgroups import v1, v2
from ds01_cgroups.admission import memory_refusal
from ds01_cgroups.config import CgroupsConfig
from ds01_cgroups.container import apply_container_limits
from ds01_cgroups.detect import HostCgroups, detect_host
from ds01_cgroups.devices import BlockDevice, devices_for
from ds01_cgroups.files import ApplyResult, Mismatch, Writer, write_file
from ds01_cgroups.inventory import ContainerParents, DockerLike
from ds01_cgroups.limits import IO_KEYS, AggregateLimits, LimitSource, aggregate_limits
from ds01_cgroups.naming import UserCgroup, same_parent, user_cgroup
from ds01_cgroups.systemd import Runner, SystemdSlices, run_command
from ds01_core.api import Action, ContainerSpec, Refusal, Workload

if TYPE_CHECKING:
    from ds01_core.api import Runtime

log = logging.getLogger(__name__)

PLUGIN = "cgroups"
MEMO_KEY = "ds01-cgroups"
#: added to ``Workload.flags`` of a container that is not under its owner's cgroup
OUTSIDE_FLAG = "outside_user_cgroup"
DEVICE_TTL = 60.0

Backend = v1.V1Cgroups | v2.V2Cgroups | SystemdSlices


@attrs.frozen
class Outside:
    """A container of a user that is not in the user's cgroup."""

    workload: Workload
    parent: str

    def describe(self, cg: UserCgroup) -> str:
        where = self.parent or "Docker's default cgroup"
        return (
            f"{self.workload.name}: cgroup parent {where}, not {cg.parent}; its CPU, memory, "
            f"pids and IO are outside {cg.user}'s limits (made with the real Docker socket, or "
            "before ds01-cgroups was installed; recreate it through ds01)"
        )


@attrs.frozen
class UserCheck:
    """``ds01 admin cgroups check`` for one user."""

    user: str
    cgroup: str
    mismatches: tuple[Mismatch, ...]
    outside: tuple[Outside, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.outside

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "cgroup": self.cgroup,
            "ok": self.ok,
            "mismatches": [m.to_json() for m in self.mismatches],
            "outside_cgroup": [
                {"id": o.workload.id, "name": o.workload.name, "parent": o.parent}
                for o in self.outside
            ],
        }


F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    """Run ``method`` under the enforcer's lock."""

    @functools.wraps(method)
    def wrapper(self: Enforcer, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _summary(result: ApplyResult) -> str:
    parts = [
        path.rsplit("/", 1)[-1] + ("" if "\n" in text else f"={text}")
        for path, text in result.written
    ]
    parts += [" ".join(argv[:3]) for argv in result.commands]
    parts += result.notes
    return "; ".join(parts)


class Enforcer:
    """Places containers in their owner's cgroup and keeps each user's cgroup at its limits."""

    def __init__(
        self,
        config: CgroupsConfig,
        docker: DockerLike,
        *,
        runner: Runner = run_command,
        write: Writer = write_file,
        sys_root: str = "/sys",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        self.docker = docker
        self.runner = runner
        self.write = write
        self.sys_root = sys_root
        self.clock = clock
        self.parents = ContainerParents(docker)
        self._host: HostCgroups | None = None
        self._backend: Backend | None = None
        self._devices: tuple[BlockDevice, ...] = ()
        self._devices_at: float | None = None
        self._skipped_logged: set[str] = set()
        self._reported: dict[str, set[str]] = {}
        # the daemon's cycle and the gateway's creates may call in from different threads
        self._lock = threading.RLock()

    # -- the host -----------------------------------------------------------------------------

    @property
    def host(self) -> HostCgroups:
        """Detected on first use (and retried on every use until it succeeds)."""
        if self._host is None:
            self._host = detect_host(self.config, self.docker.info)
            log.info(
                "cgroups: driver %s, cgroup %s, docker root %s",
                self._host.driver,
                self._host.version,
                self._host.docker_root,
            )
        return self._host

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            host = self.host
            fs = self.config.cgroup_fs
            if host.driver == "systemd":
                self._backend = SystemdSlices(
                    self.config.systemd_unit_dir,
                    version=host.version,
                    cgroup_fs=fs,
                    runner=self.runner,
                    write=self.write,
                )
            elif host.version == "v2":
                self._backend = v2.V2Cgroups(fs, write=self.write)
            else:
                self._backend = v1.V1Cgroups(fs, write=self.write)
        return self._backend

    def devices(self) -> tuple[BlockDevice, ...]:
        """The disks under Docker's data root and ``data_paths``, re-read every minute (a data
        path may be mounted after the daemon starts)."""
        now = self.clock()
        if self._devices_at is None or now - self._devices_at > DEVICE_TTL:
            paths = [p for p in (self.host.docker_root, *self.config.data_paths) if p]
            self._devices, skipped = devices_for(paths, self.sys_root)
            self._devices_at = now
            for skip in skipped:
                if skip.path not in self._skipped_logged:
                    self._skipped_logged.add(skip.path)
                    log.warning("cgroups: no IO limits for %s: %s", skip.path, skip.reason)
        return self._devices

    # -- per user -----------------------------------------------------------------------------

    def cgroup_of(self, user: str, group: str | None) -> UserCgroup:
        return user_cgroup(
            self.config.root,
            group,
            user,
            self.host.driver,
            default_group=self.config.default_group,
        )

    def aggregate(self, limits: LimitSource) -> AggregateLimits:
        wants_io = any(limits.get(key) is not None for key in IO_KEYS)
        return aggregate_limits(limits, self.devices() if wants_io else ())

    def apply(self, cg: UserCgroup, limits: LimitSource) -> ApplyResult:
        """Write the user's aggregate limits where they differ from what is there."""
        return self.backend.apply(cg, self.aggregate(limits))

    def outside(self, cg: UserCgroup, workloads: Sequence[Workload]) -> list[Outside]:
        """The user's containers whose cgroup parent is not the user's cgroup."""
        found = []
        for workload in workloads:
            if workload.kind != "container":
                continue
            parent = self.parents.parent_of(workload.id)
            if parent is not None and not same_parent(parent, cg.parent):
                found.append(Outside(workload, parent))
        return found

    @_locked
    def enforce(
        self, user: str, limits: LimitSource, group: str | None, workloads: Sequence[Workload]
    ) -> list[Action]:
        """One cycle for one user: limits re-applied where changed, outsiders flagged.

        An ``outside_cgroup`` action is returned once per container (the flag is set on its
        workload every cycle, since workloads are built afresh each cycle).
        """
        cg = self.cgroup_of(user, group)
        result = self.apply(cg, limits)
        actions = []
        if result.written or result.commands:
            actions.append(Action(PLUGIN, "limits_applied", cg.parent, _summary(result)))
        if result.errors:
            actions.append(Action(PLUGIN, "limits_failed", cg.parent, "; ".join(result.errors)))
        outsiders = self.outside(cg, workloads)
        reported = self._reported.setdefault(cg.user, set())
        for item in outsiders:
            if OUTSIDE_FLAG not in item.workload.flags:
                item.workload.flags.append(OUTSIDE_FLAG)
            if item.workload.id not in reported:
                actions.append(
                    Action(PLUGIN, "outside_cgroup", item.workload.id, item.describe(cg))
                )
        self._reported[cg.user] = {item.workload.id for item in outsiders}
        return actions

    @_locked
    def prepare(
        self, spec: ContainerSpec, limits: LimitSource, group: str | None, *, hard: bool
    ) -> Refusal | None:
        """Put a container about to be created in its owner's cgroup, with its limits.

        The user's cgroup gets its aggregate limits now, before the container can start, so a
        first container never runs unconstrained until the next cycle.
        """
        cg = self.cgroup_of(spec.user, group)
        host = spec.body.get("HostConfig")
        if not isinstance(host, dict):
            host = spec.body["HostConfig"] = {}
        host["CgroupParent"] = cg.parent
        aggregate = self.aggregate(limits)
        per_container_io = aggregate.io if self.host.version == "v1" else ()
        changes = apply_container_limits(
            host, limits, per_container_io=per_container_io, host_cpus=self.host.cpus
        )
        if changes:
            log.info("cgroups: %s's container %s: %s", cg.user, spec.name, ", ".join(changes))
        if aggregate.memory_max is not None:
            reason = memory_refusal(
                aggregate.memory_max, self.parents.members(cg.parent), int(host.get("Memory") or 0)
            )
            if reason is not None:
                if hard:
                    return Refusal(reason, PLUGIN)
                log.warning("cgroups (soft mode, granted): %s: %s", cg.user, reason)
        result = self.backend.apply(cg, aggregate)
        if result.errors:
            problem = "; ".join(result.errors)
            log.error("cgroups: %s's limits could not be applied: %s", cg.user, problem)
            if hard and aggregate.any():
                return Refusal(
                    f"your resource limits could not be applied to {cg.parent} ({problem}); "
                    "ask an administrator",
                    PLUGIN,
                )
        return None

    @_locked
    def check(
        self, user: str, limits: LimitSource, group: str | None, workloads: Sequence[Workload]
    ) -> UserCheck:
        cg = self.cgroup_of(user, group)
        return UserCheck(
            cg.user,
            cg.parent,
            tuple(self.backend.check(cg, self.aggregate(limits))),
            tuple(self.outside(cg, workloads)),
        )


# -- one enforcer per runtime -----------------------------------------------------------------


def plugin_config(runtime: Runtime) -> CgroupsConfig:
    config = runtime.plugin_config(PLUGIN)
    return config if isinstance(config, CgroupsConfig) else CgroupsConfig()


def enforcer_for(runtime: Runtime) -> Enforcer:
    """This runtime's enforcer, rebuilt when the ``plugins.cgroups`` section changed."""
    holder: dict[str, Enforcer] = runtime.memo(MEMO_KEY, dict)
    config = plugin_config(runtime)
    current = holder.get("enforcer")
    if current is None or current.config != config:
        current = holder["enforcer"] = Enforcer(config, runtime.docker)
    return current


def install(runtime: Runtime, **kwargs: Any) -> Enforcer:
    """Build this runtime's enforcer with the given parts (``docker``, ``runner``, ``write``,
    ``sys_root``, ``clock``): how tests inject fakes."""
    holder: dict[str, Enforcer] = runtime.memo(MEMO_KEY, dict)
    docker = kwargs.pop("docker", None) or runtime.docker
    enforcer = holder["enforcer"] = Enforcer(plugin_config(runtime), docker, **kwargs)
    return enforcer
