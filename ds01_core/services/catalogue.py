"""The catalogue: every operation of a process (the core's and its plugins'), called by name.

The service modules declare their operations with :mod:`ds01_core.services.operations`; this
module gathers them (so ``operations`` never imports the modules that import it) and adds the
active plugins' through the ``service_operations`` hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ds01_core.services import (
    admin_gpu,
    admin_host,
    admin_limits,
    admin_overview,
    config_view,
    container_inspect,
    containers,
    events,
    gpu_available,
    gpu_health,
    gpu_selftest,
    gpus,
    quota,
    system,
    workloads,
)
from ds01_core.services.operations import (
    Operation,
    OperationTable,
    ServiceContext,
    invoke,
    jsonable,
)

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


def core_operations() -> tuple[Operation, ...]:
    """The core's own operations, in the order ``ds01`` documents them."""
    return (
        *system.OPERATIONS,
        *quota.OPERATIONS,
        *containers.OPERATIONS,
        *container_inspect.OPERATIONS,
        *events.OPERATIONS,
        *gpus.OPERATIONS,
        *gpu_available.OPERATIONS,
        *gpu_health.OPERATIONS,
        *gpu_selftest.OPERATIONS,
        *workloads.OPERATIONS,
        *admin_limits.OPERATIONS,
        *admin_host.OPERATIONS,
        *admin_gpu.OPERATIONS,
        *admin_overview.OPERATIONS,
        *config_view.OPERATIONS,
    )


def operation_table(runtime: Runtime) -> OperationTable:
    """The core's operations plus those the active plugins declare (built once per runtime)."""

    def build() -> OperationTable:
        ops: list[Operation] = list(core_operations())
        ops.extend(runtime.hooks.service_operations())
        return OperationTable(ops)

    return runtime.memo("service-operations", build)


def call(ctx: ServiceContext, operation: str, /, **params: Any) -> Any:
    """Call an operation by name in this process; the result is JSON-shaped like the socket's
    (streams are returned as they are)."""
    op = operation_table(ctx.runtime).get(operation)
    result = invoke(ctx, op, params)
    return result if op.stream else jsonable(result)


__all__ = ["call", "core_operations", "operation_table"]
