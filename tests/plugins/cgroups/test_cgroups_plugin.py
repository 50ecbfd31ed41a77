"""The plugin through ds01's hooks: configuration section, the create path (cgroup parent,
per-container limits, memory admission, aggregate limits written first), the cycle (changed
limits only, outside containers flagged once), the entry point and the admin CLI."""

from __future__ import annotations

import importlib.metadata as md
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from cgroups_helpers import FakeDocker, Recorder
from click.testing import CliRunner

import ds01_cgroups
from ds01_cgroups.enforcer import OUTSIDE_FLAG
from ds01_core.domain.config import ConfigError
from ds01_core.domain.model import Action, ContainerSpec, Refusal, Workload
from ds01_core.domain.user_limits import effective_limits
from ds01_core.framework.runtime import Runtime
from ds01_core.transports.cli import CliState

GiB = 1024**3
MiB = 1024**2
PARENT = "/ds01/lab/alice"
Make = Callable[..., tuple[Runtime, Any]]


def config(v1_root: Path, **alice: Any) -> dict[str, Any]:
    return {
        "limits": {
            "groups": {"lab": {"members": ["alice"]}},
            "users": {
                "alice": {
                    "memory": "16g",
                    "memory_max": "48g",
                    "max_cpus": 2,
                    "cpu_quota": 3,
                    "tasks_max": 400,
                    **alice,
                }
            },
        },
        "plugins": {"cgroups": {"cgroup_fs": str(v1_root), "driver": "cgroupfs", "version": "v1"}},
    }


def spec(body: dict[str, Any] | None = None, user: str = "alice") -> ContainerSpec:
    return ContainerSpec(user=user, name="new", body=body or {"Image": "img"})


def test_the_section_has_defaults_and_strict_checks(plugin_runtime: Make) -> None:
    runtime, _ = plugin_runtime()
    cfg = runtime.plugin_config("cgroups")
    assert (cfg.root, cfg.cgroup_fs, cfg.systemd_unit_dir, cfg.default_group) == (
        "ds01",
        "/sys/fs/cgroup",
        "/etc/systemd/system",
        "default",
    )
    assert (cfg.driver, cfg.version, cfg.data_paths) == ("auto", "auto", [])
    with pytest.raises(ConfigError) as err:
        plugin_runtime(
            {"plugins": {"cgroups": {"root": "ds-01", "data_paths": ["rel"], "driver": "x"}}}
        )
    text = str(err.value)
    assert "plugins.cgroups.driver: expected one of 'auto', 'cgroupfs', 'systemd', got 'x'" in text
    with pytest.raises(ConfigError) as err2:
        plugin_runtime({"plugins": {"cgroups": {"data_paths": ["rel"]}}})
    assert (
        "plugins.cgroups.data_paths[0]: must be an absolute path (starting with /), got 'rel'"
    ) in str(err2.value)
    with pytest.raises(ConfigError) as err3:
        plugin_runtime({"plugins": {"cgroups": {"root": "ds-01", "default_group": ".x"}}})
    assert [str(p) for p in err3.value.problems] == [
        "plugins.cgroups.root: expected a plain name (letters, digits, '_' and '.', not "
        "starting with '.'), got 'ds-01'",
        "plugins.cgroups.default_group: expected a plain name (letters, digits, '_' and '.', "
        "not starting with '.'), got '.x'",
    ]


def test_create_gets_the_owners_cgroup_and_limits(
    plugin_runtime: Make, v1_root: Path, recorder: Recorder
) -> None:
    runtime, _ = plugin_runtime(config(v1_root))
    request = spec(
        {"Image": "img", "HostConfig": {"Memory": 8 * GiB, "CgroupParent": "/elsewhere"}}
    )
    assert runtime.hooks.prepare_container(runtime, request) is None
    assert request.body["HostConfig"] == {
        "CgroupParent": PARENT,
        "Memory": 8 * GiB,  # the client's stricter value stays
        "NanoCpus": 2_000_000_000,
    }
    # the user's cgroup holds its aggregate limits before the container can start
    assert (v1_root / "memory" / "ds01/lab/alice/memory.limit_in_bytes").read_text() == str(
        48 * GiB
    )
    assert (v1_root / "cpu" / "ds01/lab/alice/cpu.cfs_quota_us").read_text() == "300000"
    assert (v1_root / "pids" / "ds01/lab/alice/pids.max").read_text() == "400"


