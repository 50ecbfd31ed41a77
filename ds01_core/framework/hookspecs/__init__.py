"""Hook specifications: every point where a plugin can take part in ds01.

A plugin is any object or module with functions named like the hooks below and decorated with
:data:`hookimpl`. Built-in plugins and third-party plugins (entry point group ``ds01``) are
equal. Plugins may accept any subset of a hook's arguments, by name.

The specifications are grouped by concern, one module each (:data:`GROUPS`, each registered
with the plugin manager): :mod:`~ds01_core.framework.hookspecs.plugin_setup` (configuration,
CLI commands, service operations, the daemon's services),
:mod:`~ds01_core.framework.hookspecs.users` (a user's group), :mod:`~ds01_core.framework.hookspecs.cycle` (the daemon's cycle),
:mod:`~ds01_core.framework.hookspecs.notices` (notices and quota lines) and
:mod:`~ds01_core.framework.hookspecs.create_path` (GPU allocation and reservations, container admission, image builds, the doctor's checks).
This package re-exports every hook, with :data:`hookimpl` and :data:`PROJECT`.

The core never calls ``pm.hook.<name>`` directly outside :mod:`ds01_core.framework.hooks`; it goes
through the typed methods of :class:`ds01_core.framework.hooks.Hooks` (re-exported by
:mod:`ds01_core.framework.manager`), so each call site is checked and searchable.

Failures: a hook that is not firstresult is called one implementation at a time, so a plugin
that raises costs only its own answer; the other plugins still run and their results are kept.
Each hook below says what the failure means ("If an implementation raises: …"); where it
happens in the daemon's cycle it is logged, listed in the cycle's errors and written to the
audit log as a ``plugin.failed`` event (details: ``plugin``, ``hook``, ``error``). Hook
wrappers (``wrapper=True``/``hookwrapper=True``) are only allowed on firstresult hooks: a
plugin with a wrapper on another hook is refused at start-up (``ds01 plugins`` shows it as
failed).

Ordering: within a hook, implementations marked ``tryfirst`` run first and ``trylast`` last;
between those, plugins run in the order the admin lists them in ``plugins.order`` and then in
load order (built-ins before entry points).
"""

from __future__ import annotations

from types import ModuleType

from ds01_core.framework.hookspecs import create_path, cycle, notices, plugin_setup, users
from ds01_core.framework.hookspecs.create_path import (
    allocate_gpu,
    check_build,
    doctor_checks,
    prepare_container,
    reserved_gpu_slots,
)
from ds01_core.framework.hookspecs.cycle import (
    cycle_finished,
    cycle_steps,
    detect_workloads,
    enforce_limits,
    on_idle,
    reconcile,
)
from ds01_core.framework.hookspecs.markers import PROJECT, hookimpl, hookspec
from ds01_core.framework.hookspecs.notices import notify, quota_usage
from ds01_core.framework.hookspecs.plugin_setup import (
    add_cli_commands,
    configure,
    daemon_services,
    plugin_config_sections,
    service_operations,
)
from ds01_core.framework.hookspecs.users import explain_user_group, user_group, user_known

#: Every module of hook specifications, in the order they are registered.
GROUPS: tuple[ModuleType, ...] = (plugin_setup, users, cycle, notices, create_path)

__all__ = [
    "GROUPS",
    "PROJECT",
    "add_cli_commands",
    "allocate_gpu",
    "check_build",
    "configure",
    "cycle_finished",
    "cycle_steps",
    "daemon_services",
    "detect_workloads",
    "doctor_checks",
    "enforce_limits",
    "explain_user_group",
    "hookimpl",
    "hookspec",
    "notify",
    "on_idle",
    "plugin_config_sections",
    "prepare_container",
    "quota_usage",
    "reconcile",
    "reserved_gpu_slots",
    "service_operations",
    "user_group",
    "user_known",
]
