"""The plugin manager: built-ins, entry points, enable/disable/required, order, typed calls.

:func:`make_plugin_host` builds a fresh manager every time it is called (one per process, one
per test); nothing is registered at import time. Loading never stops at the first broken
plugin: each one ends up active, disabled, failed or missing, with the reason, so
``ds01 plugins`` can show the admin exactly what happened. A plugin whose distribution requires
another core version (``ds01>=…,<…``) is not imported: it fails with both versions named. Only
a plugin the admin marked ``required`` stops start-up.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import attrs
import pluggy

from ds01_core import __version__
from ds01_core.framework import hookspecs
from ds01_core.framework.core_version import unmet_core_requirement
from ds01_core.framework.hooks import (
    Collected,
    HookFailure,
    Hooks,
    first_refusal,
    unsupported_wrappers,
)
from ds01_core.framework.hookspecs import PROJECT

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ds01"

#: Built-in plugins, registered before any entry point, as (name, module path). They are
#: ordinary plugins: an admin can disable any of them by name.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("docker-detector", "ds01_core.builtin.docker_detector"),
    ("gpu-process-detector", "ds01_core.builtin.gpu_process_detector"),
    ("gpu-allocations", "ds01_core.builtin.gpu_allocations"),
    ("label-migration", "ds01_core.builtin.legacy_label_recorder"),
    ("whole-gpu-allocator", "ds01_core.builtin.whole_gpu"),
    ("idle-policy", "ds01_core.builtin.idle_policy"),
    ("event-notifier", "ds01_core.builtin.event_notifier"),
    ("bare-metal", "ds01_core.builtin.bare_metal_watch"),
)

Status = Literal["active", "disabled", "failed", "missing"]


@attrs.define
class PluginRecord:
    """What ``ds01 plugins`` shows about one plugin."""

    name: str
    distribution: str
    version: str
    status: Status
    builtin: bool = False
    hooks: list[str] = attrs.Factory(list)
    error: str | None = None
    required: bool = False
    plugin: Any = attrs.field(default=None, repr=False, eq=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "builtin": self.builtin,
            "required": self.required,
            "hooks": self.hooks,
            "error": self.error,
        }


class PluginStartupError(Exception):
    """A required plugin is missing or broken, or the plugins disagree: ds01 must not start."""


@attrs.frozen
class EntryPointSource:
    """Where plugins come from: a callable returning entry points (real metadata by default)."""

    load: Callable[[], Iterable[md.EntryPoint]]

    @classmethod
    def installed(cls) -> EntryPointSource:
        return cls(lambda: md.entry_points(group=ENTRY_POINT_GROUP))


def _distribution_of(ep: md.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", "?"
    return dist.metadata["Name"] or dist.name, dist.version


def _core_distribution() -> tuple[str, str]:
    """Built-ins ship with the core: its distribution and version (asking importlib for the
    owner of each module costs a scan of every installed distribution)."""
    return PROJECT, __version__


class PluginHost:
    """A plugin manager plus what is known about each plugin and the typed hook calls."""

    def __init__(self, pm: pluggy.PluginManager, records: list[PluginRecord]):
        self.pm = pm
        self.records = records
        self.hooks = Hooks(pm, on_setup_failure=self.disable_failed)

    def record(self, name: str) -> PluginRecord | None:
        return next((r for r in self.records if r.name == name), None)

    @property
    def active(self) -> list[PluginRecord]:
        return [r for r in self.records if r.status == "active"]

    def inactive_names(self) -> set[str]:
        return {r.name for r in self.records if r.status != "active"}

    def disable_failed(self, failures: Sequence[HookFailure]) -> None:
        """Plugins that raised while being set up (``plugin_config_sections``, ``configure``)
        are marked failed and unregistered, so no later hook runs them half-configured; a
        required one stops start-up."""
        problems = []
        for failure in failures:
            record = self.record(failure.plugin)
            if record is None or record.status != "active":
                continue
            _fail(self.pm, record, f"{failure.hook} raised {failure.message}")
            if record.required:
                problems.append(
                    f"required plugin {record.name!r} ({record.distribution} {record.version}) "
                    f"failed in {failure.hook}: {failure.message}"
                )
        if problems:
            raise PluginStartupError("; ".join(problems))

    def config_sections(self) -> dict[str, type]:
        """Every plugin's config section classes; a name claimed twice is a start-up error."""
        sections: dict[str, type] = {}
        owners: dict[str, str] = {}
        for plugin, declared in self.hooks.plugin_config_sections():
            for name, cls in declared.items():
                if name in sections:
                    raise PluginStartupError(
                        f"plugins {owners[name]!r} and {plugin!r} both declare the config "
                        f"section 'plugins.{name}'; disable one of them"
                    )
                sections[name] = cls
                owners[name] = plugin
        return sections


def _fail(pm: pluggy.PluginManager, record: PluginRecord, error: str) -> None:
    """Mark a loaded plugin failed and take it out of every hook."""
    log.error("plugin %r disabled: %s", record.name, error)
    record.status, record.error, record.hooks = "failed", error, []
    if pm.is_registered(record.plugin):
        pm.unregister(record.plugin)


