"""GPU allocation and release latency against a bare SQLite write transaction.

Set-up: a simulated host with 112 GPU slots, 100 of them already allocated (to 100 users), so every decision reads a realistic store. Measured: one
``Allocations.allocate`` (write lock, read of live allocations, limit resolution, the
``allocate_gpu`` hook, the insert, the audit event) and one ``release``; the floor is
``BEGIN IMMEDIATE; INSERT; COMMIT`` on the same database file.

    python -m benchmarks allocation
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from ds01_core.domain.model import GpuRequest
from ds01_core.domain.state.allocations import Allocations
from ds01_core.framework.runtime import load_runtime

SLOTS = 112
EXISTING = 100
SAMPLES = 300


def topology() -> dict:
    return {
        "name": "bench-host",
        "default_model": "NVIDIA A100-SXM4-80GB",
        "models": {
            "NVIDIA A100-SXM4-80GB": {
                "memory": "81920MiB",
                "profiles": {
                    "1g.10gb": {"id": 0, "slices": 1, "memory": "9728MiB"},
                    "7g.80gb": {"id": 4, "slices": 7, "memory": "80896MiB"},
                },
            }
        },
        "gpus": [{} for _ in range(SLOTS)],
    }


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ds01-bench-alloc-"))
    (workdir / "topology.yaml").write_text(yaml.safe_dump(topology()))
    config = workdir / "ds01.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "paths": {k: str(workdir / k) for k in ("state_dir", "log_dir", "runtime_dir")},
                "gpu": {
                    "backend": "simulated",
                    "simulated": {"topology": str(workdir / "topology.yaml")},
                },
                "limits": {"defaults": {"max_gpu_equivalents": 1}},
            }
        )
    )
    runtime = load_runtime(str(config))
    allocations = Allocations(runtime)
    assert len(runtime.gpu.slots()) == SLOTS
    for i in range(EXISTING):
        allocations.allocate(GpuRequest(user=f"user{i}", container=f"existing-{i}"))

    alloc_times, release_times, floor_times = [], [], []
    db = runtime.state.db
    db.execute("CREATE TABLE IF NOT EXISTS bench_floor (x INTEGER)")

    def bare() -> None:
        with runtime.state.transaction() as tx:
            tx.execute("INSERT INTO bench_floor VALUES (1)")

    for i in range(SAMPLES):
        request = GpuRequest(user="bench", container=f"bench-{i}")
        start = time.perf_counter()
        granted = allocations.allocate(request)
        alloc_times.append(time.perf_counter() - start)
        assert granted.allocation.id is not None
        start = time.perf_counter()
        allocations.release([granted.allocation.id], "bench")
        release_times.append(time.perf_counter() - start)
        floor_times.append(timed(bare))

    floor_med, floor_p99 = percentiles(floor_times)
    print(f"{EXISTING} existing allocations, {SLOTS} slots, {SAMPLES} samples each")
    print(f"  {'':12} {'median':>10} {'p99':>10} {'median/floor':>13} {'p99/floor':>10}")
    for name, samples in (
        ("floor", floor_times),
        ("allocate", alloc_times),
        ("release", release_times),
    ):
        med, p99 = percentiles(samples)
        print(
            f"  {name:12} {med * 1e3:8.3f}ms {p99 * 1e3:8.3f}ms {med / floor_med:12.1f}x "
            f"{p99 / floor_p99:9.1f}x"
        )
