"""The accounting plugin: ``ds01 usage`` over a year of records, and its share of a cycle.

Set-up 1: an accounting database with one year of usage for 300 users (about 100,000
allocations, about a million hour buckets), written the way the recorder writes them. Measured:
the ``accounting.usage`` operation for ``--all --period year`` and ``--all --since 365d``
(by user, by group, by month), and the whole command ``ds01 usage --all --period year`` as a
process (start-up included).

Set-up 2: the exporter benchmark's host (112 MIG slots, 200 real containers of 60 users, 112
holding a slot; ``benchmarks/bench_exporter.py``). Measured, alternating: the cycle with the
accounting plugin and without it, and the plugin's ``cycle_finished`` work alone.

Targets (issue 16): the query under 1 s; the accounting under 5 % of a cycle.

    python -m benchmarks accounting
    DS01_BENCH_CONTAINERS=50 python -m benchmarks accounting   # quicker, same shape
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_exporter import ms, start_containers, write_config
from ds01_core.cycle.pipeline import run_cycle
from ds01_core.domain.docker_engine import DockerAdapter
from ds01_core.framework.runtime import Runtime, load_runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.operations import ServiceContext

USERS = 300
GROUPS = 12
DAYS = 365
CYCLES = 10
QUERIES = 5


def fill(runtime: Runtime, seed: int = 16) -> tuple[int, int]:
    """A year of records and hour buckets up to now; returns (records, buckets)."""
    from ds01_accounting.records import hours
    from ds01_accounting.store import AccountingStore, db_path

    rng = random.Random(seed)
    now = time.time()
    start = now - DAYS * 86400
    records, buckets = [], []
    allocation_id = 0
    for u in range(USERS):
        user, group = f"user{u:03d}", f"group{u % GROUPS}"
        moment = start + rng.uniform(0, 86400)
        while True:
            length = rng.uniform(1, 20) * 3600
            if moment + length >= now:
                break
            allocation_id += 1
            weight = rng.choice((1 / 7, 2 / 7, 3 / 7, 1.0))
            util = rng.uniform(0, 100) / 100
            busy = known = idle = 0.0
            for hour, seconds in hours(moment, moment + length):
                b, k, i = weight * seconds * util, weight * seconds, weight * seconds * 0.1
                e = 250.0 * seconds * weight
                buckets.append(
                    (
                        hour,
                        allocation_id,
                        user,
                        group,
                        weight * seconds,
                        b,
                        k,
                        i,
                        e,
                        e / 3.6e6 * 200,
                    )
                )
                busy, known, idle = busy + b, known + k, idle + i
            records.append(
                (
                    allocation_id,
                    allocation_id,
                    user,
                    group,
                    f"c{allocation_id}",
                    f"id{allocation_id}",
                    "MIG-x",
                    weight,
                    moment,
                    moment + length,
                    moment + length,
                    weight * length,
                    busy,
                    known,
                    idle,
                    250.0 * length * weight,
                    250.0 * length * weight / 3.6e6 * 200,
                )
            )
            moment += length + rng.uniform(1, 30) * 3600
    store = AccountingStore(db_path(runtime), writable=True)
    with store.transaction() as db:
        db.executemany(f"INSERT INTO records VALUES ({','.join('?' * 17)})", records)
        db.executemany(
            "INSERT INTO buckets (hour, record_id, user, grp, gpu_eq_seconds, busy, known, idle, "
            "energy, co2) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            buckets,
        )
    store.db.execute("ANALYZE")
    store.close()
    return len(records), len(buckets)


def query_benchmark() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ds01-bench-accounting-"))
    config = write_config(workdir, {"disabled": ["cgroups", "diskquota", "ldap", "notify"]})
    runtime = load_runtime(str(config))
    started = time.perf_counter()
    records, buckets = fill(runtime)
    print(
        f"{records} records, {buckets} hour buckets of {USERS} users written in "
        f"{time.perf_counter() - started:.1f} s"
    )
    ctx = ServiceContext(runtime, Caller("root", 0, True))
    for label, params in (
        ("--all --period year", {"all": True, "period": "year"}),
        ("--all --since 365d", {"all": True, "since": "365d"}),
        ("--all --since 365d --by group", {"all": True, "since": "365d", "by": "group"}),
        ("--all --since 365d --by month", {"all": True, "since": "365d", "by": "month"}),
        ("--user user007 --since 365d", {"user": "user007", "since": "365d"}),
    ):
        times = []
        for _ in range(QUERIES):
            began = time.perf_counter()
            data = call(ctx, "accounting.usage", **params)
            times.append(time.perf_counter() - began)
        print(
            f"accounting.usage {label}: median {ms(statistics.median(times))} "
            f"({len(data['rows'])} rows, {data['total']['gpu_hours']:.0f} GPU-h)"
        )
    command = [
        str(Path(sys.executable).parent / "ds01"),
        "--config",
        str(config),
        "usage",
        "--all",
        "--period",
        "year",
    ]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    assert done.returncode == 0, done.stderr
    print(f"ds01 usage --all --period year (a process, start-up included): {ms(wall)}")
    runtime.close()


def cycle_benchmark() -> None:
    from ds01_accounting.recorder import record_cycle

    count = int(os.environ.get("DS01_BENCH_CONTAINERS", "200"))
    workdir = Path(tempfile.mkdtemp(prefix="ds01-bench-acct-cycle-"))
    base = ["cgroups", "diskquota", "ldap", "notify", "prometheus"]
    with_config = write_config(workdir, {"disabled": base})
    without_dir = workdir / "without"
    without_dir.mkdir()
    without_config = write_config(without_dir, {"disabled": [*base, "accounting"]})
    engine = DockerAdapter.from_env()
    made: list[str] = []
    try:
        with_acct = load_runtime(str(with_config))
        without = load_runtime(str(without_config))
        made = start_containers(engine, with_acct, count, "acct")
        previous = run_cycle(with_acct).workloads
        run_cycle(without)
        cycles_with, cycles_without, alone = [], [], []
        for _ in range(CYCLES):
            began = time.perf_counter()
            report = run_cycle(with_acct, previous=previous)
            cycles_with.append(time.perf_counter() - began)
            began = time.perf_counter()
            run_cycle(without, previous=previous)
            cycles_without.append(time.perf_counter() - began)
            began = time.perf_counter()
            record_cycle(with_acct, report)
            alone.append(time.perf_counter() - began)
            previous = report.workloads
        base_s, mine = statistics.median(cycles_without), statistics.median(cycles_with)
        own = statistics.median(alone)
        print(f"workloads per cycle: {len(previous)}")
        print(f"cycle without accounting: median {ms(base_s)}")
        print(
            f"cycle with accounting:    median {ms(mine)} ({(mine - base_s) / base_s * 100:+.1f} %)"
        )
        print(f"accounting alone:         median {ms(own)} ({own / base_s * 100:.1f} % of a cycle)")
    finally:
        for cid in made:
            engine.remove(cid, force=True)


def main() -> None:
    query_benchmark()
    cycle_benchmark()
