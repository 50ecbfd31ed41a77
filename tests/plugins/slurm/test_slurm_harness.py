"""The real-Slurm harness (tests/helpers/slurm.py) runs real users' GPU jobs as Slurm would.

The Slurm plugin's tests stand on this harness, so these check what they rely on: a plain
user's job gets a GPU (CUDA_VISIBLE_DEVICES, the IDX in Slurm's record) and writes its output as
that user; GPUs, not CPUs, hold a third GPU job back; and a second node on the same host runs
jobs that Slurm's record places on it. Without Slurm installed they skip locally (naming the
set-up script) and fail under CI=true.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.slurm import (
    SETUP_HINT,
    NodeGres,
    SlurmCluster,
    SlurmNode,
    host_name,
    missing_tools,
    running_slurm,
)
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def slurm_dir(unix_users: dict[str, Any]) -> Iterator[Path]:
    """A directory every user can reach (pytest's tmp_path is private to root)."""
    missing = missing_tools()
    if missing:
        reason = f"Slurm unavailable (missing: {', '.join(missing)})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: the Slurm tests must not be skipped)", pytrace=False)
        pytest.skip(f"{reason}; {SETUP_HINT}")
    path = Path(tempfile.mkdtemp(prefix="ds01-slurm-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def processes_of(directory: Path) -> list[int]:
    """Live processes started for the cluster in ``directory``: the daemons, the job steps and
    the jobs all carry its SLURM_CONF in their environment."""
    marker = f"SLURM_CONF={directory}/slurm.conf".encode()
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
    return found


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port something already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def cluster(slurm_dir: Path) -> Iterator[SlurmCluster]:
    """One node, 2 GPUs, more CPUs than three jobs need (so only GPUs can run short)."""
    with running_slurm(slurm_dir, [SlurmNode(host_name(), gpus=2, cpus=8)]) as running:
        yield running


def test_a_users_gpu_job_runs_as_that_user_with_its_gpu(
    cluster: SlurmCluster, unix_users: dict[str, Any]
) -> None:
    user = unix_users["ds01ta"]
    out = Path(user.home) / "harness-%j.out"
    job = cluster.submit(
        "--gres=gpu:1",
        "-o",
        str(out),
        "--wrap",
        "echo $(id -un) CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES; sleep 1",
        user="ds01ta",
    )
    assert job.isdigit()
    try:
        # the IDX is in Slurm's record only while the job runs (GRES= is empty once it ended)
        cluster.wait_state(job, {"RUNNING"})
        record = cluster.job(job)
        assert record["UserId"] == f"ds01ta({user.uid})"
        [gres] = record.gres
        assert gres.node == host_name() and len(gres.idx) == 1
        assert cluster.wait_state(job, {"COMPLETED"}) == "COMPLETED"
        written = Path(str(out).replace("%j", job))
        assert written.stat().st_uid == user.uid
        assert written.read_text().split() == ["ds01ta", f"CUDA_VISIBLE_DEVICES={gres.idx[0]}"]
    finally:
        Path(str(out).replace("%j", job)).unlink(missing_ok=True)


def test_a_third_gpu_job_pends_for_resources_while_two_hold_both_gpus(
    cluster: SlurmCluster, unix_users: dict[str, Any]
) -> None:
    sleep = ["-o", "/dev/null", "--wrap", "sleep 60"]
    first = cluster.submit("--gres=gpu:1", *sleep, user="ds01ta")
    second = cluster.submit("--gres=gpu:1", *sleep, user="ds01ta")
    for job in (first, second):
        cluster.wait_state(job, {"RUNNING"})
    third = cluster.submit("--gres=gpu:1", *sleep, user="ds01tb")
    wait_until(
        lambda: cluster.job(third).get("Reason") == "Resources",
        timeout=15,
        what=f"job {third} pending for Resources",
    )
    assert cluster.job(third)["JobState"] == "PENDING"
    held = {job: [idx for g in cluster.job(job).gres for idx in g.idx] for job in (first, second)}
    assert sorted(held[first] + held[second]) == [0, 1]
    # a job without a GPU still runs: the GPUs are what is short, not the CPUs
    cpu_only = cluster.submit(*sleep, user="ds01tb")
    cluster.wait_state(cpu_only, {"RUNNING"})
    queue = {row["id"]: row for row in cluster.squeue(as_user="ds01tb")}
    assert queue[third]["state"] == "PENDING" and queue[third]["reason"] == "Resources"
    assert queue[first]["user"] == "ds01ta" and queue[first]["state"] == "RUNNING"
    cluster.run("scancel", first, user="ds01ta")
    assert cluster.wait_state(first, {"CANCELLED"}) == "CANCELLED"
    # the freed GPU goes to the waiting job
    cluster.wait_state(third, {"RUNNING"})
    assert [list(g.idx) for g in cluster.job(third).gres] == [held[first]]


def test_a_second_node_runs_jobs_that_slurm_places_on_it(
    slurm_dir: Path, unix_users: dict[str, Any]
) -> None:
    nodes = [SlurmNode(host_name(), gpus=2), SlurmNode("node2", gpus=1)]
    with running_slurm(slurm_dir, nodes) as cluster:
        assert sorted(p.name for p in cluster.dev_dir.glob("nvidia*")) == [
            "nvidia0",
            "nvidia1",
            "nvidia2",
        ]
        job = cluster.submit(
            "-w",
            "node2",
            "--gres=gpu:1",
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 30",
            user="ds01ta",
        )
        cluster.wait_state(job, {"RUNNING"})
        record = cluster.job(job)
        assert record["NodeList"] == "node2"
        assert record.gres == [NodeGres("node2", "gpu:1(IDX:0)", (0,))]
        assert [row["nodes"] for row in cluster.squeue("ds01ta")] == ["node2"]
        assert processes_of(slurm_dir)
    # the running job, its step and the daemons are all gone
    assert processes_of(slurm_dir) == []


def test_a_daemon_that_dies_at_start_is_reported_with_its_log(
    slurm_dir: Path, held_port: int
) -> None:
    taken = pytest.raises(RuntimeError)
    with taken as failed, running_slurm(slurm_dir, slurmd_port=held_port):
        pytest.fail("Slurm started with its slurmd port taken")
    assert f"slurmd-{host_name()} (exit" in str(failed.value)
    assert f"Unable to bind listen port ({held_port})" in str(failed.value)
    assert processes_of(slurm_dir) == []


def test_a_busy_controller_port_is_refused_before_anything_starts(
    slurm_dir: Path, held_port: int
) -> None:
    refused = pytest.raises(RuntimeError, match=f"port {held_port} .*another Slurm is running")
    with refused, running_slurm(slurm_dir, ctld_port=held_port):
        pytest.fail("Slurm started with its controller port taken")
    assert not (slurm_dir / "slurm.conf").exists()
