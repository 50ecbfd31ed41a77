"""One steady-state detection cycle against its floor, measured in the same run.

Set-up: N containers on the real engine (a fifth of them running) and P host processes that
the simulated GPU provider reports as GPU processes (through a processes file). The floor is
the I/O no detector can avoid: one container listing plus one pass over the processes'
``/proc`` entries. The cycle is ``pipeline.detect`` with the built-in detectors, in a steady
state (the container cache warm, the processes already confirmed).

Targets (issue 3): cycle <= 1.5 x floor; doubling the processes at most doubles the cycle.

    python -m benchmarks detection            # 200 containers, 2,000 and 4,000 processes
    DS01_BENCH_CONTAINERS=50 python -m benchmarks detection
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks import best_of, report
from ds01_core.cycle.detection.procfs import PROC_FILES
from ds01_core.cycle.pipeline import detect
from ds01_core.domain.docker_engine import DockerAdapter
from ds01_core.domain.gpu.simulated import SimulatedProvider
from ds01_core.framework.runtime import load_runtime

IMAGE = "ds01-test:busybox"
LABEL = "ds01.bench"


def make_containers(engine: DockerAdapter, count: int, tag: str) -> list[str]:
    ids = []
    for i in range(count):
        body = {"Image": IMAGE, "Cmd": ["sleep", "3600"], "Labels": {LABEL: tag}}
        if i % 3 == 0:
            body["Labels"]["ds01.user"] = f"user{i % 40}"
        cid = engine.create_container(body, name=f"ds01-bench-{tag}-{i}")
        if i % 5 == 0:
            engine.start(cid)
        ids.append(cid)
    return ids


def spawn(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen(["sleep", "3600"]) for _ in range(count)]


def floor(engine: DockerAdapter, pids: list[int]) -> None:
    """The unavoidable I/O: the listing, and the raw bytes of each process's /proc files."""
    engine.list_containers(all=True)
    for pid in pids:
        for name in PROC_FILES:
            fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY)
            os.read(fd, 65536)
            os.close(fd)


def measure(engine: DockerAdapter, config: Path, procs_file: Path, pids: list[int]) -> dict:
    slots = [s.uuid for s in SimulatedProvider().slots()]
    procs_file.write_text(
        json.dumps([{"pid": pid, "slot": slots[i % len(slots)]} for i, pid in enumerate(pids)])
    )
    runtime = load_runtime(str(config))
    detect(runtime)  # warm: container cache filled, processes seen once
    detect(runtime)  # processes confirmed (second sighting)
    workloads = detect(runtime)
    processes = sum(1 for w in workloads if w.kind == "process")
    assert processes == len(pids), f"expected {len(pids)} host GPU processes, saw {processes}"
    return {
        "floor": best_of(lambda: floor(engine, pids), repeat=7),
        "cycle": best_of(lambda: detect(runtime), repeat=7),
        "provider": best_of(lambda: (runtime.gpu.slots(), runtime.gpu.processes()), repeat=7),
    }


def main() -> None:
    containers = int(os.environ.get("DS01_BENCH_CONTAINERS", "200"))
    processes = int(os.environ.get("DS01_BENCH_PROCESSES", "2000"))
    engine = DockerAdapter.from_env()
    tag = str(os.getpid())
    workdir = Path(tempfile.mkdtemp(prefix="ds01-bench-"))
    procs_file = workdir / "gpu-processes.json"
    config = workdir / "ds01.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "paths": {k: str(workdir / k) for k in ("state_dir", "log_dir", "runtime_dir")},
                "gpu": {"backend": "simulated", "simulated": {"processes_file": str(procs_file)}},
            }
        )
    )
    started = time.perf_counter()
    ids = make_containers(engine, containers, tag)
    children = spawn(processes * 2)
    print(
        f"set-up: {containers} containers, {processes * 2} processes in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    try:
        listed = len(engine.list_containers(all=True))
        one = measure(engine, config, procs_file, [c.pid for c in children[:processes]])
        two = measure(engine, config, procs_file, [c.pid for c in children])
        report(
            f"detection cycle, {listed} containers listed, {processes} GPU processes",
            "floor",
            one,
        )
        report(
            f"detection cycle, {listed} containers listed, {processes * 2} GPU processes",
            "floor",
            two,
        )
        ratio = one["cycle"] / one["floor"]
        scaling = two["cycle"] / one["cycle"]
        print(
            f"cycle / floor = {ratio:.2f} (target <= 1.5); "
            f"cycle(2P) / cycle(P) = {scaling:.2f} (target <= 2.0)"
        )
        print(f"{'PASS' if ratio <= 1.5 and scaling <= 2.0 else 'MISSED TARGET'}", flush=True)
    finally:
        for child in children:
            child.kill()
        for child in children:
            child.wait()
        for cid in ids:
            engine.remove(cid, force=True)
