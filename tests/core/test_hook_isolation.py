"""One plugin raising never costs another plugin's results: every hook that is not firstresult.

The hooks are read from pluggy (the spec options of ``ds01_core.framework.hookspecs``), so a hook added
later is covered automatically: it fails here until the ``Hooks`` facade isolates it and the
table below says how to call it and what its result looks like.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import click
import pluggy
import pytest

from ds01_core.cycle.steps import CycleReport, CycleStep
from ds01_core.domain.config import build_config
from ds01_core.domain.doctor_finding import DoctorFinding
from ds01_core.domain.limits import resolve_limits
from ds01_core.domain.model import (
    Action,
    ContainerSpec,
    DeliveryResult,
    Event,
    GpuRequest,
    GpuSlot,
    Notice,
    QuotaLine,
    Refusal,
    Workload,
)
from ds01_core.domain.state.allocations import Allocations
from ds01_core.framework import hookspecs
from ds01_core.framework.hooks import PLUGIN_FAILED, HookFailure
from ds01_core.framework.hookspecs import PROJECT, hookimpl
from ds01_core.framework.manager import PluginHost, make_plugin_host
from ds01_core.framework.runtime import Runtime
from ds01_core.services.operations import Operation


def isolated_hooks() -> list[str]:
    """Every hook whose spec is not firstresult, as pluggy itself reads the specs."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    return sorted(
        name
        for name, caller in vars(pm.hook).items()
        if isinstance(caller, pluggy.HookCaller) and not caller.spec.opts.get("firstresult")
    )


def argnames(hook: str) -> list[str]:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    return list(getattr(pm.hook, hook).spec.argnames)


# -- the arguments, by name ---------------------------------------------------------------------


@attrs.define
class SecondKnobs:
    level: int = 1


WORKLOAD = Workload(
    kind="container",
    id="c1",
    name="c1",
    owner="alice",
    owner_source="label",
    origin="ds01",
    status="running",
)
SECOND_WORKLOAD = attrs.evolve(WORKLOAD, id="c2", name="c2")
SECOND_EVENT = Event("second.reconciled")
SECOND_ACTION = Action("second", "applied", "cg", user="alice")
SECOND_DELIVERY = DeliveryResult("second", True, "sent")
SECOND_QUOTA = QuotaLine("memory", 1, 2, "bytes", "second")
SECOND_OPERATION = Operation("second.ping", "GET", "/v1/second/ping", lambda ctx: "pong")
SECOND_STEP = CycleStep("second-step", lambda ctx: None, "the second plugin's step")


class SecondService:
    """A daemon service the second plugin declares (never started here)."""

    name = "second-service"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


SECOND_SERVICE = SecondService()


def arguments(runtime: Runtime) -> dict[str, Callable[[], Any]]:
    """A value for every hook argument name (fresh per call: some hooks change them)."""
    return {
        "runtime": lambda: runtime,
        "user": lambda: "alice",
        "limits": lambda: resolve_limits(runtime.config, "alice"),
        "workloads": lambda: [WORKLOAD],
        "notice": lambda: Notice("alice", "subject", "body", "info", "c1"),
        "spec": lambda: ContainerSpec(user="alice", name="c1", body={"Image": "busybox"}),
        "cli": lambda: click.Group("root"),
        "report": lambda: CycleReport(),
        "images": lambda: ["busybox:latest"],
        "slots": lambda: [SLOT],
    }


# -- per hook: what the second plugin answers, and how its answer shows in the outcome ----------


@attrs.frozen
class Case:
    """``answer(args)`` is the second plugin's result; ``check(outcome, args, host)`` asserts
    it is in the outcome and returns the failures the outcome reports."""

    answer: Callable[[dict[str, Any]], Any]
    check: Callable[[Any, dict[str, Any], PluginHost], list[Any]]


def collected(expected: Any) -> Callable[[Any, dict[str, Any], PluginHost], list[Any]]:
    """For hooks answering with a Collected list: ``expected`` is in it; ``failures`` told."""

    def check(outcome: Any, _args: dict[str, Any], _host: PluginHost) -> list[Any]:
        assert expected in list(outcome)
        return outcome.failures

    return check


def check_config_sections(outcome: Any, _args: dict[str, Any], host: PluginHost) -> list[Any]:
    assert ("second", {"second": SecondKnobs}) in list(outcome)
    assert host.record("first").status == "failed"  # disabled: its section is not read
    return outcome.failures


