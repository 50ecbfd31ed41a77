"""Allocation under real concurrency and real crashes: many OS processes, one state store.

No mocks: each worker is a forked process with its own runtime, connection and plugins, as
concurrent `ds01 container create` commands and the daemon would be.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import yaml

from ds01_core.cycle.allocation_reconcile import reconcile_allocations
from ds01_core.domain.model import GpuRequest
from ds01_core.domain.state.allocations import AllocationRefused, Allocations
from ds01_core.framework.runtime import load_runtime

USERS = ("ann", "ben", "cat", "dan")
QUOTA = 1.5


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "ds01.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "paths": {k: str(tmp_path / k) for k in ("state_dir", "log_dir", "runtime_dir")},
                "gpu": {"backend": "simulated"},
                "limits": {
                    "defaults": {
                        "max_gpu_equivalents": QUOTA,
                        "max_gpu_slots_per_container": 2,
                        "max_containers_per_user": 4,
                    }
                },
            }
        )
    )
    return config


def violations(db: sqlite3.Connection) -> list[str]:
    """Double bookings and quota overruns, read from the store itself."""
    found = []
    for uuid, holders in db.execute(
        "SELECT s.slot_uuid, COUNT(*) FROM allocation_slots s JOIN allocations a "
        "ON a.id = s.allocation_id WHERE a.released_at IS NULL GROUP BY s.slot_uuid "
        "HAVING COUNT(*) > 1"
    ):
        found.append(f"slot {uuid} held {holders} times")
    for user, total in db.execute(
        "SELECT user, SUM(weight) FROM allocations WHERE released_at IS NULL GROUP BY user"
    ):
        if total > QUOTA + 1e-9:
            found.append(f"{user} holds {total:.3f} > {QUOTA}")
    return found


def worker(config: str, seed: int, steps: int, queue: multiprocessing.Queue) -> None:
    rng = random.Random(seed)
    runtime = load_runtime(config, no_plugins=True)
    allocations = Allocations(runtime)
    granted = refused = 0
    problems: list[str] = []
    held: list[int] = []
    for step in range(steps):
        if held and (rng.random() < 0.5 or len(held) >= 2):
            allocations.release([held.pop(rng.randrange(len(held)))], "test")
        else:
            user = USERS[seed % len(USERS)]
            request = GpuRequest(
                user=user, container=f"w{seed}-{step}", count=rng.choice((1, 1, 2))
            )
            try:
                held.append(allocations.allocate(request).allocation.id)
                granted += 1
            except AllocationRefused:
                refused += 1
        with runtime.state.transaction(immediate=False) as db:
            problems += violations(db)
    for allocation_id in held:
        allocations.release([allocation_id], "test done")
    queue.put((granted, refused, problems))


def test_sixteen_processes_never_double_book_or_exceed_a_quota(tmp_path):
    config = str(write_config(tmp_path))
    load_runtime(config, no_plugins=True).state.close()  # create and migrate the store once
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(config, seed, 50, queue)) for seed in range(16)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    granted = sum(r[0] for r in results)
    refused = sum(r[1] for r in results)
    problems = [msg for r in results for msg in r[2]]
    assert problems == []
    assert granted > 50 and refused > 0  # real contention: both outcomes happened
    db = sqlite3.connect(str(tmp_path / "state_dir" / "state.db"))
    assert db.execute("SELECT COUNT(*) FROM allocations WHERE released_at IS NULL").fetchone() == (
        0,
    )
    rows = db.execute("SELECT COUNT(*) FROM allocations").fetchone()[0]
    assert rows == granted  # every grant recorded once, every one released


def crash_target(config: str, seed: int, ready) -> None:
    rng = random.Random(seed)
    runtime = load_runtime(config, no_plugins=True)
    allocations = Allocations(runtime)
    runtime.gpu.slots()
    ready.set()
    step = 0
    while True:
        step += 1
        request = GpuRequest(
            user=USERS[step % 4], container=f"crash{seed}-{step}", count=rng.choice((1, 2))
        )
        try:
            granted = allocations.allocate(request)
        except AllocationRefused:
            continue
        if rng.random() < 0.5:  # some become "containers" (which will not exist)
            allocations.bind(granted.allocation.id, f"{seed:08x}{step:056x}")
        if rng.random() < 0.5:
            allocations.release([granted.allocation.id], "done")


@pytest.mark.parametrize("rounds", [50])
def test_sigkill_at_random_points_leaks_nothing(tmp_path, rounds):
    config = str(write_config(tmp_path))
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(1234)
    killed_holding = 0
    for round_ in range(rounds):
        ready = ctx.Event()
        proc = ctx.Process(target=crash_target, args=(config, round_, ready))
        proc.start()
        assert ready.wait(30)
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL
        # "restart": a fresh process, one reconcile against what Docker has (nothing)
        runtime = load_runtime(config, no_plugins=True)
        allocations = Allocations(runtime)
        with runtime.state.transaction(immediate=False) as db:
            assert violations(db) == []
            killed_holding += bool(allocations.live(db))
        reconcile_allocations(allocations, [])
        assert allocations.live() == [], f"round {round_}: leaked {allocations.live()}"
        runtime.close()
    assert killed_holding >= rounds // 2, "the kills rarely hit a process holding GPUs"