def test_create_over_the_memory_reservation_is_refused(
    plugin_runtime: Make, v1_root: Path, fake_docker: FakeDocker, recorder: Recorder
) -> None:
    fake_docker.add("a" * 64, "a", parent=PARENT, memory=16 * GiB, owner="alice")
    fake_docker.add("b" * 64, "b", parent=PARENT, memory=24 * GiB, owner="alice")
    fake_docker.add("c" * 64, "old", parent=PARENT, memory=24 * GiB, owner="alice", state="exited")
    runtime, _ = plugin_runtime(config(v1_root))
    refusal = runtime.hooks.prepare_container(runtime, spec())
    assert refusal == Refusal(
        "memory: 40.0G of 48.0G (memory_max) reserved by your containers (a 16.0G, b 24.0G); "
        "this one asks 16.0G. Stop or remove a container, or ask for less memory.",
        "cgroups",
    )
    assert recorder.writes == []  # nothing is written for a refused container
    assert (
        runtime.hooks.prepare_container(runtime, spec({"HostConfig": {"Memory": 8 * GiB}})) is None
    )


def test_soft_mode_grants_over_the_reservation(
    plugin_runtime: Make, v1_root: Path, fake_docker: FakeDocker
) -> None:
    fake_docker.add("a" * 64, "a", parent=PARENT, memory=40 * GiB, owner="alice")
    runtime, _ = plugin_runtime({**config(v1_root), "enforcement": {"mode": "soft"}})
    assert runtime.hooks.prepare_container(runtime, spec()) is None


def test_no_driver_means_no_create(plugin_runtime: Make, fake_docker: FakeDocker) -> None:
    fake_docker.info_data = {}
    runtime, _ = plugin_runtime()
    refusal = runtime.hooks.prepare_container(runtime, spec())
    assert refusal is not None and refusal.reason.startswith(
        "cannot place the container in your cgroup: cannot tell Docker's cgroup driver"
    )


def test_the_cycle_applies_changes_only_and_flags_outsiders(
    plugin_runtime: Make, v1_root: Path, fake_docker: FakeDocker, recorder: Recorder
) -> None:
    fake_docker.add("in" * 32, "inside", parent=PARENT, owner="alice")
    fake_docker.add("out" * 21 + "x", "raw", parent="", owner="alice")
    runtime, _ = plugin_runtime(config(v1_root))
    limits = effective_limits(runtime, "alice")

    def cycle() -> tuple[list[Action], list[Workload]]:
        workloads = [
            Workload("container", cid, c["Name"][1:], "docker", "alice", "label", "running")
            for cid, c in fake_docker.containers.items()
        ]
        return runtime.hooks.enforce_limits(runtime, "alice", limits, workloads), workloads

    actions, workloads = cycle()
    assert [(a.kind, a.target) for a in actions] == [
        ("limits_applied", PARENT),
        ("outside_cgroup", "out" * 21 + "x"),
    ]
    assert actions[1].detail.startswith(
        "raw: cgroup parent Docker's default cgroup, not /ds01/lab/alice; its CPU, memory, pids "
        "and IO are outside alice's limits"
    )
    assert [w.flags for w in workloads] == [[], [OUTSIDE_FLAG]]

    recorder.writes.clear()
    fake_docker.calls.clear()
    actions, workloads = cycle()
    assert actions == []  # reported once; nothing changed, nothing written, nothing asked
    assert recorder.writes == [] and fake_docker.calls == []
    assert workloads[1].flags == [OUTSIDE_FLAG]  # but flagged every cycle

    runtime.config.limits.users["alice"].tasks_max = 500
    limits = effective_limits(runtime, "alice")
    actions, _ = cycle()
    assert [(a.kind, a.detail) for a in actions] == [("limits_applied", "pids.max=500")]
    assert recorder.writes == [(f"{v1_root}/pids/ds01/lab/alice/pids.max", "500")]


