"""A real ``ds01d`` keeps the usage record of a real container's allocation: checkpointed every
cycle, so a SIGKILL loses at most one cycle; the restarted daemon resumes the open record and,
when the container is removed, closes it at the allocation's own release time, the time it
was down included."""

from __future__ import annotations

import datetime as dt
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ds01_accounting.store import db_path
from ds01_accounting.usage import usage_rows
from ds01_core.domain.state.allocations import Allocations
from ds01_core.framework.runtime import load_runtime
from tests.helpers.config import write_config
from tests.plugins.accounting import accounting_helpers

pytestmark = pytest.mark.integration

DAEMON = [sys.executable, "-c", "from ds01_core.cycle.daemon import main; main()"]
INTERVAL = 2.0
QUIET = ["gpu-process-detector", "cgroups", "diskquota", "ldap", "notify", "prometheus"]


class Daemon:
    def __init__(self, config: Path) -> None:
        self.log_path = config.parent / "ds01d.log"
        self.log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [*DAEMON, "--config", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()[-3000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)
        self.log.close()


def record(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        row = db.execute("SELECT * FROM records").fetchone()
    except sqlite3.OperationalError:  # the schema is being made
        return None
    finally:
        db.close()
    return dict(row) if row is not None else None


def wait_record(
    path: Path, daemon: Daemon, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.proc.poll() is None, daemon.output()
        row = record(path)
        if row is not None and predicate(row):
            return row
        time.sleep(0.05)
    raise AssertionError(f"no such record within {timeout}s: {record(path)}\n{daemon.output()}")


def test_a_sigkill_loses_at_most_one_cycle_and_the_restart_resumes(
    tmp_path: Path, container_factory
) -> None:
    topology = tmp_path / "topology.yaml"
    topology.write_text(yaml.safe_dump(accounting_helpers.topology()))
    config = write_config(
        tmp_path,
        {
            "gpu": {"backend": "simulated", "simulated": {"topology": str(topology)}},
            "lifecycle": {"interval": f"{INTERVAL:g}s"},
            "plugins": {"disabled": QUIET},
        },
    )
    box = container_factory({"Labels": {"ds01.user": "ds01ta"}})
    runtime = load_runtime(str(config))
    # the 3g MIG slice at 80 % (GPM): its utilisation reaches the record through the cycle
    [slot] = [s for s in runtime.gpu.slots() if s.slot_id == "1.2"]
    with runtime.state.transaction() as db:
        allocation_id = Allocations.insert_bound(
            db, "ds01ta", box.id, box.name, [slot.uuid], slot.weight, runtime.now()
        )
    path = db_path(runtime)

    daemon = Daemon(config)
    try:
        started = wait_record(path, daemon, lambda r: r["checkpoint_at"] > r["started_at"] + 3)
        assert (started["user"], started["container_id"]) == ("ds01ta", box.id)
        # GPM's second read (the first has no earlier sample) is the first measured interval
        measured = wait_record(path, daemon, lambda r: r["known"] > 0)
        assert measured["busy"] == pytest.approx(0.8 * measured["known"])
        assert measured["energy"] > 0
        wait_record(path, daemon, lambda r: r["checkpoint_at"] > measured["checkpoint_at"])
        daemon.stop(signal.SIGKILL)
        killed_at = time.time()
    finally:
        daemon.stop()
    kept = record(path)
    assert kept is not None and kept["ended_at"] is None
    # what the kill lost: less than one cycle (the interval, and the cycle's own time)
    assert killed_at - kept["checkpoint_at"] < INTERVAL + 1.5
    assert kept["gpu_eq_seconds"] == pytest.approx(
        slot.weight * (kept["checkpoint_at"] - kept["started_at"])
    )

    time.sleep(3)  # the daemon is down
    daemon = Daemon(config)
    try:
        wait_record(path, daemon, lambda r: r["checkpoint_at"] > killed_at)
        container_factory.engine.remove(box.id, force=True)
        closed = wait_record(path, daemon, lambda r: r["ended_at"] is not None)
    finally:
        daemon.stop()
    [allocation] = Allocations(runtime).history([allocation_id])
    assert allocation.released_at is not None
    held = (allocation.released_at - allocation.allocated_at).total_seconds()
    assert held > 6  # it spans the time the daemon was down
    assert closed["ended_at"] == pytest.approx(allocation.released_at.timestamp())
    assert closed["gpu_eq_seconds"] == pytest.approx(slot.weight * held, abs=1e-6)
    [row] = usage_rows(
        runtime,
        allocation.allocated_at - dt.timedelta(minutes=1),
        allocation.released_at + dt.timedelta(minutes=1),
    )
    assert row.gpu_eq_seconds == pytest.approx(slot.weight * held, abs=1e-6)
    # measured while the daemon ran; the time it was down is unknown: 80 % of the known time
    assert 0 < row.known_gpu_eq_seconds < row.gpu_eq_seconds
    assert row.busy_gpu_eq_seconds == pytest.approx(0.8 * row.known_gpu_eq_seconds)
    runtime.close()
