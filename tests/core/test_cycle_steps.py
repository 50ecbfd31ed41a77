"""The daemon cycle's named steps: the listing, the admin's order and disabled steps, bad orders
refused by their path, and a step a plugin adds through ``cycle_steps``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ds01_core.cycle.daemon import Daemon
from ds01_core.cycle.pipeline import cycle_plan, run_cycle
from ds01_core.cycle.steps import CycleStep
from ds01_core.domain.config import ConfigError, build_config
from ds01_core.domain.model import Event, Workload
from ds01_core.framework.hookspecs import hookimpl
from ds01_core.framework.manager import make_plugin_host
from ds01_core.framework.runtime import Runtime
from ds01_core.transports.cli import cli

DEFAULT = [
    "detect",
    "gpu-health",
    "reconcile-allocations",
    "owner-map",
    "label-migration",
    "reconcile",
    "enforce-limits",
    "idle",
]
PARTIAL = [DEFAULT[0], *DEFAULT[2:6]]  # gpu-health runs in full cycles only


def base(tmp_path: Path) -> dict:
    return {
        "paths": {k: str(tmp_path / k) for k in ("state_dir", "log_dir", "runtime_dir")},
        "gpu": {"backend": "simulated"},
    }


@pytest.fixture
def make_runtime(tmp_path):
    """Built-ins and the given plugins, no detectors (nothing looks at this machine): the
    cycle's inventory is given to ``run_cycle``."""

    def make(*plugins: tuple[str, object], cycle: dict | None = None) -> Runtime:
        data = base(tmp_path)
        if cycle is not None:
            data["cycle"] = cycle
        host = make_plugin_host(
            extra=plugins,
            disabled=["docker-detector", "gpu-process-detector"],
            load_entry_points=False,
        )
        return Runtime(build_config(data, sections=host.config_sections()), host)

    return make


def legacy_box(cid: str = "c1") -> Workload:
    """A container made by the old tooling: the label-migration step records it."""
    return Workload(
        kind="container",
        id=cid * 8,
        name=f"box-{cid}",
        origin="docker",
        owner="alice",
        owner_source="label",
        status="running",
        labels={"aime.mlc.USER": "alice", "aime.mlc.FRAMEWORK": "pytorch"},
    )