def make_plugin_host(
    *,
    disabled: Sequence[str] = (),
    required: Sequence[str] = (),
    order: Sequence[str] = (),
    builtins: Sequence[tuple[str, str]] = BUILTIN_PLUGINS,
    entry_points: EntryPointSource | None = None,
    extra: Sequence[tuple[str, object]] = (),
    load_entry_points: bool = True,
) -> PluginHost:
    """Build a fresh plugin manager.

    :param disabled: plugin names (entry-point names, or built-in names) not to load.
    :param required: plugin names that must load; if one is missing or fails,
        :class:`PluginStartupError` is raised with every such problem.
    :param order: plugin names to run first, in this order, within each hook (``tryfirst`` and
        ``trylast`` still apply).
    :param builtins: built-in plugins as (name, module path).
    :param entry_points: where third-party plugins are found; the installed distributions'
        ``ds01`` entry points by default.
    :param extra: already-imported plugin objects as (name, object), registered after the
        entry points (tests and embedding use this).
    :param load_entry_points: ``False`` for ``--no-plugins``: only built-ins and ``extra``.
    """
    pm = pluggy.PluginManager(PROJECT)
    for group in hookspecs.GROUPS:
        pm.add_hookspecs(group)
    disabled_set = set(disabled)
    records: list[PluginRecord] = []
    loaded: list[PluginRecord] = []

    for name, module_path in builtins:
        distribution, version = _core_distribution()
        record = PluginRecord(name, distribution, version, "active", builtin=True)
        if name in disabled_set:
            record.status = "disabled"
        else:
            try:
                record.plugin = importlib.import_module(module_path)
                loaded.append(record)
            except Exception as exc:  # a broken built-in is still reported, not fatal
                record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"
        records.append(record)

    if load_entry_points:
        source = entry_points or EntryPointSource.installed()
        seen: set[str] = {r.name for r in records}
        for ep in sorted(source.load(), key=lambda e: e.name):
            distribution, version = _distribution_of(ep)
            record = PluginRecord(ep.name, distribution, version, "active")
            if ep.name in seen:
                record.status = "failed"
                record.error = f"a plugin named {ep.name!r} is already loaded; names must be unique"
                records.append(record)
                continue
            seen.add(ep.name)
            if ep.name in disabled_set:
                record.status = "disabled"
            elif unmet := unmet_core_requirement(getattr(ep, "dist", None), __version__):
                record.status, record.error = "failed", unmet
                log.error(
                    "plugin %r (distribution %s %s): %s", ep.name, distribution, version, unmet
                )
            else:
                try:
                    record.plugin = ep.load()
                    loaded.append(record)
                except Exception as exc:
                    record.status = "failed"
                    record.error = f"{type(exc).__name__}: {exc}"
                    log.error(
                        "plugin %r (distribution %s %s) failed to import: %s",
                        ep.name,
                        distribution,
                        version,
                        record.error,
                    )
            records.append(record)

    for name, obj in extra:
        record = PluginRecord(
            name, getattr(obj, "__module__", "?") or "?", "?", "active", plugin=obj
        )
        if name in disabled_set:
            record.status = "disabled"
        else:
            loaded.append(record)
        records.append(record)

    # pluggy calls the most recently registered implementation first: register in reverse of
    # the wanted order.
    rank = {name: i for i, name in enumerate(order)}
    wanted = sorted(loaded, key=lambda r: (rank.get(r.name, len(rank)), loaded.index(r)))
    for record in reversed(wanted):
        try:
            pm.register(record.plugin, name=record.name)
        except Exception as exc:
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}"
            log.error("plugin %r could not be registered: %s", record.name, record.error)

    for record in records:
        record.required = record.name in required
        wrappers = unsupported_wrappers(pm, record.plugin) if record.status == "active" else []
        if wrappers:
            _fail(
                pm,
                record,
                f"hook wrappers are not supported on {', '.join(wrappers)}: ds01 calls each "
                "implementation of a hook that is not firstresult on its own",
            )
        if record.status == "active":
            record.hooks = sorted(caller.name for caller in pm.get_hookcallers(record.plugin) or [])

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        culprit = exc.plugin
        owner = next((r for r in records if r.plugin is culprit), None)
        label = owner.name if owner else repr(culprit)
        raise PluginStartupError(
            f"plugin {label!r} implements a hook that does not exist: {exc}. "
            "Check the spelling against ds01_core/framework/hookspecs/ or disable the plugin."
        ) from exc

    problems = []
    by_name = {r.name: r for r in records}
    for name in required:
        named = by_name.get(name)
        if named is None:
            problems.append(f"required plugin {name!r} is not installed (install its distribution)")
        elif named.status == "failed":
            problems.append(
                f"required plugin {name!r} ({named.distribution} {named.version}) failed to "
                f"load: {named.error}"
            )
    if problems:
        raise PluginStartupError("; ".join(problems))
    for name in order:
        if name not in by_name:
            log.warning("plugins.order names %r, which is not installed", name)
    return PluginHost(pm, records)


__all__ = [
    "BUILTIN_PLUGINS",
    "Collected",
    "EntryPointSource",
    "HookFailure",
    "Hooks",
    "PluginHost",
    "PluginRecord",
    "PluginStartupError",
    "first_refusal",
    "make_plugin_host",
]
