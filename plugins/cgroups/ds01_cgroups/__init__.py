"""ds01-cgroups: one cgroup per user, with aggregate CPU, memory, pids and IO limits.

Every container created through ds01 gets its owner's cgroup as ``HostConfig.CgroupParent``
and per-container limits from the owner's effective limits; every cycle each user's cgroup is
kept at the user's aggregate limits (written only where they changed), and containers that are
not under their owner's cgroup are flagged. See README.md for the configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_cgroups.config import CgroupsConfig
from ds01_cgroups.detect import DetectionError
from ds01_cgroups.enforcer import OUTSIDE_FLAG, PLUGIN, Enforcer, enforcer_for, install
from ds01_core.api import (
    Action,
    ContainerSpec,
    EffectiveLimits,
    QuotaLine,
    Refusal,
    Workload,
    effective_limits,
    hookimpl,
)

if TYPE_CHECKING:
    import click

    from ds01_core.api import Operation, Runtime

__all__ = ["OUTSIDE_FLAG", "CgroupsConfig", "Enforcer", "enforcer_for", "install"]

log = logging.getLogger(__name__)


@hookimpl
def plugin_config_sections() -> Mapping[str, type]:
    return {PLUGIN: CgroupsConfig}


@hookimpl
def prepare_container(runtime: Runtime, spec: ContainerSpec) -> Refusal | None:
    """Owner's cgroup as the parent, per-container limits, memory admission."""
    limits = effective_limits(runtime, spec.user)
    try:
        return enforcer_for(runtime).prepare(
            spec, limits, limits.group, hard=runtime.config.enforcement.mode == "hard"
        )
    except DetectionError as exc:  # fail closed: a container outside its cgroup escapes limits
        return Refusal(f"cannot place the container in your cgroup: {exc}", PLUGIN)


@hookimpl
def enforce_limits(
    runtime: Runtime, user: str, limits: EffectiveLimits, workloads: Sequence[Workload]
) -> Sequence[Action]:
    """Re-apply the user's aggregate limits where they changed; flag outside containers."""
    return enforcer_for(runtime).enforce(user, limits, limits.group, workloads)


@hookimpl
def quota_usage(runtime: Runtime, user: str, limits: EffectiveLimits) -> Sequence[QuotaLine]:
    """Memory and processes in use by the user's cgroup, with the CPU and IO limits."""
    from ds01_cgroups.usage import quota_lines

    return quota_lines(enforcer_for(runtime), user, limits)


@hookimpl
def add_cli_commands(cli: click.Group) -> None:
    from ds01_cgroups.cli import add_to

    add_to(cli)


@hookimpl
def service_operations() -> Sequence[Operation]:
    """``cgroups.check`` (admins): the work behind ``ds01 admin cgroups check``."""
    from ds01_cgroups.services import OPERATIONS

    return OPERATIONS