class Recorder:
    """A plugin adding two steps that write down when they ran and what they saw."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, list[str]]] = []

    @hookimpl
    def cycle_steps(self):
        def step(name: str):
            def run(ctx):
                self.ran.append((name, [w.id for w in ctx.workloads]))
                return [Event(f"recorder.{name}", "alice", "recorder")]

            return run

        return [
            CycleStep("first", step("first"), "the first recorder", before="enforce-limits"),
            CycleStep("second", step("second"), "the second recorder", before="enforce-limits"),
        ]


# -- a plugin's step --------------------------------------------------------------------------


def test_hook_cycle_steps(make_runtime):
    recorder = Recorder()
    runtime = make_runtime(("recorder", recorder))
    plan = cycle_plan(runtime)
    placed = {a.step.name: (a.position, a.step.provider) for a in plan.steps}
    # before enforce-limits, in the order the plugin gave them, provided by the plugin
    assert placed["first"] == (7, "recorder") and placed["second"] == (8, "recorder")
    assert placed["enforce-limits"] == (9, "core")

    report = run_cycle(runtime, workloads=[legacy_box()])
    assert report.steps == [*DEFAULT[:6], "first", "second", "enforce-limits", "idle"]
    assert recorder.ran == [("first", ["c1" * 8]), ("second", ["c1" * 8])]
    logged = [e["event_type"] for e in runtime.events.query(type_prefix="recorder.")]
    assert logged == ["recorder.first", "recorder.second"]
    assert report.errors == []


def test_a_partial_cycle_runs_only_the_partial_steps(make_runtime):
    recorder = Recorder()
    runtime = make_runtime(("recorder", recorder))
    report = run_cycle(runtime, partial=True, workloads=[])
    assert report.steps == PARTIAL
    assert recorder.ran == []


def test_a_step_that_raises_costs_only_itself(make_runtime):
    class Broken:
        @hookimpl
        def cycle_steps(self):
            def run(ctx):
                raise RuntimeError("directory unreachable")

            return [CycleStep("sync", run, "breaks", before="reconcile-allocations")]

    runtime = make_runtime(("broken", Broken()))
    report = run_cycle(runtime, workloads=[legacy_box()])
    assert report.errors == ["sync (broken): directory unreachable"]
    assert report.steps == ["detect", "gpu-health", "sync", *DEFAULT[2:]]
    # the steps after it still did their work
    assert [e.event_type for e in report.events] == ["plugin.failed", "labels.migration_recorded"]
    failed = runtime.events.query(type_prefix="plugin.failed")
    assert [e["details"]["hook"] for e in failed] == ["cycle step sync"]


def test_a_plugin_whose_cycle_steps_raises_is_reported_every_cycle(make_runtime):
    class Broken:
        @hookimpl
        def cycle_steps(self):
            raise RuntimeError("no steps today")

    runtime = make_runtime(("broken", Broken()))
    for _ in range(2):
        report = run_cycle(runtime, workloads=[])
        assert report.errors == ["cycle_steps (broken): no steps today"]
        assert report.steps == DEFAULT


def test_a_step_name_taken_twice_keeps_the_first(make_runtime):
    class Clash:
        @hookimpl
        def cycle_steps(self):
            return [CycleStep("idle", lambda ctx: None, "another idle")]

    runtime = make_runtime(("clash", Clash()))
    report = run_cycle(runtime, workloads=[])
    assert report.steps == DEFAULT
    assert report.errors == [
        "cycle: step 'idle' of 'clash' left out: 'core' already provides a step of that name"
    ]


# -- the admin's order ----------------------------------------------------------------------


def test_the_admin_reorders_steps(make_runtime):
    recorder = Recorder()
    order = ["detect", "second", "label-migration", "first"]
    runtime = make_runtime(("recorder", recorder), cycle={"order": order})
    report = run_cycle(runtime, workloads=[])
    # named steps in that order; the others after every step that comes before them by default
    assert report.steps == [
        "detect",
        "gpu-health",
        "reconcile-allocations",
        "owner-map",
        "second",
        "label-migration",
        "reconcile",
        "first",
        "enforce-limits",
        "idle",
    ]
    assert [name for name, _ in recorder.ran] == ["second", "first"]


def test_a_disabled_step_does_not_run(make_runtime, tmp_path):
    box = legacy_box()
    kept = make_runtime()
    assert run_cycle(kept, workloads=[box]).steps == DEFAULT
    with kept.state.transaction() as db:
        assert db.execute("SELECT COUNT(*) FROM label_migrations").fetchone()[0] == 1
    assert (tmp_path / "runtime_dir" / "gpu-owners").is_dir()  # written by owner-map

    (tmp_path / "runtime_dir" / "gpu-owners").rmdir()
    off = make_runtime(cycle={"disabled": ["label-migration", "owner-map"]})
    with off.state.transaction() as db:
        db.execute("DELETE FROM label_migrations")
    report = run_cycle(off, workloads=[legacy_box("c2")])
    assert report.steps == [
        "detect",
        "gpu-health",
        "reconcile-allocations",
        "reconcile",
        "enforce-limits",
        "idle",
    ]
    assert [e.event_type for e in report.events] == []
    with off.state.transaction() as db:
        assert db.execute("SELECT COUNT(*) FROM label_migrations").fetchone()[0] == 0
    assert not (tmp_path / "runtime_dir" / "gpu-owners").exists()


@pytest.mark.parametrize(
    ("cycle", "problems"),
    [
        (
            {"order": ["detect", "no-such-step"]},
            [
                "cycle.order[1]: no cycle step is called 'no-such-step' (is its plugin "
                "disabled?); the steps are: " + ", ".join(DEFAULT)
            ],
        ),
        (
            {"order": ["label-migration", "detect"]},
            ["cycle.order[0]: 'label-migration' must run after 'detect', which it needs"],
        ),
        (
            {"order": ["detect", "owner-map", "reconcile-allocations"]},
            ["cycle.order[1]: 'owner-map' must run after 'reconcile-allocations', which it needs"],
        ),
        (
            {"order": ["detect", "idle", "idle"]},
            ["cycle.order[2]: 'idle' is listed twice"],
        ),
        (
            {"disabled": ["idle", "detect"]},
            [
                "cycle.disabled[1]: 'detect' cannot be turned off: 'gpu-health', "
                "'reconcile-allocations', 'owner-map', 'label-migration', 'reconcile', "
                "'enforce-limits' need it (turn those off too)"
            ],
        ),
        (
            {"disabled": ["typo"]},
            [
                "cycle.disabled[0]: no cycle step is called 'typo' (is its plugin disabled?); "
                "the steps are: " + ", ".join(DEFAULT)
            ],
        ),
    ],
)
def test_a_bad_cycle_section_is_refused_by_its_path(make_runtime, cycle, problems):
    runtime = make_runtime(cycle=cycle)
    with pytest.raises(ConfigError) as refused:
        run_cycle(runtime, workloads=[])
    assert [str(p) for p in refused.value.problems] == problems


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_check_and_the_daemon_refuse_a_bad_order(tmp_path):
    good = write(tmp_path / "good.yaml", base(tmp_path))
    bad = write(tmp_path / "bad.yaml", {**base(tmp_path), "cycle": {"order": ["idle", "detect"]}})
    checked = CliRunner().invoke(cli, ["--no-plugins", "config", "check", str(bad)])
    assert checked.exit_code == 2
    assert "cycle.order[0]: 'idle' must run after 'detect', which it needs" in checked.output
    assert CliRunner().invoke(cli, ["--no-plugins", "config", "check", str(good)]).exit_code == 0

    with pytest.raises(ConfigError, match=r"cycle.order\[0\]: 'idle' must run after 'detect'"):
        Daemon(str(bad), no_plugins=True)
    daemon = Daemon(str(good), no_plugins=True)
    try:
        running = daemon.runtime
        good.write_text(bad.read_text())
        assert daemon.reload() is False
        assert daemon.runtime is running  # the last good configuration carries on
        refused = daemon.runtime.events.query(type_prefix="config.reload_refused")
        assert "cycle.order[0]" in refused[0]["details"]["error"]
    finally:
        daemon.runtime.close()


# -- what the admin sees ----------------------------------------------------------------------


def test_ds01_plugins_cycle_lists_the_steps(tmp_path):
    config = write(
        tmp_path / "ds01.yaml",
        {**base(tmp_path), "cycle": {"order": ["detect", "label-migration"], "disabled": ["idle"]}},
    )
    args = ["--config", str(config), "--no-plugins", "plugins", "--cycle"]
    listing = CliRunner().invoke(cli, [*args, "--json"])
    assert listing.exit_code == 0, listing.output
    steps = json.loads(listing.output)["steps"]
    assert [(s["name"], s["provider"], s["position"]) for s in steps] == [
        ("detect", "core", 1),
        ("gpu-health", "core", 2),
        ("reconcile-allocations", "gpu-allocations", 3),
        ("owner-map", "gpu-allocations", 4),
        ("label-migration", "label-migration", 5),
        ("reconcile", "core", 6),
        ("enforce-limits", "core", 7),
        ("idle", "core", None),
    ]
    by_name = {s["name"]: s for s in steps}
    assert by_name["idle"]["enabled"] is False and by_name["idle"]["default_position"] == 8
    assert by_name["detect"]["plugins"] == ["docker-detector", "gpu-process-detector"]
    assert by_name["reconcile"]["plugins"] == ["bare-metal"]
    assert by_name["owner-map"]["needs"] == ["detect", "reconcile-allocations"]
    assert [s["partial"] for s in steps] == [True, False] + [True] * 4 + [False] * 2

    table = CliRunner().invoke(cli, args, terminal_width=200)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split()[:4] == ["#", "STEP", "PROVIDED", "BY"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["1", "detect", "core", "runs"],
        ["2", "gpu-health", "core", "runs"],
        ["3", "reconcile-allocations", "gpu-allocations", "runs"],
        ["4", "owner-map", "gpu-allocations", "runs"],
        ["5", "label-migration", "label-migration", "runs"],
        ["6", "reconcile", "core", "runs"],
        ["7", "enforce-limits", "core", "runs"],
        ["-", "idle", "core", "disabled"],
    ]


def test_ds01_plugins_cycle_reports_a_bad_section_and_shows_the_default(tmp_path):
    config = write(tmp_path / "ds01.yaml", {**base(tmp_path), "cycle": {"disabled": ["nope"]}})
    result = CliRunner().invoke(
        cli, ["--config", str(config), "--no-plugins", "plugins", "--cycle", "--json"]
    )
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [s["name"] for s in data["steps"]] == DEFAULT
    assert data["errors"][0].startswith("cycle.disabled[0]: no cycle step is called 'nope'")


class GroupCounter:
    """A directory plugin that counts how often the core asks for each user's group."""

    def __init__(self) -> None:
        self.asked: dict[str, int] = {}

    @hookimpl
    def user_group(self, runtime: Runtime, user: str) -> str | None:
        self.asked[user] = self.asked.get(user, 0) + 1
        return None


def test_each_users_limits_are_resolved_once_per_cycle(make_runtime):
    """Limits cost a directory look-up and the stored overrides: the enforce and idle steps
    share one resolution per user per cycle, however many containers the user has."""
    counter = GroupCounter()
    runtime = make_runtime(("groups", counter))
    boxes = [legacy_box(c) for c in ("c1", "c2", "c3")] + [
        Workload("container", "d" * 64, "bob-box", "docker", "bob", "label", "running")
    ]
    report = run_cycle(runtime, workloads=boxes)
    assert report.steps == DEFAULT and report.errors == []
    assert counter.asked == {"alice": 1, "bob": 1}
    run_cycle(runtime, workloads=boxes)  # the next cycle asks again: changes apply from then
    assert counter.asked == {"alice": 2, "bob": 2}