def check_configure(outcome: Any, _args: dict[str, Any], host: PluginHost) -> list[Any]:
    assert host.record("second").status == "active"
    assert host.record("first").status == "failed"
    assert "configure raised RuntimeError: first is broken" in host.record("first").error
    return outcome


def check_cli(outcome: Any, args: dict[str, Any], _host: PluginHost) -> list[Any]:
    assert "second-command" in args["cli"].commands
    return [HookFailure(plugin, "add_cli_commands", exc) for plugin, exc in outcome]


def check_explain(outcome: Any, _args: dict[str, Any], _host: PluginHost) -> list[Any]:
    assert list(outcome) == [
        "second: explained",
        "first: could not explain: RuntimeError: first is broken",
    ]
    return outcome.failures


def check_quota(outcome: Any, _args: dict[str, Any], _host: PluginHost) -> list[Any]:
    assert list(outcome) == [
        SECOND_QUOTA,
        QuotaLine("first", None, None, "", "unavailable: first is broken"),
    ]
    return outcome.failures


def seen_report(args: dict[str, Any]) -> None:
    args["report"].steps.append("seen by second")


def check_report_seen(outcome: Any, args: dict[str, Any], _host: PluginHost) -> list[Any]:
    assert args["report"].steps == ["seen by second"]  # the second still looked at it
    return outcome.failures


def add_command(args: dict[str, Any]) -> None:
    args["cli"].add_command(click.Command("second-command"))


def label_spec(args: dict[str, Any]) -> None:
    args["spec"].body.setdefault("Labels", {})["second"] = "seen"


def check_prepare(outcome: Any, args: dict[str, Any], _host: PluginHost) -> list[Any]:
    assert args["spec"].body["Labels"] == {"second": "seen"}  # the second still saw it
    # fail-closed: the first plugin could not check the container, so it is refused
    assert outcome == Refusal(
        "plugin 'first' could not check this container: first is broken", "first"
    )
    return [outcome]


def check_build_refused(outcome: Any, args: dict[str, Any], _host: PluginHost) -> list[Any]:
    # fail-closed: a build rule that could not be checked refuses the build
    assert outcome == Refusal("plugin 'first' could not check this build: first is broken", "first")
    return [outcome]


SLOT = GpuSlot("GPU-isolation-0", "gpu", 0, "GPU-isolation-0", "A100", 7, 7, 80 << 30)
SECOND_FINDING = DoctorFinding("second", "its part", True, "fine")


def check_reserved(outcome: Any, _args: dict[str, Any], _host: PluginHost) -> list[Any]:
    # fail-closed: when a plugin cannot say which slots it keeps, every slot is kept
    assert outcome == {SLOT.uuid: "plugin 'first', which failed (first is broken)"}
    return [outcome]


def check_doctor(outcome: Any, _args: dict[str, Any], _host: PluginHost) -> list[Any]:
    assert SECOND_FINDING in outcome
    failed = [f for f in outcome if f.subject == "first"]
    assert [(f.ok, f.message) for f in failed] == [(False, "its checks failed: first is broken")]
    return failed


CASES: dict[str, Case] = {
    "plugin_config_sections": Case(lambda a: {"second": SecondKnobs}, check_config_sections),
    "configure": Case(lambda a: None, check_configure),
    "add_cli_commands": Case(add_command, check_cli),
    "detect_workloads": Case(lambda a: [SECOND_WORKLOAD], collected([SECOND_WORKLOAD])),
    "reconcile": Case(lambda a: [SECOND_EVENT], collected(SECOND_EVENT)),
    "enforce_limits": Case(lambda a: [SECOND_ACTION], collected(SECOND_ACTION)),
    "explain_user_group": Case(lambda a: "second: explained", check_explain),
    "notify": Case(lambda a: [SECOND_DELIVERY], collected(SECOND_DELIVERY)),
    "quota_usage": Case(lambda a: [SECOND_QUOTA], check_quota),
    "prepare_container": Case(label_spec, check_prepare),
    "check_build": Case(lambda a: None, check_build_refused),
    "reserved_gpu_slots": Case(lambda a: {SLOT.uuid: "second"}, check_reserved),
    "doctor_checks": Case(lambda a: [SECOND_FINDING], check_doctor),
    "service_operations": Case(lambda a: [SECOND_OPERATION], collected(SECOND_OPERATION)),
    "user_known": Case(lambda a: True, collected(True)),
    "daemon_services": Case(lambda a: [SECOND_SERVICE], collected(SECOND_SERVICE)),
    "cycle_finished": Case(seen_report, check_report_seen),
    # the core marks each step with the plugin that returned it
    "cycle_steps": Case(
        lambda a: [SECOND_STEP], collected(attrs.evolve(SECOND_STEP, provider="second"))
    ),
}


