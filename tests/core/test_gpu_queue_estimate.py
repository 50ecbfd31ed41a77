"""``gpu.queue``'s estimated wait: a waiting request's position times the median wait of the
requests served from the queue in the last week; none when too few were served to say."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from ds01_core.domain.model import utc_text
from ds01_core.domain.state.gpu_queue import typical_wait
from ds01_core.domain.state.owner_process import process_start_ticks
from ds01_core.framework.runtime import load_runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.operations import ServiceContext
from tests.helpers.config import write_config


def _ticket(db, user, enqueued, left=None, outcome=None, alive=False):
    db.execute(
        "INSERT INTO gpu_queue (user, container_name, request, enqueued_at, pid, pid_start, "
        "wake_path, left_at, outcome) VALUES (?, ?, '{}', ?, ?, ?, '', ?, ?)",
        (
            user,
            f"{user}-box",
            utc_text(enqueued),
            os.getpid() if alive else 999_999_999,
            process_start_ticks(os.getpid()) if alive else 0,
            None if left is None else utc_text(left),
            outcome,
        ),
    )


def test_the_estimate_is_the_position_times_the_median_served_wait(tmp_path: Path) -> None:
    runtime = load_runtime(str(write_config(tmp_path)))
    now = runtime.now()
    with runtime.state.transaction() as db:
        assert typical_wait(db, now) is None
        for minutes in (1, 2, 10):  # served lately: the median is 2 minutes
            start = now - dt.timedelta(hours=1)
            _ticket(db, "x", start, start + dt.timedelta(minutes=minutes), "served")
        old = now - dt.timedelta(days=9)  # older than a week, or not served: not counted
        _ticket(db, "x", old, old + dt.timedelta(hours=5), "served")
        _ticket(db, "x", now - dt.timedelta(hours=2), now, "timeout")
        assert typical_wait(db, now) == 120.0
        _ticket(db, "ds01ta", now - dt.timedelta(minutes=3), alive=True)
        _ticket(db, "ds01tb", now - dt.timedelta(minutes=1), alive=True)
    rows = call(ServiceContext(runtime, Caller("root", 0, True)), "gpu.queue")
    assert [(r["position"], r["estimated_wait_seconds"]) for r in rows] == [(1, 120), (2, 240)]


def test_no_estimate_from_too_few_served_requests(tmp_path: Path) -> None:
    runtime = load_runtime(str(write_config(tmp_path)))
    now = runtime.now()
    with runtime.state.transaction() as db:
        _ticket(db, "x", now - dt.timedelta(minutes=9), now - dt.timedelta(minutes=8), "served")
        _ticket(db, "ds01ta", now, alive=True)
    (row,) = call(ServiceContext(runtime, Caller("root", 0, True)), "gpu.queue")
    assert row["estimated_wait_seconds"] is None
