"""Every hook: documented like pytest's hookspec.py, and exercised through the core's own calls.

The meta-tests at the top keep it that way: a new hook without a full docstring, or without a
``test_hook_<name>`` test somewhere under tests/, fails here.
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import pkgutil
import re
import textwrap
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ds01_core.cycle.notices import tell_user
from ds01_core.cycle.pipeline import detect, run_cycle
from ds01_core.domain.config import build_config
from ds01_core.domain.limits import resolve_limits
from ds01_core.domain.model import (
    AllocationDecision,
    ContainerSpec,
    DeliveryResult,
    Event,
    GpuRequest,
    GpuSlot,
    Notice,
    Refusal,
    Workload,
)
from ds01_core.framework import hookspecs
from ds01_core.framework.hooks import Hooks
from ds01_core.framework.hookspecs import hookimpl
from ds01_core.framework.manager import make_plugin_host
from ds01_core.framework.runtime import Runtime

TESTS = Path(__file__).resolve().parents[1]


def hook_specs() -> dict[str, object]:
    return {
        name: fn
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, "ds01_spec")
    }


def test_hookspecs_are_found():
    assert {"detect_workloads", "allocate_gpu", "enforce_limits", "on_idle", "notify"} <= set(
        hook_specs()
    )


def test_every_hookspec_module_is_registered_and_every_hook_re_exported():
    """The plugin manager registers ``hookspecs.GROUPS``, and the package's names are what the
    tests here enumerate: a module left out of either would hold hooks nobody checks or calls."""
    modules = {info.name for info in pkgutil.iter_modules(hookspecs.__path__)} - {"markers"}
    assert {group.__name__.rsplit(".", 1)[1] for group in hookspecs.GROUPS} == modules
    in_groups = {
        name
        for group in hookspecs.GROUPS
        for name, fn in vars(group).items()
        if inspect.isfunction(fn) and hasattr(fn, "ds01_spec")
    }
    assert in_groups == set(hook_specs())


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_is_documented(name):
    fn = hook_specs()[name]
    doc = inspect.getdoc(fn) or ""
    assert len(doc.splitlines()[0]) > 10, f"{name}: needs a one-line summary"
    assert "Called" in doc, f"{name}: must say when it is called"
    for arg in inspect.signature(fn).parameters:
        assert f":param {arg}:" in doc, f"{name}: argument {arg!r} is not documented"
    returns = inspect.signature(fn).return_annotation
    if returns not in ("None", None):
        assert ":return:" in doc, f"{name}: the return value is not documented"
    firstresult = fn.ds01_spec.get("firstresult", False)
    if firstresult:
        assert "firstresult:" in doc, f"{name}: must explain its firstresult behaviour"
    else:
        assert "Not firstresult" in doc or ":return:" not in doc, (
            f"{name}: must say it is not firstresult"
        )


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_has_a_test(name):
    pattern = re.compile(rf"def test_hook_{name}\b")
    found = [p for p in TESTS.rglob("test_*.py") if pattern.search(p.read_text())]
    assert found, f"no test named test_hook_{name} under tests/"


# -- the Hooks facade matches the hookspecs ---------------------------------------------------


def facade_methods() -> dict[str, object]:
    """The public methods of :class:`Hooks`: one per hook, named after it."""
    return {
        name: fn
        for name, fn in vars(Hooks).items()
        if inspect.isfunction(fn) and not name.startswith("_")
    }


def hooks_called(method: object) -> dict[str, list[set[str]]]:
    """The hooks ``method`` calls, read from its source: ``self._call_each("name", kw=…)`` and
    ``self._hook.name(kw=…)``, each with the keyword names of every call."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(method)))
    called: dict[str, list[set[str]]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func, name = node.func, None
        if isinstance(func, ast.Attribute) and func.attr == "_call_each":
            first = node.args[0] if node.args else None
            assert isinstance(first, ast.Constant), "_call_each's hook name must be a literal"
            name = first.value
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Attribute)
            and func.value.attr == "_hook"
        ):
            name = func.attr
        if name is not None:
            assert not any(k.arg is None for k in node.keywords), f"{name}: **kwargs hides names"
            called.setdefault(name, []).append({k.arg for k in node.keywords if k.arg})
    return called