# -- plugins made for a hook ------------------------------------------------------------------


def implementation(hook: str, body: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
    """A hookimpl of ``hook`` taking every argument of its spec, by name, as a plugin would
    (pluggy reads the names from the function's code, so the function is written out)."""
    names = argnames(hook)
    params = ", ".join(names)
    as_dict = ", ".join(f"{name!r}: {name}" for name in names)
    namespace: dict[str, Any] = {"body": body}
    exec(f"def {hook}({params}):\n    return body({{{as_dict}}})\n", namespace)
    return hookimpl(namespace[hook])


def plugin(hook: str, body: Callable[[dict[str, Any]], Any]) -> object:
    return type(f"Plugin_{hook}", (), {hook: staticmethod(implementation(hook, body))})()


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    """A runtime to pass as the ``runtime`` argument (its own host has no plugins at all)."""
    data = {
        "paths": {k: str(tmp_path / k) for k in ("state_dir", "log_dir", "runtime_dir")},
        "gpu": {"backend": "simulated"},
    }
    host = make_plugin_host(builtins=(), load_entry_points=False)
    return Runtime(build_config(data, sections={}), host)


def test_isolated_hooks_are_read_from_pluggy():
    hooks = isolated_hooks()
    assert {"reconcile", "enforce_limits", "notify", "prepare_container"} <= set(hooks)
    assert not {"user_group", "on_idle", "allocate_gpu"} & set(hooks)  # the firstresult ones


@pytest.mark.parametrize("hook", isolated_hooks())
def test_a_raising_plugin_costs_only_its_own_answer(hook, runtime, caplog):
    """Two plugins, the first (in call order) raising: the second's answer is in the outcome
    and the first's failure is reported, through the ``Hooks`` facade the core uses."""
    case = CASES.get(hook)
    assert case is not None, (
        f"hook {hook!r} is not firstresult but has no entry in CASES of {__file__}: add one "
        "(what a second plugin answers and how that shows in the outcome), and make sure "
        "ds01_core.framework.hooks.Hooks calls it one plugin at a time"
    )
    values = arguments(runtime)
    missing = [name for name in argnames(hook) if name not in values]
    assert not missing, f"{hook}: no test value for argument(s) {missing}; add them to arguments()"
    args = {name: values[name]() for name in argnames(hook)}
    calls: list[str] = []

    def first(_args: dict[str, Any]) -> Any:
        calls.append("first")
        raise RuntimeError("first is broken")

    def second(call_args: dict[str, Any]) -> Any:
        calls.append("second")
        return case.answer(call_args)

    # "second" is loaded first; plugins.order makes "first" run first anyway
    host = make_plugin_host(
        builtins=(),
        extra=[("second", plugin(hook, second)), ("first", plugin(hook, first))],
        order=["first", "second"],
        load_entry_points=False,
    )
    method = getattr(host.hooks, hook, None)
    assert method is not None, (
        f"ds01_core.framework.hooks.Hooks has no method for the hook {hook!r}"
    )
    with caplog.at_level(logging.ERROR, logger="ds01_core.framework.hooks"):
        try:
            outcome = method(**args)
        except RuntimeError as exc:
            pytest.fail(f"{hook}: the first plugin's exception escaped Hooks.{hook}: {exc!r}")
    assert calls == ["first", "second"], f"{hook}: not called in pluggy's order"
    reported = case.check(outcome, args, host)
    assert len(reported) == 1, f"{hook}: the first plugin's failure is not reported: {reported}"
    failure = reported[0]
    if isinstance(failure, HookFailure):
        assert (failure.plugin, failure.hook) == ("first", hook)
        assert str(failure.error) == "first is broken"
    assert f"plugin 'first' failed in {hook}: RuntimeError: first is broken" in caplog.messages


def test_nothing_calls_pluggy_around_the_facade():
    """A plain ``pm.hook.<name>(...)`` call elsewhere would skip the isolation tested above."""
    import re

    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"\bpm\.hook\b|\.hook\.\w+\(")
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for folder in ("ds01_core", "plugins")
        for path in sorted((root / folder).rglob("*.py"))
        if path.name != "hooks.py" or path.parent.name != "framework"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith(("#", "The core never"))
    ]
    assert offenders == [], "call hooks through ds01_core.framework.hooks.Hooks, not pm.hook"


