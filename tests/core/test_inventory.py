"""The inventory: what changed between two cycles becomes events; the users' snapshot."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner

from ds01_core.cycle.detection.inventory import diff_events, read_snapshot, write_snapshot
from ds01_core.domain.model import Workload
from ds01_core.transports.cli import cli

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def box(cid, status="running", owner="alice", flags=(), slots=()):
    return Workload(
        "container",
        cid,
        f"name-{cid}",
        "docker",
        owner,
        "label:ds01.user",
        status,
        gpu_slots=list(slots),
        flags=list(flags),
        created_at=NOW,
    )


def proc(pid, owner="bob"):
    return Workload(
        "process",
        str(pid),
        "python",
        "host",
        owner,
        "process_uid",
        "running",
        gpu_slots=["GPU-1"],
        pids=[pid],
        cmdline="python train.py",
        flags=["unmanaged_gpu"],
    )


def test_every_kind_of_change_is_an_event():
    before = [box("a"), box("b"), box("c"), proc(10)]
    after = [
        box("a", status="paused"),
        box("b", status="exited"),
        box("d", flags=["unmanaged_gpu"], slots=["GPU-2"]),
        proc(11),
    ]
    events = {(e.event_type, e.details.get("id")) for e in diff_events(before, after)}
    assert events == {
        ("detection.container_status_changed", "a"),
        ("detection.container_exited", "b"),
        ("detection.container_exited", "c"),  # removed while running: it exited too
        ("detection.container_discovered", "d"),
        ("detection.unmanaged_gpu_workload", "d"),
        ("detection.host_gpu_process_exited", "10"),
        ("detection.host_gpu_process_discovered", "11"),
        ("detection.unmanaged_gpu_workload", "11"),
    }
    exited = next(e for e in diff_events(before, after) if e.details.get("id") == "c")
    assert exited.user == "alice" and exited.details["status"] == "removed"
    assert diff_events(after, after) == []  # nothing changed, nothing logged


def test_snapshot_round_trip_and_by_user_listing(tmp_config, tmp_path):
    config = tmp_config()
    workloads = [box("a", slots=["GPU-1"]), box("b", status="exited"), proc(7), proc(8, "carol")]
    path = config.parent / "run" / "inventory.json"
    write_snapshot(path, workloads, NOW)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    taken, back = read_snapshot(path)
    assert taken == NOW and [w.id for w in back] == ["a", "b", "7", "8"]
    assert back[2].cmdline == "python train.py" and back[0].created_at == NOW

    result = CliRunner().invoke(
        cli, ["--config", str(config), "workloads", "--snapshot", "--by-user", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["source"] == "snapshot"
    assert data["users"] == [
        {"owner": "alice", "containers": 2, "running": 1, "processes": 0, "gpu_slots": ["GPU-1"]},
        {"owner": "bob", "containers": 0, "running": 0, "processes": 1, "gpu_slots": ["GPU-1"]},
        {"owner": "carol", "containers": 0, "running": 0, "processes": 1, "gpu_slots": ["GPU-1"]},
    ]
    only = CliRunner().invoke(
        cli,
        [
            "--config",
            str(config),
            "workloads",
            "--snapshot",
            "--json",
            "--user",
            "bob",
            "--gpu-only",
        ],
    )
    assert [w["id"] for w in json.loads(only.output)["workloads"]] == ["7"]
    table = CliRunner().invoke(cli, ["--config", str(config), "workloads", "--snapshot"])
    assert table.output.splitlines()[0].startswith("snapshot from ")
