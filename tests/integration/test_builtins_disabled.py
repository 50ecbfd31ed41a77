"""Each built-in plugin can be disabled without breaking the others: a daemon cycle and
``ds01 workloads`` against the real engine, with one built-in off at a time.

What each built-in does is checked both ways: done when it is active, absent when it is the one
turned off (so the check really depends on it). Nothing raises and no cycle error is reported.
"""

from __future__ import annotations

import json
import subprocess

import attrs
import pytest
import yaml
from click.testing import CliRunner

from ds01_core.cycle.daemon import Daemon
from ds01_core.domain.gpu.simulated import SimulatedProvider
from ds01_core.domain.model import DeliveryResult, GpuRequest, Notice, Workload
from ds01_core.domain.policy import policy_for
from ds01_core.domain.state.allocations import Allocations
from ds01_core.framework.manager import BUILTIN_PLUGINS
from ds01_core.transports.cli import cli

BUILTINS = [name for name, _ in BUILTIN_PLUGINS]


def test_every_builtin_is_covered():
    assert set(BUILTINS) == {
        "docker-detector",
        "gpu-process-detector",
        "gpu-allocations",
        "label-migration",
        "whole-gpu-allocator",
        "idle-policy",
        "event-notifier",
        "bare-metal",
    }, "a new built-in: say below what it does when active"


@pytest.mark.parametrize("off", BUILTINS)
def test_each_builtin_can_be_disabled_without_breaking_the_others(
    off, tmp_config, tmp_path, container_factory, unix_users
):
    owner, stranger = unix_users["ds01ta"], unix_users["ds01tb"]
    active = set(BUILTINS) - {off}
    slot = next(s for s in SimulatedProvider().slots() if s.kind == "gpu")
    host = subprocess.Popen(["sleep", "3600"], user=stranger.uid)  # GPU work outside a container
    processes = tmp_path / "gpu-processes.yaml"
    processes.write_text(yaml.safe_dump([{"pid": host.pid, "slot": slot.uuid}]))
    config = tmp_config(
        {
            "gpu": {"simulated": {"processes_file": str(processes)}},
            "detection": {"process_confirm_cycles": 1},
            "plugins": {"disabled": [off]},
            # the engine is shared: this cycle must not act on other runs' containers
            "allocation": {"foreign_slot_action": "log"},
            "limits": {"defaults": {"idle_timeout": "never", "max_runtime": "never"}},
            "lifecycle": {"created_timeout": "never", "container_hold_after_stop": "never"},
        }
    )
    box = container_factory({"Labels": {"ds01.user": owner.name, "aime.mlc.USER": owner.name}})
    daemon = Daemon(str(config), no_plugins=True)
    try:
        runtime = daemon.runtime
        allocations = Allocations(runtime)
        stale = None
        if "whole-gpu-allocator" in active:  # the one allocator without entry points
            stale = allocations.allocate(GpuRequest(user=owner.name, container="gone")).allocation
            allocations.bind(stale.id, "f" * 64)  # a container the engine never had

        report = daemon.cycle()

        assert report.errors == []
        seen = {w.id: w for w in report.workloads}
        found = {
            (e.event_type, e.details.get("container_id") or e.details.get("pid"))
            for e in report.events
        }
        # docker-detector: the container, with its owner
        assert (box.id in seen) == ("docker-detector" in active)
        # gpu-process-detector: the host process, attributed without the docker detector
        assert (str(host.pid) in seen) == ("gpu-process-detector" in active)
        if "gpu-process-detector" in active:
            assert seen[str(host.pid)].owner == stranger.name
        # gpu-allocations: the allocation of a container that is gone released, owner map written
        if stale is not None:  # (other runs' containers on the shared engine may be adopted)
            still_held = stale.id in {a.id for a in allocations.live()}
            assert still_held == ("gpu-allocations" not in active)
        assert runtime.config.allocation_owner_map_dir.is_dir() == ("gpu-allocations" in active)
        # label-migration: the legacy container's mapping recorded (once the container is seen)
        recorded = ("labels.migration_recorded", box.id) in found
        assert recorded == ({"label-migration", "docker-detector"} <= active)
        # bare-metal: the host process of a user without access reported
        reported = ("bare_metal.unauthorised", host.pid) in found
        assert reported == ({"bare-metal", "gpu-process-detector"} <= active)
        # event-notifier: every notice in the audit log
        delivered = runtime.hooks.notify(runtime, Notice(owner.name, "hello", "hi", "info", None))
        assert (DeliveryResult("audit-log", True) in delivered) == ("event-notifier" in active)
        # whole-gpu-allocator: it decides (checked above by allocating); idle-policy: it stops
        # (without the docker detector the container is not in the inventory: ask about it as
        # ds01 would describe it)
        idle_box = seen.get(box.id) or Workload(
            "container", box.id, box.name, "ds01", owner.name, "label", "running"
        )
        policy = attrs.evolve(policy_for(runtime, idle_box, 1.0), idle_timeout=3600.0)
        decided = runtime.hooks.on_idle(runtime, idle_box, 7200.0, policy)
        assert decided == ("stop" if "idle-policy" in active else None)

        # the daemon's Docker events name the owner, with or without the docker detector
        event = {
            "Type": "container",
            "Action": "start",
            "Actor": {"ID": box.id, "Attributes": {"name": box.name}},
        }
        daemon.handle_docker_event(runtime.docker, event)
        started = runtime.events.query(type_prefix="container.started")
        assert [(e["user"], e["details"]["container_id"]) for e in started] == [
            (owner.name, box.id)
        ]

        # ds01 workloads: the live listing, from whichever detectors are there
        listing = CliRunner().invoke(
            cli, ["--config", str(config), "--no-plugins", "workloads", "--json"]
        )
        assert listing.exit_code == 0, listing.output
        ids = {w["id"] for w in json.loads(listing.stdout)["workloads"]}
        assert (box.id in ids) == ("docker-detector" in active)
        assert (str(host.pid) in ids) == ("gpu-process-detector" in active)
    finally:
        daemon.runtime.close()
        host.kill()
        host.wait()
