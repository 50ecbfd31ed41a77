"""Slurm jobs through ds01: submit-to-running latency and ``ds01 job list`` over 1,000 jobs.

A real Slurm (munged, slurmctld, one slurmd with 2 fake GPUs, on ports 7817/7818 and job ids
from 80001, so that it runs beside the test suite's cluster and its containers never meet
theirs) and ``ds01-api``/``ds01-gateway`` serving its node, as in
tests/plugins/slurm/test_jobs.py; a user made for the run (``ds01bslurm``, removed after it)
does everything as itself.

1. Submit to running, N rounds (``DS01_BENCH_ROUNDS``, 5) of each, one job at a time and
   interleaved: ``ds01 job submit --gpus 1 -- sleep 60`` until the job's container (label
   ``ds01.slurm.job=<id>``) is running in Docker, against a plain ``sbatch --gres=gpu:1 --wrap
   'sleep 60'`` until ``squeue`` says RUNNING (the baseline: Slurm's own part of the path).
   The difference is ds01's: its checks, the batch step's ``ds01 job run``, admission and the
   container's start; the time until ``ds01 job submit`` itself returned is shown apart.
2. ``ds01 job list`` and ``ds01 job list --json`` with 1,000 held jobs of the user's in the
   queue (1,000 separate ``sbatch -H`` jobs: an array would be one row), against the user's
   plain ``squeue -u USER`` (the baseline); medians of N; every call is checked to show the
   1,000 jobs. The same three with the queue empty tell the commands' fixed cost (the ds01
   CLI's start, the API's round trip) from the cost per job.

    python -m benchmarks slurm
    DS01_BENCH_ROUNDS=9 DS01_BENCH_JOBS=2000 python -m benchmarks slurm
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import yaml

from benchmarks import report

USER = "ds01bslurm"
IMAGE = "ds01-test:busybox"
#: slurmctld, slurmd, a second slurmd (unused): not the test suite's 6817/6818/6828
PORTS = (7817, 7818, 7828)
FIRST_JOB, LAST_JOB = 80001, 99999
GPUS = 2
POLL = 0.02


@attrs.frozen
class Account:
    name: str
    home: str


@attrs.frozen
class Site:
    slurm: Any  # tests.helpers.slurm.SlurmCluster
    api_socket: str
    config: Path


def topology(gpus: int) -> dict[str, Any]:
    """The simulated host of tests/plugins/slurm/slurm_env.py: whole A100s."""
    return {
        "name": "slurm-bench",
        "default_model": "NVIDIA A100-SXM4-80GB",
        "models": {"NVIDIA A100-SXM4-80GB": {"memory": "81920MiB"}},
        "gpus": [{"utilization": 50} for _ in range(gpus)],
    }


def write_ds01_config(directory: Path, node: str, slurm: dict[str, Any]) -> Path:
    from tests.helpers.config import write_config

    topo = directory / "topology.yaml"
    topo.write_text(yaml.safe_dump(topology(GPUS)))
    return write_config(
        directory,
        {
            "gpu": {"backend": "simulated", "simulated": {"topology": str(topo)}},
            "limits": {"defaults": {"max_gpu_equivalents": 2, "max_containers_per_user": 8}},
            # no notices: a webhook's round trip is not the path measured
            "plugins": {
                "slurm": {"node_name": node, "gpus": list(range(GPUS)), "notify": False, **slurm}
            },
        },
    )


def remove_our_containers() -> None:
    """This run's job containers (by job id), none of another cluster's."""
    from ds01_core.api import DockerAdapter

    with DockerAdapter.from_env() as docker:
        for found in docker.list_containers(all=True, filters={"label": ["ds01.slurm.job"]}):
            job = (found.get("Labels") or {}).get("ds01.slurm.job", "")
            if job.isdigit() and FIRST_JOB <= int(job) <= LAST_JOB:
                docker.remove(found["Id"], force=True)


@contextmanager
def bench_site() -> Iterator[Site]:
    from tests.helpers.gateway import running_gateway
    from tests.helpers.servers import running_api
    from tests.helpers.slurm import SlurmNode, ds01_gres, host_name, running_slurm

    directory = Path(tempfile.mkdtemp(prefix="ds01-bench-slurm-"))
    directory.chmod(0o755)
    node = host_name()
    try:
        with ExitStack() as stack:
            stack.callback(remove_our_containers)
            (directory / "slurm").mkdir(mode=0o755)
            probe = write_ds01_config(
                directory, node, {"device_dir": str(directory / "slurm" / "dev")}
            )
            gres_conf, node_gres = ds01_gres(probe)
            cluster = stack.enter_context(
                running_slurm(
                    directory / "slurm",
                    [SlurmNode(node, GPUS)],
                    gres_conf=gres_conf,
                    node_gres={node: node_gres},
                    extra_conf=f"FirstJobId={FIRST_JOB}\nMaxJobId={LAST_JOB}\n",
                    ctld_port=PORTS[0],
                    slurmd_port=PORTS[1],
                    extra_port=PORTS[2],
                )
            )
            config = write_ds01_config(
                directory,
                node,
                {"slurm_conf": str(cluster.conf), "device_dir": str(cluster.dev_dir)},
            )
            gateway = stack.enter_context(running_gateway(config))
            data = yaml.safe_load(config.read_text())
            data.setdefault("gateway", {})["socket"] = gateway
            config.write_text(yaml.safe_dump(data, sort_keys=False))
            api = stack.enter_context(running_api(config))
            yield Site(cluster, api, config)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def user_env(user: Account, cli: Path, site: Site) -> dict[str, str]:
    return {
        "HOME": user.home,
        "USER": user.name,
        "LOGNAME": user.name,
        "PATH": f"{cli / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "COLUMNS": "200",
        "DS01_API_SOCKET": site.api_socket,
        **site.slurm.env,
    }


def as_user(user: Account, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` run by ``user`` in a clean environment, from their home."""
    done = subprocess.run(
        [
            "runuser",
            "-u",
            user.name,
            "--",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in env.items()),
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=user.home,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
    return done


def poll(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(POLL)


def squeue_state(site: Site, job: str) -> str:
    return site.slurm.run("squeue", "-h", "-j", job, "-o", "%T", check=False).stdout.strip()


def is_running(site: Site, job: str) -> bool:
    return squeue_state(site, job) == "RUNNING"


def container_running(docker: Any, job: str) -> bool:
    found = docker.list_containers(filters={"label": [f"ds01.slurm.job={job}"]})
    return any(c.get("State") == "running" for c in found)


def idle(site: Site, docker: Any) -> None:
    """No job of this run's holds a GPU or a container: the next round starts from rest."""
    poll("the jobs to end", lambda: not site.slurm.run("squeue", "-h", "-o", "%i").stdout.strip())
    poll("the job containers to go", lambda: not _ours(docker))


def _ours(docker: Any) -> list[Any]:
    found = docker.list_containers(all=True, filters={"label": ["ds01.slurm.job"]})
    return [
        c
        for c in found
        if (j := (c.get("Labels") or {}).get("ds01.slurm.job", "")).isdigit()
        and FIRST_JOB <= int(j) <= LAST_JOB
    ]


def submit_latency(
    site: Site, user: Account, env: dict[str, str], rounds: int
) -> dict[str, list[float]]:
    """Seconds from the submit command's start to running, per round, for both paths."""
    from ds01_core.api import DockerAdapter

    found: dict[str, list[float]] = {"ds01": [], "ds01 returned": [], "sbatch": []}
    with DockerAdapter.from_env() as docker:
        for _ in range(rounds):
            start = time.perf_counter()
            out = as_user(
                user,
                env,
                "ds01",
                "job",
                "submit",
                "--image",
                IMAGE,
                "--gpus",
                "1",
                "--time",
                "10m",
                "--name",
                "bench",
                "--json",
                "--",
                "sleep",
                "60",
            ).stdout
            found["ds01 returned"].append(time.perf_counter() - start)
            job = str(json.loads(out)["job"])
            poll(f"job {job}'s container", partial(container_running, docker, job))
            found["ds01"].append(time.perf_counter() - start)
            as_user(user, env, "ds01", "job", "cancel", job)
            idle(site, docker)

            start = time.perf_counter()
            job = (
                as_user(
                    user,
                    env,
                    "sbatch",
                    "--parsable",
                    "--gres=gpu:1",
                    "--time=10",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "sleep 60",
                )
                .stdout.strip()
                .split(";")[0]
            )
            poll(f"job {job} to run", partial(is_running, site, job))
            found["sbatch"].append(time.perf_counter() - start)
            site.slurm.run("scancel", job)
            idle(site, docker)
    return found


def fill_queue(user: Account, env: dict[str, str], jobs: int) -> None:
    """``jobs`` held jobs of the user's, each its own row in squeue (4 submitters at a time)."""
    script = (
        f"seq {jobs} | xargs -P 4 -I{{}} sbatch -H --parsable -o /dev/null -J held{{}} "
        "--wrap true > /dev/null"
    )
    as_user(user, env, "/bin/sh", "-c", script)


def time_runs(fn: Callable[[], int], rounds: int, jobs: int, what: str) -> float:
    """The median of ``rounds`` timed calls; each must have listed ``jobs`` jobs."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        listed = fn()
        times.append(time.perf_counter() - start)
        if listed != jobs:
            raise RuntimeError(f"{what} listed {listed} jobs, not {jobs}")
    return statistics.median(times)


def list_timings(user: Account, env: dict[str, str], rounds: int, jobs: int) -> dict[str, float]:
    def table() -> int:
        lines = as_user(user, env, "ds01", "job", "list").stdout.splitlines()
        return sum(1 for line in lines if "PENDING" in line)

    def as_json() -> int:
        rows = json.loads(as_user(user, env, "ds01", "job", "list", "--json").stdout)
        return sum(1 for r in rows if r["state"] == "PENDING")

    def squeue() -> int:
        return len(as_user(user, env, "squeue", "-h", "-u", user.name).stdout.splitlines())

    return {
        f"squeue -u {user.name}": time_runs(squeue, rounds, jobs, "squeue"),
        "ds01 job list": time_runs(table, rounds, jobs, "ds01 job list"),
        "ds01 job list --json": time_runs(as_json, rounds, jobs, "ds01 job list --json"),
    }


def ensure_user() -> tuple[Account, bool]:
    try:
        entry, created = pwd.getpwnam(USER), False
    except KeyError:
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/sh", USER],
            check=True,
            capture_output=True,
        )
        entry, created = pwd.getpwnam(USER), True
    return Account(entry.pw_name, entry.pw_dir), created


def main() -> None:
    from tests.helpers.user_cli import build_user_cli

    rounds = max(1, int(os.environ.get("DS01_BENCH_ROUNDS", "5")))
    jobs = max(1, int(os.environ.get("DS01_BENCH_JOBS", "1000")))
    user, created = ensure_user()
    cli = build_user_cli()
    try:
        with bench_site() as site:
            env = user_env(user, cli, site)
            empty = list_timings(user, env, rounds, 0)
            start = time.perf_counter()
            fill_queue(user, env, jobs)
            print(f"  {jobs} held jobs submitted in {time.perf_counter() - start:.1f} s")
            listing = list_timings(user, env, rounds, jobs)
            site.slurm.run("scancel", "-u", user.name, timeout=120)
            report(
                f"job list, {jobs} jobs in the queue (median of {rounds})",
                f"squeue -u {user.name}",
                listing | {f"{name}, empty queue": t for name, t in empty.items()},
            )
            latency = submit_latency(site, user, env, rounds)
            for name, times in latency.items():
                print(f"  {name:<13} " + " ".join(f"{t:6.2f}" for t in times) + "  s")
            baseline = "sbatch --gres=gpu:1 until squeue says RUNNING"
            report(
                f"submit to running, 1 GPU (median of {rounds})",
                baseline,
                {
                    baseline: statistics.median(latency["sbatch"]),
                    "ds01 job submit --gpus 1 until its container runs": statistics.median(
                        latency["ds01"]
                    ),
                    "  of which: until `ds01 job submit` returned": statistics.median(
                        latency["ds01 returned"]
                    ),
                },
            )
            summary = {
                "jobs": jobs,
                "rounds": rounds,
                "list_seconds": {k: round(v, 4) for k, v in listing.items()},
                "submit_to_running_seconds": {
                    k: [round(t, 3) for t in v] for k, v in latency.items()
                },
            }
            print(json.dumps(summary))
    finally:
        shutil.rmtree(cli, ignore_errors=True)
        if created:
            subprocess.run(["userdel", "--remove", USER], capture_output=True)
