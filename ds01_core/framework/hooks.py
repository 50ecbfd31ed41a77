"""Typed calls into the plugins: the only place the core touches ``pm.hook``.

Every hook that is not firstresult is called one implementation at a time, in pluggy's own
order (``tryfirst`` first, ``trylast`` last, ``plugins.order`` in between), so a plugin that
raises costs only its own answer: the others' results are kept and the failure comes back
next to them as a :class:`HookFailure`, for the caller to log, show or write to the audit log.
What a failure means for each hook is written in its hookspec ("If an implementation
raises: …"). The firstresult hooks (``user_group``, ``on_idle``, ``allocate_gpu``) are plain
pluggy calls: one answer is wanted, and their callers decide what an exception means.

Isolation replaces pluggy's single call, so hook wrappers cannot wrap it: the plugin host
refuses a wrapper on a hook that is not firstresult (:func:`unsupported_wrappers`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs
import pluggy

from ds01_core.domain.doctor_finding import Finding
from ds01_core.domain.model import Event, QuotaLine, Refusal

if TYPE_CHECKING:
    import click

    from ds01_core.cycle.steps import CycleReport, CycleStep
    from ds01_core.domain.model import (
        Action,
        Allocation,
        AllocationDecision,
        ContainerSpec,
        DeliveryResult,
        EffectiveLimits,
        GpuRequest,
        GpuSlot,
        Notice,
        Workload,
    )
    from ds01_core.domain.policy import Policy
    from ds01_core.framework.daemon_services import DaemonService
    from ds01_core.framework.runtime import Runtime
    from ds01_core.services.operations import Operation

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The audit event a plugin's failure in a hook becomes (details: plugin, hook, error).
PLUGIN_FAILED = "plugin.failed"


@attrs.frozen
class HookFailure:
    """One hook implementation that raised: which plugin, in which hook, and what."""

    plugin: str
    hook: str
    error: Exception

    @property
    def message(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} failed in {self.hook}: {self.message}"

    def event(self, user: str | None = None, **details: Any) -> Event:
        """The ``plugin.failed`` audit event for this failure."""
        return Event(
            PLUGIN_FAILED,
            user,
            self.plugin,
            {"plugin": self.plugin, "hook": self.hook, "error": self.message, **details},
        )


class Collected(list[T], Generic[T]):
    """A hook's merged results, plus the implementations that raised.

    A list, so a caller that only wants the results uses it as one (``== []`` holds); a caller
    that must surface errors (the daemon's cycle) reads :attr:`failures`.
    """

    def __init__(self, items: Iterable[T] = (), failures: Iterable[HookFailure] = ()):
        super().__init__(items)
        self.failures: list[HookFailure] = list(failures)


def is_firstresult(caller: pluggy.HookCaller) -> bool:
    return bool(caller.spec is not None and caller.spec.opts.get("firstresult"))


def unsupported_wrappers(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """The isolated hooks (not firstresult) that ``plugin`` implements as a wrapper."""
    return sorted(
        caller.name
        for caller in pm.get_hookcallers(plugin) or []
        if not is_firstresult(caller)
        for impl in caller.get_hookimpls()
        if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper)
    )


def _flatten(batches: Iterable[Sequence[T] | None], failures: list[HookFailure]) -> Collected[T]:
    return Collected((item for batch in batches for item in (batch or ())), failures)


class Hooks:
    """Typed calls into the plugins, each implementation isolated from the others."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        on_setup_failure: Callable[[list[HookFailure]], None] | None = None,
    ):
        """:param on_setup_failure: told of the plugins that failed in
        ``plugin_config_sections`` or ``configure`` (the plugin host disables them, and stops
        start-up for a required one)."""
        self._hook = pm.hook
        self._on_setup_failure = on_setup_failure

    def _call_each(
        self, hook: str, **kwargs: Any
    ) -> tuple[list[tuple[str, Any]], list[HookFailure]]:
        """Call every implementation of ``hook`` on its own, in pluggy's call order: the
        non-None results with their plugin's name, and the failures."""
        caller = getattr(self._hook, hook)
        if is_firstresult(caller):
            raise TypeError(f"{hook} is firstresult: call it through pluggy, not one by one")
        results: list[tuple[str, Any]] = []
        failures: list[HookFailure] = []
        kwargs = {**(getattr(caller.spec, "kwargdefaults", None) or {}), **kwargs}
        for impl in reversed(caller.get_hookimpls()):
            try:  # as pluggy passes them: by position, then those with defaults by name
                args = [kwargs[name] for name in impl.argnames]
                named = {name: kwargs[name] for name in impl.kwargnames if name in kwargs}
            except KeyError as exc:  # the core's mistake, not the plugin's
                raise pluggy.HookCallError(f"{hook} must be given {exc.args[0]!r}") from exc
            try:
                if impl.wrapper or impl.hookwrapper:  # refused at load; registered by hand
                    raise TypeError(f"hook wrappers are not supported on {hook}")
                result = impl.function(*args, **named)
            except Exception as exc:
                failure = HookFailure(impl.plugin_name, hook, exc)
                log.error("%s", failure)
                log.debug("%s", failure, exc_info=exc)  # the traceback, for --debug only
                failures.append(failure)
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
        return results, failures

    def _setup_failed(self, failures: list[HookFailure]) -> None:
        if failures and self._on_setup_failure is not None:
            self._on_setup_failure(failures)

    # -- set-up -------------------------------------------------------------------------------

    def plugin_config_sections(self) -> Collected[tuple[str, Mapping[str, type]]]:
        """Each plugin's sections with the plugin's name (a clash names both owners)."""
        results, failures = self._call_each("plugin_config_sections")
        self._setup_failed(failures)
        return Collected(results, failures)

    def configure(self, runtime: Runtime) -> list[HookFailure]:
        """Configure every plugin; those that raised are disabled by the host (see above)."""
        failures = self._call_each("configure", runtime=runtime)[1]
        self._setup_failed(failures)
        return failures

    def add_cli_commands(self, cli: click.Group) -> list[tuple[str, Exception]]:
        """Add every plugin's commands; a plugin's broken command (or a name clash) is
        returned with its name and the others are still added."""
        return [(f.plugin, f.error) for f in self._call_each("add_cli_commands", cli=cli)[1]]

    # -- the cycle ----------------------------------------------------------------------------

    def detect_workloads(self, runtime: Runtime) -> Collected[Sequence[Workload]]:
        """Every detector's report (one batch each); ``failures`` names those that raised."""
        results, failures = self._call_each("detect_workloads", runtime=runtime)
        return Collected((batch for _plugin, batch in results), failures)

    def reconcile(self, runtime: Runtime, workloads: Sequence[Workload]) -> Collected[Event]:
        results, failures = self._call_each("reconcile", runtime=runtime, workloads=workloads)
        return _flatten((batch for _plugin, batch in results), failures)

    def enforce_limits(
        self,
        runtime: Runtime,
        user: str,
        limits: EffectiveLimits,
        workloads: Sequence[Workload],
    ) -> Collected[Action]:
        results, failures = self._call_each(
            "enforce_limits", runtime=runtime, user=user, limits=limits, workloads=workloads
        )
        return _flatten((batch for _plugin, batch in results), failures)

    def cycle_steps(self) -> Collected[CycleStep]:
        """Every plugin's cycle steps, each with ``provider`` set to its plugin's name; a
        plugin that raises (or returns something that is not a step) is in ``failures``."""
        results, failures = self._call_each("cycle_steps")
        steps: list[CycleStep] = []
        for plugin, batch in results:
            try:
                steps += [attrs.evolve(step, provider=plugin) for step in batch]
            except Exception as exc:  # not CycleStep objects: the plugin's fault
                failure = HookFailure(plugin, "cycle_steps", exc)
                log.error("%s", failure)
                failures.append(failure)
        return Collected(steps, failures)

    def cycle_finished(self, runtime: Runtime, report: CycleReport) -> Collected[None]:
        """Show every plugin the finished cycle; failures are logged and come back."""
        _results, failures = self._call_each("cycle_finished", runtime=runtime, report=report)
        return Collected((), failures)

    def daemon_services(self, runtime: Runtime) -> Collected[DaemonService]:
        """Every plugin's daemon services; a plugin that raises is logged and left out."""
        results, failures = self._call_each("daemon_services", runtime=runtime)
        return _flatten((batch for _plugin, batch in results), failures)

    def notify(self, runtime: Runtime, notice: Notice) -> Collected[DeliveryResult]:
        results, failures = self._call_each("notify", runtime=runtime, notice=notice)
        return _flatten((batch for _plugin, batch in results), failures)

    def on_idle(
        self,
        runtime: Runtime,
        workload: Workload,
        idle_seconds: float,
        policy: Policy,
    ) -> str | None:
        return self._hook.on_idle(
            runtime=runtime, workload=workload, idle_seconds=idle_seconds, policy=policy
        )

    # -- the service layer --------------------------------------------------------------------

    def service_operations(self) -> Collected[Operation]:
        """Every plugin's service operations; a plugin that raises is logged and left out."""
        results, failures = self._call_each("service_operations")
        return _flatten((batch for _plugin, batch in results), failures)

    # -- users and limits ---------------------------------------------------------------------

    def user_group(self, runtime: Runtime, user: str) -> str | None:
        return self._hook.user_group(runtime=runtime, user=user)

    def explain_user_group(self, runtime: Runtime, user: str) -> Collected[str]:
        """Every plugin's line; a plugin that fails is named in a line of its own."""
        results, failures = self._call_each("explain_user_group", runtime=runtime, user=user)
        lines = [line for _plugin, line in results if line]
        lines += [f"{f.plugin}: could not explain: {f.message}" for f in failures]
        return Collected(lines, failures)

    def user_known(self, runtime: Runtime, user: str) -> Collected[bool]:
        """Every plugin's answer that could say (True: it knows ``user``; False: it looked and
        did not find them); a plugin that raises could not say and is in ``failures``."""
        results, failures = self._call_each("user_known", runtime=runtime, user=user)
        return Collected((answer for _plugin, answer in results), failures)

    def quota_usage(
        self, runtime: Runtime, user: str, limits: EffectiveLimits
    ) -> Collected[QuotaLine]:
        """Every plugin's quota lines; a plugin that fails is named in a line of its own."""
        results, failures = self._call_each(
            "quota_usage", runtime=runtime, user=user, limits=limits
        )
        lines = [line for _plugin, batch in results for line in batch]
        lines += [QuotaLine(f.plugin, None, None, "", f"unavailable: {f.error}") for f in failures]
        return Collected(lines, failures)

    # -- the container create path ------------------------------------------------------------

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
        results, failures = self._call_each("prepare_container", runtime=runtime, spec=spec)
        if failures:
            failure = failures[0]
            return Refusal(
                f"plugin {failure.plugin!r} could not check this container: {failure.error}",
                failure.plugin,
            )
        return first_refusal(result for _plugin, result in results)

    def check_build(self, runtime: Runtime, user: str, images: Sequence[str]) -> Refusal | None:
        """The first refusal of a build, if any; a plugin that raises refuses it (fail-closed)."""
        results, failures = self._call_each(
            "check_build", runtime=runtime, user=user, images=list(images)
        )
        if failures:
            failure = failures[0]
            return Refusal(
                f"plugin {failure.plugin!r} could not check this build: {failure.error}",
                failure.plugin,
            )
        return first_refusal(result for _plugin, result in results)

    def reserved_gpu_slots(self, runtime: Runtime, slots: Sequence[GpuSlot]) -> dict[str, str]:
        """``{slot uuid: who keeps it}`` merged from every plugin; a plugin that raises keeps
        every slot (fail-closed: a GPU a scheduler may hand out must not be given twice)."""
        results, failures = self._call_each("reserved_gpu_slots", runtime=runtime, slots=slots)
        if failures:
            why = f"plugin {failures[0].plugin!r}, which failed ({failures[0].error})"
            return {s.uuid: why for s in slots}
        kept: dict[str, str] = {}
        for _plugin, answer in results:
            for uuid, who in (answer or {}).items():
                kept.setdefault(str(uuid), str(who))
        return kept

    def doctor_checks(self, runtime: Runtime) -> list[Finding]:
        """Every plugin's findings; a plugin that raises is one failed finding naming it."""
        results, failures = self._call_each("doctor_checks", runtime=runtime)
        found = [f for _plugin, batch in results for f in batch or ()]
        found += [
            Finding(f"plugin {f.plugin}", f.plugin, False, f"its checks failed: {f.error}")
            for f in failures
        ]
        return found


def first_refusal(results: Iterable[Refusal | None]) -> Refusal | None:
    return next((r for r in results if r is not None), None)
