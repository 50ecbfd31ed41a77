"""The core's operations, gathered from the service modules (plugins add theirs by hook)."""

from __future__ import annotations

from ds01_core.services import (
    admin_host,
    admin_limits,
    config_view,
    containers,
    events,
    gpus,
    quota,
    system,
    workloads,
)
from ds01_core.services.operations import Operation


def core_operations() -> tuple[Operation, ...]:
    return (
        *system.OPERATIONS,
        *quota.OPERATIONS,
        *containers.OPERATIONS,
        *events.OPERATIONS,
        *gpus.OPERATIONS,
        *workloads.OPERATIONS,
        *admin_limits.OPERATIONS,
        *admin_host.OPERATIONS,
        *config_view.OPERATIONS,
    )