def test_every_isolated_hook_says_what_a_failure_means():
    for hook in isolated_hooks():
        doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
        assert "If an implementation raises:" in doc, f"{hook}: say what a failure means"


# -- what failures mean where they happen -------------------------------------------------------


def test_a_wrapper_on_an_isolated_hook_is_refused_at_load():
    class Wraps:
        @hookimpl(wrapper=True)
        def reconcile(self):
            return (yield)

        @hookimpl(wrapper=True)
        def on_idle(self):  # firstresult: a plain pluggy call, so wrappers work there
            return (yield)

    host = make_plugin_host(builtins=(), extra=[("wraps", Wraps())], load_entry_points=False)
    record = host.record("wraps")
    assert record.status == "failed"
    assert record.error == (
        "hook wrappers are not supported on reconcile: ds01 calls each implementation of a hook "
        "that is not firstresult on its own"
    )
    assert not host.pm.is_registered(record.plugin)


def test_a_required_plugin_that_fails_to_configure_stops_start_up(runtime):
    from ds01_core.framework.manager import PluginStartupError

    class Broken:
        @hookimpl
        def configure(self):
            raise OSError("cannot read /etc/ds01/secret")

    host = make_plugin_host(
        builtins=(), extra=[("broken", Broken())], required=["broken"], load_entry_points=False
    )
    with pytest.raises(
        PluginStartupError, match=r"required plugin 'broken' .* failed in configure"
    ):
        host.hooks.configure(runtime)


def test_a_raising_notifier_is_a_failed_delivery_and_the_others_still_deliver(runtime):
    from ds01_core.cycle.notices import tell_user

    class Broken:
        @hookimpl(tryfirst=True)
        def notify(self):
            raise ConnectionError("smtp down")

    class Mail:
        @hookimpl
        def notify(self, notice):
            return [DeliveryResult("email", True, f"to {notice.user}")]

    host = make_plugin_host(
        builtins=(), extra=[("mail", Mail()), ("broken", Broken())], load_entry_points=False
    )
    runtime = Runtime(runtime.config, host)
    results = tell_user(runtime, Notice("alice", "idle", "c1 is idle", "warning", "c1"))
    assert results == [
        DeliveryResult("email", True, "to alice"),
        DeliveryResult("broken", False, "raised ConnectionError: smtp down"),
    ]
    failed = [e for e in runtime.events.query(user="alice") if e["event_type"] == PLUGIN_FAILED]
    assert [(e["source"], e["details"]) for e in failed] == [
        (
            "broken",
            {
                "plugin": "broken",
                "hook": "notify",
                "error": "ConnectionError: smtp down",
                "subject": "idle",
            },
        )
    ]


def test_a_raising_reconciler_does_not_lose_another_reconcilers_releases(
    tmp_config, docker_engine, monkeypatch
):
    """The reported case, through the daemon's own cycle: a reconciler that runs before the
    built-in ``gpu-allocations`` raises; the allocation of a container that is gone is still
    released, and the failure is in the cycle's errors and in the audit log."""
    import ds01_core.cycle.daemon as daemon_module
    from ds01_core.framework.runtime import load_runtime

    class Broken:
        @hookimpl
        def reconcile(self):
            raise RuntimeError("directory unreachable")

    extra = (("broken", Broken()),)
    monkeypatch.setattr(
        daemon_module,
        "load_runtime",
        lambda path, no_plugins=False: load_runtime(path, extra_plugins=extra),
    )
    config = tmp_config({"plugins": {"order": ["broken"]}})  # first in call order
    daemon = daemon_module.Daemon(str(config))
    try:
        allocations = Allocations(daemon.runtime)
        granted = allocations.allocate(GpuRequest(user="alice", container="gone"))
        allocations.bind(granted.allocation.id, "f" * 64)  # a container the engine never had

        report = daemon.cycle()

        # released (other runs' containers on the shared engine may have been adopted)
        assert granted.allocation.id not in {a.id for a in allocations.live()}
        assert report.errors == ["reconcile (broken): directory unreachable"]
        events = daemon.runtime.events.query()
        released = [e for e in events if e["event_type"] == "gpu.released"]
        assert [(e["user"], e["details"]["reason"]) for e in released] == [
            ("alice", "container removed")
        ]
        failed = [e for e in events if e["event_type"] == PLUGIN_FAILED]
        assert [e["details"] for e in failed] == [
            {
                "plugin": "broken",
                "hook": "reconcile",
                "error": "RuntimeError: directory unreachable",
            }
        ]
    finally:
        daemon.runtime.close()
