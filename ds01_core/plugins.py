"""The plugin manager: built-ins, entry points, enable/disable/required, order, typed calls.

:func:`make_plugin_host` builds a fresh manager every time it is called (one per process, one
per test); nothing is registered at import time. Loading never stops at the first broken
plugin: each one ends up active, disabled, failed or missing, with the reason, so
``ds01 plugins`` can show the admin exactly what happened. Only a plugin the admin marked
``required`` stops start-up.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs
import pluggy

from ds01_core import hookspecs
from ds01_core.hookspecs import PROJECT

if TYPE_CHECKING:
    import click

    from ds01_core.model import (
        Action,
        Allocation,
        AllocationDecision,
        ContainerSpec,
        DeliveryResult,
        EffectiveLimits,
        Event,
        GpuRequest,
        GpuSlot,
        Notice,
        QuotaLine,
        Refusal,
        Workload,
    )
    from ds01_core.runtime import Runtime

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ds01"

#: Built-in plugins, registered before any entry point, as (name, module path). They are
#: ordinary plugins: an admin can disable any of them by name.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("docker-detector", "ds01_core.builtin.docker_detector"),
    ("gpu-process-detector", "ds01_core.builtin.gpu_process_detector"),
    ("gpu-allocations", "ds01_core.builtin.gpu_allocations"),
    ("label-migration", "ds01_core.builtin.label_migration"),
    ("whole-gpu-allocator", "ds01_core.builtin.whole_gpu"),
    ("idle-policy", "ds01_core.builtin.idle_policy"),
    ("event-notifier", "ds01_core.builtin.event_notifier"),
    ("bare-metal", "ds01_core.builtin.bare_metal"),
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
    from ds01_core import __version__

    return PROJECT, __version__


class PluginHost:
    """A plugin manager plus what is known about each plugin and the typed hook calls."""

    def __init__(self, pm: pluggy.PluginManager, records: list[PluginRecord]):
        self.pm = pm
        self.records = records
        self.hooks = Hooks(pm)

    def record(self, name: str) -> PluginRecord | None:
        return next((r for r in self.records if r.name == name), None)

    @property
    def active(self) -> list[PluginRecord]:
        return [r for r in self.records if r.status == "active"]

    def inactive_names(self) -> set[str]:
        return {r.name for r in self.records if r.status != "active"}

    def config_sections(self) -> dict[str, type]:
        """Every plugin's config section classes; a name claimed twice is a start-up error."""
        sections: dict[str, type] = {}
        owners: dict[str, str] = {}
        for record in self.active:
            impl = getattr(record.plugin, "plugin_config_sections", None)
            if impl is None:
                continue
            for name, cls in (impl() or {}).items():
                if name in sections:
                    raise PluginStartupError(
                        f"plugins {owners[name]!r} and {record.name!r} both declare the config "
                        f"section 'plugins.{name}'; disable one of them"
                    )
                sections[name] = cls
                owners[name] = record.name
        return sections


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
    pm.add_hookspecs(hookspecs)
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
        if record.status == "active":
            record.hooks = sorted(caller.name for caller in pm.get_hookcallers(record.plugin) or [])

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        culprit = exc.plugin
        record = next((r for r in records if r.plugin is culprit), None)
        label = record.name if record else repr(culprit)
        raise PluginStartupError(
            f"plugin {label!r} implements a hook that does not exist: {exc}. "
            "Check the spelling against ds01_core/hookspecs.py or disable the plugin."
        ) from exc

    problems = []
    by_name = {r.name: r for r in records}
    for name in required:
        record = by_name.get(name)
        if record is None:
            problems.append(f"required plugin {name!r} is not installed (install its distribution)")
        elif record.status == "failed":
            problems.append(
                f"required plugin {name!r} ({record.distribution} {record.version}) failed to "
                f"load: {record.error}"
            )
    if problems:
        raise PluginStartupError("; ".join(problems))
    for name in order:
        if name not in by_name:
            log.warning("plugins.order names %r, which is not installed", name)
    return PluginHost(pm, records)


def first_refusal(results: Iterable[Refusal | None]) -> Refusal | None:
    return next((r for r in results if r is not None), None)