def test_every_hookspec_has_a_facade_method_and_no_other():
    assert set(facade_methods()) == set(hook_specs())


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_facade_method_takes_the_hookspecs_parameters(name):
    method = facade_methods().get(name)
    assert method is not None, f"Hooks has no method {name}"
    spec = inspect.signature(hook_specs()[name]).parameters
    mine = dict(inspect.signature(method).parameters)
    mine.pop("self")
    assert [(p.name, p.kind) for p in mine.values()] == [(p.name, p.kind) for p in spec.values()]


@pytest.mark.parametrize("name", sorted(facade_methods()))
def test_facade_method_calls_only_its_own_hook_with_every_argument(name):
    specs = hook_specs()
    called = hooks_called(facade_methods()[name])
    unknown = set(called) - set(specs)
    assert not unknown, f"Hooks.{name} calls hooks that do not exist: {sorted(unknown)}"
    assert set(called) == {name}, f"Hooks.{name} calls {sorted(called)}, not {name}"
    wanted = set(inspect.signature(specs[name]).parameters)
    for keywords in called[name]:
        assert keywords == wanted, f"Hooks.{name} passes {sorted(keywords)}, not {sorted(wanted)}"


def test_the_facade_check_reads_both_ways_of_calling():
    class Broken:
        def reconcile(self, runtime, workloads):
            self._call_each("detect_workloads", runtime=runtime)
            return self._hook.no_such_hook(runtime=runtime, workloads=workloads)

    assert hooks_called(Broken.reconcile) == {
        "detect_workloads": [{"runtime"}],
        "no_such_hook": [{"runtime", "workloads"}],
    }


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def make_runtime(tmp_path):
    def make(*plugins: tuple[str, object], data: dict | None = None) -> Runtime:
        base = {
            "paths": {
                "state_dir": str(tmp_path / "state"),
                "log_dir": str(tmp_path / "log"),
                "runtime_dir": str(tmp_path / "run"),
            },
            "gpu": {"backend": "simulated"},
        }
        base.update(data or {})
        # the built-in detectors would look at this machine's real Docker engine and GPUs
        host = make_plugin_host(
            extra=plugins,
            disabled=["docker-detector", "gpu-process-detector"],
            load_entry_points=False,
        )
        config = build_config(base, sections=host.config_sections())
        return Runtime(config, host)

    return make


def slot(index: int, kind: str = "gpu", gi: int | None = None, slices: int = 7) -> GpuSlot:
    return GpuSlot(
        uuid=f"GPU-{index}" if kind == "gpu" else f"MIG-{index}-{gi}",
        kind=kind,
        gpu_index=index,
        gpu_uuid=f"GPU-{index}",
        model="A100",
        compute_slices=slices,
        total_slices=7,
        memory_total=80 * 1024**3,
        gpu_instance_id=gi,
        compute_instance_id=0 if gi is not None else None,
    )


def container(cid: str, owner: str, slots: list[str] | None = None) -> Workload:
    return Workload(
        kind="container",
        id=cid,
        name=cid,
        origin="docker",
        owner=owner,
        owner_source="label",
        status="running",
        gpu_slots=list(slots or []),
    )


# -- one test per hook --------------------------------------------------------------------------


def test_hook_plugin_config_sections(make_runtime):
    import attrs

    @attrs.define
    class Knobs:
        level: int = 1

    class P:
        @hookimpl
        def plugin_config_sections(self):
            return {"knobs": Knobs}

    runtime = make_runtime(("p", P()), data={"plugins": {"knobs": {"level": 4}}})
    assert runtime.plugin_config("knobs") == Knobs(level=4)

    class Q:  # a second plugin claiming the same section is refused, naming both
        @hookimpl
        def plugin_config_sections(self):
            return {"knobs": Knobs}

    host = make_plugin_host(extra=[("p", P()), ("q", Q())], load_entry_points=False)
    with pytest.raises(Exception, match="plugins 'p' and 'q' both declare"):
        host.config_sections()


