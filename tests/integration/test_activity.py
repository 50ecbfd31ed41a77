"""Activity signals read from the kernel for real containers: CPU, new processes, network."""

from __future__ import annotations

import os
import socket
import subprocess
import time

from ds01_core.cycle.activity import activity, gpu_active, net_bytes, sample
from ds01_core.domain.gpu.simulated import SimulatedProvider
from ds01_core.domain.model import GpuProcess


def main_pid(engine, container_id: str) -> int:
    return engine.inspect_container(container_id)["State"]["Pid"]


def measure(pid: int, seconds: float = 1.5):
    before = sample(pid)
    time.sleep(seconds)
    return activity(before, sample(pid))


def host_cpu_seconds(pid: int) -> float:
    """utime + stime of one host process, from /proc (the baseline's own counter)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_cpu_signal_tells_busy_from_idle(container_factory, docker_engine):
    """The busy container is measured against a same-run baseline: an identical loop on the
    host, in the same window, so a loaded machine slows both alike."""
    busy = container_factory({"Cmd": ["sh", "-c", "while :; do :; done"]})
    idle = container_factory({"Cmd": ["sleep", "3600"]})
    host_loop = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    try:
        busy_pid, idle_pid = main_pid(docker_engine, busy.id), main_pid(docker_engine, idle.id)
        before = {"busy": sample(busy_pid), "idle": sample(idle_pid)}
        host_before, started = host_cpu_seconds(host_loop.pid), time.monotonic()
        time.sleep(1.5)
        host_cores = (host_cpu_seconds(host_loop.pid) - host_before) / (time.monotonic() - started)
        hot = activity(before["busy"], sample(busy_pid))
        cold = activity(before["idle"], sample(idle_pid))
    finally:
        host_loop.kill()
        host_loop.wait()
    assert host_cores > 0.05, "the baseline loop hardly ran: the machine is saturated"
    assert hot.cpu_cores is not None and hot.cpu_cores >= 0.5 * host_cores, (hot, host_cores)
    assert cold.cpu_cores is not None and cold.cpu_cores < min(0.05, 0.2 * host_cores)
    assert cold.new_processes == 0


def test_new_processes_are_seen(container_factory, docker_engine):
    box = container_factory({"Cmd": ["sleep", "3600"]})
    pid = main_pid(docker_engine, box.id)
    before = sample(pid)
    docker_engine.exec_run(box.id, ["sh", "-c", "sleep 30 &"])
    time.sleep(0.3)
    assert activity(before, sample(pid)).new_processes >= 1


def test_network_bytes_count_traffic_to_the_container(container_factory, docker_engine):
    box = container_factory({"Cmd": ["nc", "-ll", "-p", "7777", "-e", "cat"]})
    inspect = docker_engine.inspect_container(box.id)
    address = inspect["NetworkSettings"]["IPAddress"]  # the container this test made
    pid = inspect["State"]["Pid"]
    assert net_bytes(pid) is not None
    quiet = measure(pid, 0.5)
    before = sample(pid)
    with socket.create_connection((address, 7777), timeout=5) as conn:
        payload = b"x" * 20_000
        conn.sendall(payload)
        received = 0
        while received < len(payload):
            received += len(conn.recv(65536))
    after = sample(pid)
    busy = activity(before, after)
    assert busy.net_bytes_per_s * busy.seconds >= 2 * len(payload)  # in and echoed back
    assert quiet.net_bytes_per_s * quiet.seconds < 2_000


def test_gpu_activity_from_utilization_or_mig_processes():
    provider = SimulatedProvider()
    slots = {s.uuid: s for s in provider.slots()}
    whole = next(s for s in slots.values() if s.kind == "gpu" and s.utilization)
    idle_whole = next(s for s in slots.values() if s.kind == "gpu" and s.utilization == 0)
    mig = next(s for s in slots.values() if s.kind == "mig")
    assert gpu_active([whole.uuid], slots, [], None, utilization_threshold=5) is True
    assert gpu_active([idle_whole.uuid], slots, [], None, utilization_threshold=5) is False
    procs = [GpuProcess(pid=42, slot_uuid=mig.uuid, used_memory=1 << 30)]
    assert gpu_active([mig.uuid], slots, procs, frozenset({42}), 5) is True
    assert gpu_active([mig.uuid], slots, procs, frozenset({7}), 5) is False  # someone else's
    assert gpu_active([], slots, procs, None, 5) is None