def test_a_failed_write_is_an_action(plugin_runtime: Make, v1_root: Path) -> None:
    def refuse(path: Path, text: str) -> None:
        raise PermissionError(13, "Permission denied")

    runtime, _ = plugin_runtime(config(v1_root), write=refuse)
    actions = runtime.hooks.enforce_limits(runtime, "alice", effective_limits(runtime, "alice"), [])
    assert [a.kind for a in actions] == ["limits_failed"]
    assert "Permission denied" in actions[0].detail


def test_the_entry_point_is_installed() -> None:
    found = [ep for ep in md.entry_points(group="ds01") if ep.name == "cgroups"]
    assert [(ep.value, ep.dist.name if ep.dist else None) for ep in found] == [
        ("ds01_cgroups", "ds01-cgroups")
    ]
    assert found[0].load() is ds01_cgroups


def admin_cli() -> click.Group:
    root = click.Group("ds01")
    root.add_command(click.Group("admin"))
    ds01_cgroups.add_cli_commands(root)
    return root


def test_admin_cgroups_check(
    plugin_runtime: Make, v1_root: Path, fake_docker: FakeDocker, tmp_path: Path
) -> None:
    fake_docker.add("in" * 32, "inside", parent=PARENT, owner="alice")
    fake_docker.add("out" * 21 + "x", "raw", parent="", owner="alice")
    runtime, _ = plugin_runtime(config(v1_root))
    state = CliState(None, True)
    state.__dict__["runtime"] = runtime
    cli = admin_cli()
    assert "cgroups" in cli.commands["admin"].commands  # type: ignore[attr-defined]

    result = CliRunner().invoke(cli, ["admin", "cgroups", "check", "--json"], obj=state)
    assert result.exit_code == 1, result.output
    (report,) = json.loads(result.output)
    assert report["user"] == "alice" and report["cgroup"] == PARENT and not report["ok"]
    assert report["mismatches"] == [
        {
            "file": f"{v1_root}/*/ds01/lab/alice",
            "device": None,
            "expected": "a cgroup directory",
            "actual": None,
        }
    ]
    assert [o["name"] for o in report["outside_cgroup"]] == ["raw"]

    runtime.hooks.prepare_container(runtime, spec({"HostConfig": {"Memory": GiB}}))  # writes limits
    del fake_docker.containers["out" * 21 + "x"]
    result = CliRunner().invoke(cli, ["admin", "cgroups", "check"], obj=state)
    assert result.exit_code == 0, result.output
    assert "alice" in result.output and "ok" in result.output

    (v1_root / "pids/ds01/lab/alice/pids.max").write_text("max\n")
    wide = CliRunner(env={"COLUMNS": "400"})
    result = wide.invoke(cli, ["admin", "cgroups", "check", "--user", "Alice@lab"], obj=state)
    assert result.exit_code == 1
    assert "pids.max: expected '400', found 'max'" in result.output


def test_the_systemd_driver_through_the_hooks(
    plugin_runtime: Make, tmp_path: Path, recorder: Recorder
) -> None:
    units = tmp_path / "units"
    runtime, _ = plugin_runtime(
        {
            "limits": {"users": {"jean-luc": {"cpu_quota": 0.5, "tasks_max": 64}}},
            "plugins": {
                "cgroups": {
                    "driver": "systemd",
                    "version": "v2",
                    "systemd_unit_dir": str(units),
                    "cgroup_fs": str(tmp_path / "cg"),
                }
            },
        }
    )
    request = spec(user="jean-luc")
    assert runtime.hooks.prepare_container(runtime, request) is None
    assert request.body["HostConfig"]["CgroupParent"] == "ds01-default-jean\\x2dluc.slice"
    assert (units / "ds01-default-jean\\x2dluc.slice.d/50-ds01-limits.conf").read_text() == (
        "# Generated by ds01 (ds01-cgroups); changes here are overwritten.\n"
        "[Slice]\nCPUQuota=50%\nTasksMax=64\n"
    )
    assert [c[:3] for c in recorder.commands] == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "set-property", "--runtime"],
    ]
    recorder.commands.clear()
    limits = effective_limits(runtime, "jean-luc")
    assert runtime.hooks.enforce_limits(runtime, "jean-luc", limits, []) == []
    assert recorder.commands == []


def test_ds01_lists_the_admin_command() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ds01_core.transports.cli import main; main(['admin', 'cgroups', '--help'])",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "check  Compare every user's cgroup on disk with the configuration." in done.stdout
