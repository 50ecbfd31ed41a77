"""The ``slurm-jobs`` cycle step against a real Slurm: a job whose GPUs stay idle is warned,
then (never before the warning) cancelled; a job killed without its step saying so has its
container ended and its GPU released by the next cycle."""

from __future__ import annotations

import datetime as dt

import pytest

from ds01_core.api import current_workloads, live_allocations
from ds01_core.cycle.steps import CycleContext, CycleReport
from ds01_slurm.job_watch import watch_jobs
from tests.plugins.slurm.slurm_env import TEST_IMAGE, job_containers, running_job, slurm_site

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def idle_site(docker_engine, test_image, unix_users, user_cli):
    with slurm_site(utilization=0) as running:  # the simulated GPUs do nothing
        yield running


def sleeper(name):
    return ["--image", TEST_IMAGE, "--gpus", "1", "--name", name, "--", "sleep", "600"]


def cycle(runtime, now):
    ctx = CycleContext(runtime, CycleReport(), now)
    ctx.report.workloads = current_workloads(runtime)
    return list(watch_jobs(ctx)), ctx.report.errors


def test_an_idle_gpu_job_is_warned_then_cancelled(idle_site, unix_users, user_cli):
    site, alice = idle_site, unix_users["ds01ta"]
    job = running_job(site, alice, user_cli, *sleeper("idler"))
    runtime = site.runtime()
    t0 = dt.datetime.now(dt.UTC)
    assert cycle(runtime, t0) == ([], [])  # idle from now on; nothing to say yet
    assert cycle(runtime, t0 + dt.timedelta(minutes=80)) == ([], [])
    # long past the cancel time, but never warned: only the warning
    events, _ = cycle(runtime, t0 + dt.timedelta(hours=3))
    assert [e.event_type for e in events] == ["slurm.job.idle_warning"]
    assert site.slurm.job(job)["JobState"] == "RUNNING"
    assert f"Job {job}: its GPUs are idle" in [n["subject"] for n in site.notices("ds01ta")]
    events, _ = cycle(runtime, t0 + dt.timedelta(hours=3, seconds=30))
    assert [e.event_type for e in events] == ["slurm.job.idle_cancelled"]
    assert site.slurm.wait_state(job, {"CANCELLED"}, timeout=20) == "CANCELLED"
    assert not job_containers(runtime, job)
    assert [a for a in live_allocations(runtime) if a.user == "ds01ta"] == []
    ended = [e for e in site.events("slurm.job.idle_cancelled") if e["details"].get("job") == job]
    assert ended and ended[0]["user"] == "ds01ta"


def test_a_job_killed_without_its_step_is_ended_by_the_next_cycle(idle_site, unix_users, user_cli):
    site, alice = idle_site, unix_users["ds01ta"]
    job = running_job(site, alice, user_cli, *sleeper("killed"))
    # SIGKILL to the batch step: `ds01 job run` dies without ending the container
    site.slurm.run("scancel", "--signal=KILL", "--batch", job)
    site.slurm.wait_state(job, {"FAILED", "CANCELLED", "COMPLETED"}, timeout=30)
    runtime = site.runtime()
    [left] = job_containers(runtime, job)
    assert left["State"] == "running"  # nobody told ds01
    assert [a for a in live_allocations(runtime) if a.user == "ds01ta"]
    _events, errors = cycle(runtime, dt.datetime.now(dt.UTC))
    assert errors == []
    assert not job_containers(runtime, job)
    assert [a for a in live_allocations(runtime) if a.user == "ds01ta"] == []
    assert any(
        e["details"].get("job") == job
        for e in site.events()
        if e["event_type"].startswith("slurm.job.") and e["event_type"] != "slurm.job.started"
    )
