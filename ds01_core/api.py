"""The one module a ds01 plugin imports from: the core's public API, and its stability promise.

Everything in ``__all__`` keeps its name, its import path (``from ds01_core.api import …``) and
its meaning within a major version of the ``ds01`` distribution (while ds01 is 0.x, within a
minor version: ``0.1`` → ``0.2`` counts as major). Within that range a name may gain optional
parameters, fields with defaults or new members, and nothing else; renaming, removing or
changing one waits for the next major version. Everything else under ``ds01_core`` is internal
and may change in any release, which is why a plugin declares a bounded core version
(``dependencies = ["ds01>=0.1,<0.2"]``) and why a test refuses a shipped plugin that imports
anything but this module. The hooks a plugin implements are specified (and versioned the same
way) in :mod:`ds01_core.framework.hookspecs`; their arguments are the types below.

Importing this module costs next to nothing: each name is imported from the core module that
defines it the first time a plugin asks for it, so a plugin that uses only the model never
loads the CLI or Docker's SDK.

Implementing hooks
    ``hookimpl``: the marker for hook implementations (``@hookimpl``, ``@hookimpl(tryfirst=True)``).
    ``Runtime``: what most hooks get: the configuration (``plugin_config(name)`` for a plugin's
    own section), the state store, the audit log (``events``), the GPUs, Docker, ``now()``.

The model (what hooks take and return)
    ``Workload``: a container or host process and what it holds; ``Gpu``: a physical GPU;
    ``GpuSlot``: a GPU or MIG slice; ``GpuTelemetry``, ``GpuHealth``, ``HealthReason``: a
    GPU's sensors and error counters in one cycle, and the health concluded from them; ``GpuRequest``, ``Allocation``, ``AllocationDecision``: asking for, holding and
    deciding GPUs; ``ContainerSpec``, ``Refusal``: a container about to be created, and a
    plugin's "no"; ``Action``: what enforcement did; ``Event``: an audit-log entry;
    ``Notice``, ``DeliveryResult``: a message to a user and how its delivery went;
    ``EffectiveLimits``: one user's resolved limits; ``QuotaLine``: one line of ``ds01 quota``;
    ``utc_text``: the one way a moment is written (``2026-11-30T12:00:00Z``); ``parse_time``:
    the one way a typed moment is read (``2026-11-22``, ``…T10:00Z``, or an age like ``2h``).

Units and configuration fields
    ``Duration``, ``TimeLimit``, ``ByteSize``: typed config values written as ``90s``/``2h``,
    ``never``, ``16GiB``; ``format_duration``, ``format_bytes``: the same values for people;
    ``AbsPath``: a config field that must hold an absolute path; ``host_cpu_count``: the CPUs
    this process may run on (what Docker counts for ``--cpus``).

Users and limits
    ``normalize_username``: the one form user names are compared in; ``safe_name``: a user
    name as a file or cgroup name; ``uid_for_username``, ``username_for_uid``: the passwd
    database, None when unknown; ``effective_limits``: a user's limits now (configuration,
    group from the directory plugins, stored overrides); ``Policy``: the idle and runtime
    policy one container gets (what ``on_idle`` receives).

The cycle
    ``current_workloads``: every workload the detectors see now, merged as one cycle sees them;
    ``live_allocations``: the GPU allocations not released; ``allocation_history``: allocations
    by id, released ones included (to follow each from allocation to release); ``gpu_queue_users``: who waits for
    GPUs (one entry per ticket, in queue order); ``quota_lines``: every plugin's ``ds01 quota``
    lines for a user (what the cgroups and disk-quota plugins measure);
    ``users_to_enforce``: the users a cycle enforces limits for; ``tell_user``: deliver a
    ``Notice`` through every notify plugin, each delivery written to the audit log;
    ``CycleStep``: a named step a plugin adds to the daemon's cycle (``cycle_steps`` hook), and
    ``CycleContext``: what a step's function gets (runtime, this cycle's workloads, report);
    ``CycleReport``: what a cycle saw and did (``cycle_finished`` hook); ``DaemonService``:
    something a plugin runs inside ``ds01d`` (``daemon_services`` hook);
    ``read_process_telemetry``: what ``ds01-gateway`` and ``ds01-api`` have counted (gateway
    requests and denials, allocation latency), from the files they write under
    ``paths.runtime_dir`` (for an exporter in ``ds01d``); ``TelemetryRegistry``: counters
    and gauges a plugin fills, and ``write_telemetry``: write one such snapshot atomically
    where ``read_process_telemetry`` finds it (e.g. the accounting plugin's energy per user,
    for the exporter).

The service layer (operations for the CLI and the API socket)
    ``Operation``, ``Param``: declare an operation (``service_operations`` hook);
    ``ServiceContext``: what an operation's function gets (``runtime``, ``caller``,
    ``require_admin()``, ``target_user()``); ``Caller``: who is asking; ``ServiceError`` and
    its kinds ``Invalid``, ``Forbidden``, ``NotFound``, ``Conflict``, ``Unavailable``, ``Busy``:
    a refusal, one HTTP status and one exit code each; ``find_user_container``: one of a
    user's containers by name or id prefix, as a service error when there is none;
    ``create_container``: a container for a user through ds01's admission, for a service that
    creates one on a user's behalf (a Slurm job's, with the exact GPUs Slurm gave it);
    ``release_gpus``: release a container's GPUs at once (a service stopped it);
    ``DoctorFinding``: one result of a plugin's ``ds01 admin doctor`` check.
    For another transport of the same operations (the web plugin's REST API):
    ``operation_table``: the process's operations (``route(method, path)``, iteration);
    ``invoke_operation``: run one for a caller, parameters checked and the admin rule applied;
    ``to_json``: a result as the API socket writes it; ``parameters_from_json``: a request
    body's operation parameters, refused in the socket's words; ``load_runtime``,
    ``ThreadedRuntime``: a runtime whose state store connection is per thread, for a threaded
    server.

Docker
    ``DockerAdapter``: the core's Docker client (``runtime.docker``); ``DockerError``: its one
    error (``status`` None when the engine cannot be reached); ``user_repository``,
    ``namespace_owner``, ``image_owner``: a user's image name (``ds01/<user>/NAME``), whose one is.

CLI commands (``add_cli_commands`` hook)
    ``CliState``, ``pass_state``: the state ``@pass_state`` hands a command, and its way to the
    services (``state.call(operation, **params)``); ``json_option``, ``print_json``,
    ``print_table``: ``--json`` and tables the way every ds01 command prints them; ``fail``:
    ``Error: …`` on stderr and an exit code; ``add_create_env_flag``: a flag of
    ``ds01 container create`` that sets an environment entry in the new container (a
    plugin's opt-out switch its ``prepare_container`` reads, e.g. ``--no-mlflow``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ds01_core.cycle.notices import tell_user as tell_user
    from ds01_core.cycle.pipeline import users_to_enforce as users_to_enforce
    from ds01_core.cycle.steps import CycleContext as CycleContext
    from ds01_core.cycle.steps import CycleReport as CycleReport
    from ds01_core.cycle.steps import CycleStep as CycleStep
    from ds01_core.domain.audit_log import parse_time as parse_time
    from ds01_core.domain.config.checks import AbsPath as AbsPath
    from ds01_core.domain.config.checks import host_cpu_count as host_cpu_count
    from ds01_core.domain.docker_engine import DockerAdapter as DockerAdapter
    from ds01_core.domain.docker_engine import DockerError as DockerError
    from ds01_core.domain.doctor_finding import DoctorFinding as DoctorFinding
    from ds01_core.domain.gpu.health import GpuHealth as GpuHealth
    from ds01_core.domain.gpu.health import GpuTelemetry as GpuTelemetry
    from ds01_core.domain.gpu.health import HealthReason as HealthReason
    from ds01_core.domain.images import image_owner as image_owner
    from ds01_core.domain.images import namespace_owner as namespace_owner
    from ds01_core.domain.images import user_repository as user_repository
    from ds01_core.domain.model import Action as Action
    from ds01_core.domain.model import Allocation as Allocation
    from ds01_core.domain.model import AllocationDecision as AllocationDecision
    from ds01_core.domain.model import ContainerSpec as ContainerSpec
    from ds01_core.domain.model import DeliveryResult as DeliveryResult
    from ds01_core.domain.model import EffectiveLimits as EffectiveLimits
    from ds01_core.domain.model import Event as Event
    from ds01_core.domain.model import Gpu as Gpu
    from ds01_core.domain.model import GpuRequest as GpuRequest
    from ds01_core.domain.model import GpuSlot as GpuSlot
    from ds01_core.domain.model import Notice as Notice
    from ds01_core.domain.model import QuotaLine as QuotaLine
    from ds01_core.domain.model import Refusal as Refusal
    from ds01_core.domain.model import Workload as Workload
    from ds01_core.domain.model import utc_text as utc_text
    from ds01_core.domain.policy import Policy as Policy
    from ds01_core.domain.units import ByteSize as ByteSize
    from ds01_core.domain.units import Duration as Duration
    from ds01_core.domain.units import TimeLimit as TimeLimit
    from ds01_core.domain.units import format_bytes as format_bytes
    from ds01_core.domain.units import format_duration as format_duration
    from ds01_core.domain.user_limits import effective_limits as effective_limits
    from ds01_core.domain.users import normalize_username as normalize_username
    from ds01_core.domain.users import safe_name as safe_name
    from ds01_core.domain.users import uid_for_username as uid_for_username
    from ds01_core.domain.users import username_for_uid as username_for_uid
    from ds01_core.framework.daemon_services import DaemonService as DaemonService
    from ds01_core.framework.hookspecs import hookimpl as hookimpl
    from ds01_core.framework.runtime import Runtime as Runtime
    from ds01_core.framework.runtime import load_runtime as load_runtime
    from ds01_core.framework.telemetry import TelemetryRegistry as TelemetryRegistry
    from ds01_core.framework.telemetry import read_process_telemetry as read_process_telemetry
    from ds01_core.framework.telemetry import write_telemetry as write_telemetry
    from ds01_core.services.caller import Caller as Caller
    from ds01_core.services.catalogue import operation_table as operation_table
    from ds01_core.services.errors import Busy as Busy
    from ds01_core.services.errors import Conflict as Conflict
    from ds01_core.services.errors import Forbidden as Forbidden
    from ds01_core.services.errors import Invalid as Invalid
    from ds01_core.services.errors import NotFound as NotFound
    from ds01_core.services.errors import ServiceError as ServiceError
    from ds01_core.services.errors import Unavailable as Unavailable
    from ds01_core.services.operations import Operation as Operation
    from ds01_core.services.operations import Param as Param
    from ds01_core.services.operations import ServiceContext as ServiceContext
    from ds01_core.services.operations import invoke_operation as invoke_operation
    from ds01_core.services.operations import parameters_from_json as parameters_from_json
    from ds01_core.services.operations import to_json as to_json
    from ds01_core.services.plugin_functions import allocation_history as allocation_history
    from ds01_core.services.plugin_functions import create_container as create_container
    from ds01_core.services.plugin_functions import current_workloads as current_workloads
    from ds01_core.services.plugin_functions import find_user_container as find_user_container
    from ds01_core.services.plugin_functions import gpu_queue_users as gpu_queue_users
    from ds01_core.services.plugin_functions import live_allocations as live_allocations
    from ds01_core.services.plugin_functions import quota_lines as quota_lines
    from ds01_core.services.plugin_functions import release_gpus as release_gpus
    from ds01_core.transports.api_socket.server import ThreadedRuntime as ThreadedRuntime
    from ds01_core.transports.cli.container_cmd import add_create_env_flag as add_create_env_flag
    from ds01_core.transports.cli.output import fail as fail
    from ds01_core.transports.cli.output import json_option as json_option
    from ds01_core.transports.cli.output import print_json as print_json
    from ds01_core.transports.cli.output import print_table as print_table
    from ds01_core.transports.cli.state import CliState as CliState
    from ds01_core.transports.cli.state import pass_state as pass_state

#: Where each re-exported name is defined; imported on first use (see the module docstring).
_SOURCES: dict[str, str] = {
    # implementing hooks
    "hookimpl": "ds01_core.framework.hookspecs",
    "Runtime": "ds01_core.framework.runtime",
    # the model
    "Action": "ds01_core.domain.model",
    "Allocation": "ds01_core.domain.model",
    "AllocationDecision": "ds01_core.domain.model",
    "ContainerSpec": "ds01_core.domain.model",
    "DeliveryResult": "ds01_core.domain.model",
    "EffectiveLimits": "ds01_core.domain.model",
    "Event": "ds01_core.domain.model",
    "Gpu": "ds01_core.domain.model",
    "GpuHealth": "ds01_core.domain.gpu.health",
    "GpuTelemetry": "ds01_core.domain.gpu.health",
    "HealthReason": "ds01_core.domain.gpu.health",
    "GpuRequest": "ds01_core.domain.model",
    "GpuSlot": "ds01_core.domain.model",
    "Notice": "ds01_core.domain.model",
    "QuotaLine": "ds01_core.domain.model",
    "Refusal": "ds01_core.domain.model",
    "Workload": "ds01_core.domain.model",
    "utc_text": "ds01_core.domain.model",
    "parse_time": "ds01_core.domain.audit_log",
    # units and configuration fields
    "ByteSize": "ds01_core.domain.units",
    "Duration": "ds01_core.domain.units",
    "TimeLimit": "ds01_core.domain.units",
    "format_bytes": "ds01_core.domain.units",
    "format_duration": "ds01_core.domain.units",
    "AbsPath": "ds01_core.domain.config.checks",
    "host_cpu_count": "ds01_core.domain.config.checks",
    # users and limits
    "normalize_username": "ds01_core.domain.users",
    "safe_name": "ds01_core.domain.users",
    "uid_for_username": "ds01_core.domain.users",
    "username_for_uid": "ds01_core.domain.users",
    "effective_limits": "ds01_core.domain.user_limits",
    "Policy": "ds01_core.domain.policy",
    # the cycle
    "users_to_enforce": "ds01_core.cycle.pipeline",
    "tell_user": "ds01_core.cycle.notices",
    "CycleStep": "ds01_core.cycle.steps",
    "CycleContext": "ds01_core.cycle.steps",
    "CycleReport": "ds01_core.cycle.steps",
    "DaemonService": "ds01_core.framework.daemon_services",
    "read_process_telemetry": "ds01_core.framework.telemetry",
    "TelemetryRegistry": "ds01_core.framework.telemetry",
    "write_telemetry": "ds01_core.framework.telemetry",
    # the service layer
    "Operation": "ds01_core.services.operations",
    "Param": "ds01_core.services.operations",
    "ServiceContext": "ds01_core.services.operations",
    "Caller": "ds01_core.services.caller",
    "ServiceError": "ds01_core.services.errors",
    "Invalid": "ds01_core.services.errors",
    "Forbidden": "ds01_core.services.errors",
    "NotFound": "ds01_core.services.errors",
    "Conflict": "ds01_core.services.errors",
    "Unavailable": "ds01_core.services.errors",
    "Busy": "ds01_core.services.errors",
    # Docker
    "DockerAdapter": "ds01_core.domain.docker_engine",
    "DockerError": "ds01_core.domain.docker_engine",
    "image_owner": "ds01_core.domain.images",
    "namespace_owner": "ds01_core.domain.images",
    "user_repository": "ds01_core.domain.images",
    # CLI commands
    "CliState": "ds01_core.transports.cli.state",
    "pass_state": "ds01_core.transports.cli.state",
    "json_option": "ds01_core.transports.cli.output",
    "print_json": "ds01_core.transports.cli.output",
    "print_table": "ds01_core.transports.cli.output",
    "fail": "ds01_core.transports.cli.output",
    "add_create_env_flag": "ds01_core.transports.cli.container_cmd",
    # functions offered to plugins (over the core's internals)
    "current_workloads": "ds01_core.services.plugin_functions",
    "find_user_container": "ds01_core.services.plugin_functions",
    "live_allocations": "ds01_core.services.plugin_functions",
    "allocation_history": "ds01_core.services.plugin_functions",
    "gpu_queue_users": "ds01_core.services.plugin_functions",
    "quota_lines": "ds01_core.services.plugin_functions",
    "create_container": "ds01_core.services.plugin_functions",
    "release_gpus": "ds01_core.services.plugin_functions",
    "DoctorFinding": "ds01_core.domain.doctor_finding",
    # another transport of the operations
    "operation_table": "ds01_core.services.catalogue",
    "invoke_operation": "ds01_core.services.operations",
    "to_json": "ds01_core.services.operations",
    "parameters_from_json": "ds01_core.services.operations",
    "load_runtime": "ds01_core.framework.runtime",
    "ThreadedRuntime": "ds01_core.transports.api_socket.server",
}


if not TYPE_CHECKING:  # type checkers see the imports above, and an unknown name stays an error

    def __getattr__(name: str) -> Any:
        source = _SOURCES.get(name)
        if source is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        globals()[name] = value  # once: later look-ups are plain module attributes
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [  # noqa: RUF022 -- grouped as in the docstring, sorted within each group
    # implementing hooks
    "Runtime",
    "hookimpl",
    # the model
    "Action",
    "Allocation",
    "AllocationDecision",
    "ContainerSpec",
    "DeliveryResult",
    "EffectiveLimits",
    "Event",
    "Gpu",
    "GpuHealth",
    "GpuRequest",
    "GpuSlot",
    "GpuTelemetry",
    "HealthReason",
    "Notice",
    "QuotaLine",
    "Refusal",
    "Workload",
    "utc_text",
    "parse_time",
    # units and configuration fields
    "AbsPath",
    "ByteSize",
    "Duration",
    "TimeLimit",
    "format_bytes",
    "format_duration",
    "host_cpu_count",
    # users and limits
    "Policy",
    "effective_limits",
    "normalize_username",
    "safe_name",
    "uid_for_username",
    "username_for_uid",
    # the cycle
    "CycleContext",
    "CycleReport",
    "CycleStep",
    "DaemonService",
    "TelemetryRegistry",
    "current_workloads",
    "allocation_history",
    "gpu_queue_users",
    "live_allocations",
    "quota_lines",
    "read_process_telemetry",
    "tell_user",
    "users_to_enforce",
    "write_telemetry",
    # the service layer
    "Busy",
    "Caller",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "Operation",
    "Param",
    "ServiceContext",
    "ServiceError",
    "Unavailable",
    "find_user_container",
    "create_container",
    "release_gpus",
    "DoctorFinding",
    "ThreadedRuntime",
    "invoke_operation",
    "load_runtime",
    "operation_table",
    "to_json",
    "parameters_from_json",
    # Docker
    "DockerAdapter",
    "DockerError",
    "image_owner",
    "namespace_owner",
    "user_repository",
    # CLI commands
    "CliState",
    "add_create_env_flag",
    "fail",
    "json_option",
    "pass_state",
    "print_json",
    "print_table",
]