def test_hook_configure(make_runtime):
    seen = []

    class P:
        @hookimpl
        def configure(self, runtime):
            seen.append(runtime.config.lifecycle.interval)

    runtime = make_runtime(("p", P()), data={"lifecycle": {"interval": "10s"}})
    runtime.hooks.configure(runtime)
    assert seen == [10]


def test_hook_add_cli_commands():
    from ds01_core.transports.cli import Ds01Group

    root = Ds01Group("root")

    @root.command("status")
    def status():
        click.echo("built-in")

    root.sealed = True

    class Adds:
        @hookimpl
        def add_cli_commands(self, cli):
            @cli.command("hello")
            def hello():
                click.echo("hi from a plugin")

    class Clashes:
        @hookimpl
        def add_cli_commands(self, cli):
            @cli.command("status")
            def status():
                click.echo("hijacked")

    host = make_plugin_host(extra=[("adds", Adds()), ("clash", Clashes())], load_entry_points=False)
    errors = host.hooks.add_cli_commands(root)
    assert [(name, str(exc)) for name, exc in errors] == [
        ("clash", "the command name 'status' is already taken")
    ]
    runner = CliRunner()
    assert runner.invoke(root, ["hello"]).output == "hi from a plugin\n"
    assert runner.invoke(root, ["status"]).output == "built-in\n"


def test_hook_detect_workloads(make_runtime):
    class Docker:
        @hookimpl
        def detect_workloads(self):
            return [container("c1", "alice", ["GPU-1"]), container("c2", "bob")]

    class Processes:
        @hookimpl
        def detect_workloads(self):
            other = container("c1", "someone-else", ["GPU-2"])
            other.pids = [42]
            return [other]

    class Broken:
        @hookimpl
        def detect_workloads(self):
            return None

    runtime = make_runtime(("docker", Docker()), ("procs", Processes()), ("none", Broken()))
    workloads = {w.id: w for w in detect(runtime)}
    assert set(workloads) == {"c1", "c2"}
    assert workloads["c1"].owner == "alice"  # the first reporter's record wins
    assert workloads["c1"].gpu_slots == ["GPU-1", "GPU-2"]  # later reporters add slots and pids
    assert workloads["c1"].pids == [42]


def test_hook_reconcile(make_runtime):
    class Reconciler:
        @hookimpl
        def reconcile(self, runtime, workloads):
            return [
                Event("gpu.released", user=w.owner, details={"container": w.id})
                for w in workloads
                if w.status == "exited"
            ]

    class Detector:
        @hookimpl
        def detect_workloads(self):
            gone = container("c9", "carol")
            gone.status = "exited"
            return [gone, container("c1", "alice")]

    runtime = make_runtime(("r", Reconciler()), ("d", Detector()))
    report = run_cycle(runtime)
    assert [e.event_type for e in report.events] == ["gpu.released"]
    logged = runtime.events.query(type_prefix="gpu.")
    assert [(e["user"], e["details"]["container"]) for e in logged] == [("carol", "c9")]


def test_hook_enforce_limits(make_runtime):
    calls = {}

    class Enforcer:
        @hookimpl
        def enforce_limits(self, user, limits, workloads):
            calls[user] = (limits["max_gpu_equivalents"], [w.id for w in workloads])
            return []

    class Detector:
        @hookimpl
        def detect_workloads(self):
            return [container("c1", "alice"), container("c2", "alice"), container("x", "unknown")]

    runtime = make_runtime(
        ("e", Enforcer()),
        ("d", Detector()),
        data={"limits": {"groups": {"student": {"members": ["bob"], "max_gpu_equivalents": 0.5}}}},
    )
    run_cycle(runtime)
    # alice owns workloads; bob has configured limits; "unknown" is nobody to enforce on
    assert calls == {"alice": (1.0, ["c1", "c2"]), "bob": (0.5, [])}


