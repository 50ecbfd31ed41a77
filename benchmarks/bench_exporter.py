"""The Prometheus exporter: scrape time, its share of a cycle, and its idle CPU.

Set-up: a simulated host with 112 MIG slots (16 GPUs x 7 x 1g.10gb), 200 real containers on the
engine owned by 60 users, 112 of them holding a slot. Measured, in the same run:

- the cycle (real detection, reconciliation, idle sampling) with the exporter's ``cycle_finished``
  work and without it (a runtime whose listener was never started builds nothing), alternating;
  the exporter's own update timed on its own too;
- a scrape over HTTP as Prometheus asks (OpenMetrics), wall time per request, and the render
  time the exporter reports (``ds01_exporter_scrape_duration_seconds``);
- the CPU the process uses while the listener idles between cycles (10 s).

Targets (issue 15): a scrape under 10 ms, the cycle within 5 %, idle CPU under 1 % of a core.

    python -m benchmarks exporter
    DS01_BENCH_CONTAINERS=50 python -m benchmarks exporter   # quicker, same shape
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from ds01_core.cycle.pipeline import run_cycle
from ds01_core.domain.docker_engine import DockerAdapter
from ds01_core.domain.state.allocations import Allocations
from ds01_core.framework.runtime import Runtime, load_runtime

GPUS = 16
USERS = 60
CYCLES = 10
SCRAPES = 200
OPENMETRICS = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def topology() -> dict:
    return {
        "name": "bench-exporter",
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
        "gpus": [
            {"mig": [{"profile": "1g.10gb", "gi": gi} for gi in range(7, 14)]} for _ in range(GPUS)
        ],
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def median_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.99) - 1)]


def main() -> None:
    # lazy: the plugin is an optional distribution; the benchmark needs it installed
    from ds01_prometheus.collector import exporter_of
    from ds01_prometheus.server import ExporterService

    count = int(os.environ.get("DS01_BENCH_CONTAINERS", "200"))
    workdir = Path(tempfile.mkdtemp(prefix="ds01-bench-exporter-"))
    config = write_config(
        workdir,
        {
            "disabled": ["cgroups", "diskquota", "ldap", "notify", "accounting"],
            "prometheus": {"listen": "127.0.0.1:0"},
        },
    )
    engine = DockerAdapter.from_env()
    made: list[str] = []
    try:
        with_exporter = load_runtime(str(config))
        without = load_runtime(str(config))
        made = start_containers(engine, with_exporter, count, "exp")
        service = ExporterService(with_exporter, with_exporter.plugin_config("prometheus"))
        service.start()
        try:
            measure(with_exporter, without, exporter_of(with_exporter), service)
        finally:
            service.stop()
    finally:
        for cid in made:
            engine.remove(cid, force=True)


def write_config(workdir: Path, plugins: dict) -> Path:
    """``workdir/ds01.yaml`` on the 112-slot simulated host of :func:`topology`, with the
    ``plugins:`` section given (other benchmarks reuse this set-up)."""
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
                "limits": {"defaults": {"max_gpu_equivalents": 4}},
                "plugins": plugins,
            }
        )
    )
    return config


def start_containers(engine: DockerAdapter, runtime: Runtime, count: int, tag: str) -> list[str]:
    """``count`` running containers of :data:`USERS` users, the first ones (one per slot)
    holding a slot; returns their ids (the caller removes them)."""
    slots = runtime.gpu.slots()
    print(f"{len(slots)} slots; creating {count} containers ...", flush=True)
    made: list[str] = []
    for i in range(count):
        user = f"user{i % USERS}"
        name = f"ds01-bench-{tag}-{os.getpid()}-{i}"
        cid = engine.create_container(
            {
                "Image": "ds01-test:busybox",
                "Cmd": ["sleep", "3600"],
                "Labels": {"ds01.user": user, "ds01.origin": "ds01"},
            },
            name=name,
        )
        made.append(cid)
        engine.start(cid)
        if i < len(slots):
            with runtime.state.transaction() as db:
                Allocations.insert_bound(
                    db, user, cid, name, [slots[i].uuid], slots[i].weight, runtime.now()
                )
    return made


def measure(with_exporter: Runtime, without: Runtime, exporter, service) -> None:
    previous = None
    for runtime in (with_exporter, without):  # warm both: Docker records, GPU sessions
        previous = run_cycle(runtime, previous=None).workloads
    cycles_with, cycles_without, updates = [], [], []
    for _ in range(CYCLES):
        started = time.perf_counter()
        report = run_cycle(with_exporter, previous=previous)
        cycles_with.append(time.perf_counter() - started)
        started = time.perf_counter()
        run_cycle(without, previous=previous)
        cycles_without.append(time.perf_counter() - started)
        started = time.perf_counter()
        exporter.update(with_exporter, report)
        updates.append(time.perf_counter() - started)
        previous = report.workloads
    base, mine = statistics.median(cycles_without), statistics.median(cycles_with)
    update = statistics.median(updates)
    print(f"workloads per cycle: {len(previous or [])}")
    print(f"cycle without the exporter: median {ms(base)}")
    print(f"cycle with the exporter:    median {ms(mine)} ({(mine - base) / base * 100:+.1f} %)")
    print(
        f"exporter update alone:      median {ms(update)} ({update / base * 100:.1f} % of a cycle)"
    )

    url = f"http://127.0.0.1:{service.address[1]}/metrics"
    request = urllib.request.Request(url, headers={"Accept": OPENMETRICS})
    walls, renders, size = [], [], 0
    time.sleep(0.5)  # let the pre-render thread finish the last snapshot
    for _ in range(SCRAPES):
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            size = len(response.read())
        walls.append(time.perf_counter() - started)
        renders.append(exporter.scrape_seconds or 0.0)
    wall, wall99 = median_p99(walls)
    render, render99 = median_p99(renders)
    print(f"scrape over HTTP ({size} bytes): median {ms(wall)}, p99 {ms(wall99)}")
    print(f"render inside the exporter:     median {ms(render)}, p99 {ms(render99)}")

    before = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(10)
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"idle CPU (listener up, no cycle, no scrape): {used / 10 * 100:.2f} % of a core")