class Hooks:
    """Typed calls into the plugins; the only place the core touches ``pm.hook``."""

    def __init__(self, pm: pluggy.PluginManager):
        self._hook = pm.hook

    def plugin_config_sections(self) -> list[Mapping[str, type]]:
        return self._hook.plugin_config_sections()

    def configure(self, runtime: Runtime) -> None:
        self._hook.configure(runtime=runtime)

    def _call_each(self, hook: str, **kwargs: Any) -> tuple[list[Any], list[tuple[str, Exception]]]:
        """Call every implementation of ``hook`` on its own, in pluggy's call order, so that one
        plugin's exception is reported with its name while the others still run."""
        results: list[Any] = []
        errors: list[tuple[str, Exception]] = []
        caller = getattr(self._hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            try:
                result = impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception as exc:
                log.error("plugin %r failed in %s: %s", impl.plugin_name, hook, exc)
                errors.append((impl.plugin_name, exc))
                continue
            if result is not None:
                results.append(result)
        return results, errors

    def add_cli_commands(self, cli: click.Group) -> list[tuple[str, Exception]]:
        """Add every plugin's commands; a plugin's broken command (or a name clash) is
        returned with its name and the others are still added."""
        return self._call_each("add_cli_commands", cli=cli)[1]

    def detect_workloads(
        self, runtime: Runtime
    ) -> tuple[list[Sequence[Workload]], list[tuple[str, Exception]]]:
        """Every detector's report, and the (plugin, error) of those that raised."""
        return self._call_each("detect_workloads", runtime=runtime)

    def user_group(self, runtime: Runtime, user: str) -> str | None:
        return self._hook.user_group(runtime=runtime, user=user)

    def quota_usage(self, runtime: Runtime, user: str, limits: EffectiveLimits) -> list[QuotaLine]:
        """Every plugin's quota lines; a plugin that fails is named in a line of its own."""
        from ds01_core.model import QuotaLine

        results, errors = self._call_each("quota_usage", runtime=runtime, user=user, limits=limits)
        lines = [line for batch in results for line in batch]
        lines += [
            QuotaLine(plugin, None, None, "", f"unavailable: {exc}") for plugin, exc in errors
        ]
        return lines

    def explain_user_group(self, runtime: Runtime, user: str) -> list[str]:
        return [line for line in self._hook.explain_user_group(runtime=runtime, user=user) if line]

    def user_known(self, runtime: Runtime, user: str) -> bool | None:
        """True when any plugin knows ``user``, False when some looked and none did, None when
        no plugin could say."""
        answers = self._hook.user_known(runtime=runtime, user=user)
        if any(answer is True for answer in answers):
            return True
        return False if any(answer is False for answer in answers) else None

    def reconcile(self, runtime: Runtime, workloads: Sequence[Workload]) -> list[Event]:
        results = self._hook.reconcile(runtime=runtime, workloads=workloads)
        return [event for batch in results for event in (batch or ())]

    def enforce_limits(
        self,
        runtime: Runtime,
        user: str,
        limits: EffectiveLimits,
        workloads: Sequence[Workload],
    ) -> list[Action]:
        results = self._hook.enforce_limits(
            runtime=runtime, user=user, limits=limits, workloads=workloads
        )
        return [action for batch in results for action in (batch or ())]

    def on_idle(
        self,
        runtime: Runtime,
        workload: Workload,
        idle_seconds: float,
        policy: Mapping[str, Any],
    ) -> str | None:
        return self._hook.on_idle(
            runtime=runtime, workload=workload, idle_seconds=idle_seconds, policy=policy
        )

    def notify(self, runtime: Runtime, notice: Notice) -> list[DeliveryResult]:
        results = self._hook.notify(runtime=runtime, notice=notice)
        return [result for batch in results for result in (batch or ())]

    def allocate_gpu(
        self,
        runtime: Runtime,
        request: GpuRequest,
        free_slots: Sequence[GpuSlot],
        all_slots: Sequence[GpuSlot],
        held: Sequence[Allocation],
        limits: EffectiveLimits,
    ) -> AllocationDecision | None:
        return self._hook.allocate_gpu(
            runtime=runtime,
            request=request,
            free_slots=free_slots,
            all_slots=all_slots,
            held=held,
            limits=limits,
        )

    def prepare_container(self, runtime: Runtime, spec: ContainerSpec) -> Refusal | None:
        """The first refusal, if any. A plugin that raises refuses too (fail-closed): a create
        that a limit plugin could not check must not go through unchecked."""
        from ds01_core.model import Refusal

        results, errors = self._call_each("prepare_container", runtime=runtime, spec=spec)
        if errors:
            plugin, exc = errors[0]
            return Refusal(f"plugin {plugin!r} could not check this container: {exc}", plugin)
        return first_refusal(results)