def test_hook_on_idle(make_runtime):
    class Abstains:
        @hookimpl
        def on_idle(self, workload):
            return None

    class KeepsNotebooks:
        @hookimpl(tryfirst=True)
        def on_idle(self, workload, idle_seconds):
            return "none" if workload.name.startswith("notebook") else None

    class Policy:
        @hookimpl(trylast=True)
        def on_idle(self, idle_seconds, policy):
            return "stop" if idle_seconds >= policy["idle_timeout"] else "warn"

    runtime = make_runtime(("a", Abstains()), ("k", KeepsNotebooks()), ("p", Policy()))
    policy = {"idle_timeout": 600}
    assert runtime.hooks.on_idle(runtime, container("job", "alice"), 700, policy) == "stop"
    assert runtime.hooks.on_idle(runtime, container("job", "alice"), 100, policy) == "warn"
    assert runtime.hooks.on_idle(runtime, container("notebook-1", "alice"), 700, policy) == "none"


def test_hook_notify(make_runtime):
    received = []

    class Mail:
        @hookimpl
        def notify(self, notice):
            received.append(notice.subject)
            return [DeliveryResult("email", True, "queued")]

    class FailingWebhook:
        @hookimpl
        def notify(self, notice):
            return [DeliveryResult("webhook", False, "connection refused")]

    runtime = make_runtime(("mail", Mail()), ("hook", FailingWebhook()))
    notice = Notice("alice", "idle container", "ctr-a has been idle for 2h", "warning", "ctr-a")
    results = tell_user(runtime, notice)
    assert {(r.channel, r.delivered) for r in results} == {
        ("email", True),
        ("webhook", False),
        ("audit-log", True),  # the built-in event notifier records every notice
    }
    assert received == ["idle container"]
    types = [e["event_type"] for e in runtime.events.query(user="alice")]
    assert types.count("notify.delivered") == 2
    assert types.count("notify.failed") == 1
    assert "notice.recorded" in types


def test_hook_allocate_gpu(make_runtime):
    free = [slot(0), slot(1), slot(2, "mig", gi=1, slices=2)]
    request = GpuRequest(user="alice", container="c1", count=2)

    runtime = make_runtime(data={"limits": {"defaults": {"max_gpu_slots_per_container": 4}}})
    limits = resolve_limits(runtime.config, "alice")
    decision = runtime.hooks.allocate_gpu(runtime, request, free, free, [], limits)
    assert decision.refused == (
        "GPU quota: 0.00 of 1 GPU-equivalents in use (nothing); 2 whole GPU(s) need 2.00"
    )
    decision = runtime.hooks.allocate_gpu(
        runtime, GpuRequest(user="alice", container="c1", count=1), free, free, [], limits
    )
    assert [s.uuid for s in decision.slots] == ["GPU-0"]  # whole GPUs only, lowest index

    class Custom:  # an allocator plugin replaces the trylast built-in
        @hookimpl
        def allocate_gpu(self, free_slots):
            return AllocationDecision(slots=[s for s in free_slots if s.kind == "mig"])

    runtime = make_runtime(("custom", Custom()))
    decision = runtime.hooks.allocate_gpu(runtime, request, free, free, [], limits)
    assert [s.uuid for s in decision.slots] == ["MIG-2-1"]


def test_hook_prepare_container(make_runtime):
    class Labels:
        @hookimpl
        def prepare_container(self, spec):
            spec.body.setdefault("Labels", {})["ds01.user"] = spec.user

    class NoPrivileged:
        @hookimpl
        def prepare_container(self, spec):
            if spec.body.get("HostConfig", {}).get("Privileged"):
                return Refusal("privileged containers are not allowed", "security")
            return None

    runtime = make_runtime(("labels", Labels()), ("sec", NoPrivileged()))
    spec = ContainerSpec(user="alice", name="c1", body={"Image": "busybox"})
    assert runtime.hooks.prepare_container(runtime, spec) is None
    assert spec.body["Labels"] == {"ds01.user": "alice"}
    bad = ContainerSpec(user="bob", name="c2", body={"HostConfig": {"Privileged": True}})
    refusal = runtime.hooks.prepare_container(runtime, bad)
    assert refusal == Refusal("privileged containers are not allowed", "security")


def test_hook_check_build(make_runtime):
    """Every plugin is asked about a build's images; the first refusal is the answer."""
    asked = []

    class Watcher:
        @hookimpl
        def check_build(self, user, images):
            asked.append((user, list(images)))

    class NoLatest:
        @hookimpl
        def check_build(self, images):
            bad = [i for i in images if i.endswith(":latest")]
            return Refusal(f"pin a tag: {bad[0]}", "pins") if bad else None

    runtime = make_runtime(("watch", Watcher()), ("pins", NoLatest()))
    assert runtime.hooks.check_build(runtime, "alice", ["busybox:1.36"]) is None
    refusal = runtime.hooks.check_build(runtime, "bob", ["busybox:1.36", "python:latest"])
    assert refusal == Refusal("pin a tag: python:latest", "pins")
    assert asked == [("alice", ["busybox:1.36"]), ("bob", ["busybox:1.36", "python:latest"])]


def test_cycle_survives_a_broken_plugin(make_runtime):
    class Explodes:
        @hookimpl
        def enforce_limits(self, user):
            raise RuntimeError("cgroup tree unwritable")

    class Detector:
        @hookimpl
        def detect_workloads(self):
            return [container("c1", "alice")]

    runtime = make_runtime(("x", Explodes()), ("d", Detector()))
    began = time.perf_counter()
    report = run_cycle(runtime)
    took = time.perf_counter() - began
    assert [w.id for w in report.workloads] == ["c1"]
    assert report.errors == ["enforce alice (x): cgroup tree unwritable"]
    assert 0 < report.seconds <= took  # the cycle's own duration, measured
    assert dt.datetime.now(dt.UTC) >= runtime.now() - dt.timedelta(seconds=5)


def test_hook_user_group(make_runtime):
    from ds01_core.domain.user_limits import effective_limits

    class Directory:
        @hookimpl
        def user_group(self, user):
            return {"bob": "researcher", "carol": "no-such-group"}.get(user)

    runtime = make_runtime(
        ("dir", Directory()),
        data={
            "limits": {
                "groups": {
                    "student": {"members": ["bob", "carol"], "max_gpu_equivalents": 0.5},
                    "researcher": {"max_gpu_equivalents": 2},
                }
            }
        },
    )
    bob = effective_limits(runtime, "Bob")
    assert (bob.group, bob["max_gpu_equivalents"]) == ("researcher", 2)
    assert bob.values["max_gpu_equivalents"].source == "group researcher"
    carol = effective_limits(runtime, "carol")  # an undefined group is not believed
    assert (carol.group, carol["max_gpu_equivalents"]) == ("student", 0.5)
    dave = effective_limits(runtime, "dave")  # nobody answers: the file decides (no group)
    assert dave.group is None


def test_hook_explain_user_group(make_runtime, tmp_path):
    class Directory:
        @hookimpl
        def user_group(self, user):
            return "researcher" if user == "bob" else None

        @hookimpl
        def explain_user_group(self, user):
            return "directory: in researcher (precedence 20)" if user == "bob" else None

    class Silent:
        @hookimpl
        def explain_user_group(self, user):
            return None

    runtime = make_runtime(
        ("dir", Directory()),
        ("silent", Silent()),
        data={"limits": {"groups": {"researcher": {"max_gpu_equivalents": 2}}}},
    )
    assert runtime.hooks.explain_user_group(runtime, "bob") == [
        "directory: in researcher (precedence 20)"
    ]
    assert runtime.hooks.explain_user_group(runtime, "carol") == []


def test_hook_quota_usage(make_runtime):
    from ds01_core.domain.model import QuotaLine
    from ds01_core.domain.user_limits import effective_limits

    class Memory:
        @hookimpl
        def quota_usage(self, user, limits):
            return [QuotaLine("memory", 3 * 1024**3, limits["memory_max"], "bytes", "cgroup")]

    class Broken:
        @hookimpl
        def quota_usage(self):
            raise OSError("repquota not found")

    runtime = make_runtime(
        ("mem", Memory()),
        ("broken", Broken()),
        data={"limits": {"defaults": {"memory_max": "4g"}}},
    )
    lines = runtime.hooks.quota_usage(runtime, "alice", effective_limits(runtime, "alice"))
    assert lines[0] == QuotaLine("memory", 3 * 1024**3, 4 * 1024**3, "bytes", "cgroup")
    assert (lines[1].resource, lines[1].detail) == ("broken", "unavailable: repquota not found")
