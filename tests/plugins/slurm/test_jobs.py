"""Batch jobs through a real Slurm, as real non-root users, in containers ds01 admits.

Submit → pending → running in a container on the GPU Slurm gave the job (recorded by ds01 as
the job's allocation) → completed, the log readable by its owner, notices delivered; a third
GPU job pends while two hold both GPUs; a cancel stops the container and frees the GPU within
seconds; another user cannot cancel, read or claim a job; a submit over quota never reaches
Slurm.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from tests.helpers.gateway import converse
from tests.plugins.slurm.slurm_env import (
    TEST_IMAGE,
    Site,
    ds01_as,
    job_containers,
    running_job,
    slurm_site,
    submit,
    submitted,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(docker_engine, test_image, unix_users, user_cli, tmp_path_factory):
    # the grid is clean from 3 h to 9 h from now (for --green)
    top = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    schedule = tmp_path_factory.mktemp("carbon") / "carbon.yaml"
    schedule.write_text(
        "default: 300\nperiods:\n"
        f'  - {{from: "{top + dt.timedelta(hours=3):%Y-%m-%dT%H:%MZ}", '
        f'until: "{top + dt.timedelta(hours=9):%Y-%m-%dT%H:%MZ}", grams_per_kwh: 100}}\n'
    )
    carbon = {"source": "schedule", "schedule_file": str(schedule)}
    with slurm_site(extra={"plugins": {"accounting": {"carbon": carbon}}}) as running:
        yield running


@pytest.fixture
def users(unix_users):
    return unix_users["ds01ta"], unix_users["ds01tb"]


def live_slots(site: Site, user: str) -> list[list[str]]:
    from ds01_core.api import live_allocations

    runtime = site.runtime()
    try:
        return [a.slot_uuids for a in live_allocations(runtime) if a.user == user]
    finally:
        runtime.close()


def test_a_job_runs_in_its_container_on_the_gpu_slurm_gave_it(site, users, user_cli):
    alice, _ = users
    result = ds01_as(
        alice,
        user_cli,
        site,
        "job",
        "submit",
        "--image",
        TEST_IMAGE,
        "--gpus",
        "1",
        "--time",
        "10m",
        "--name",
        "hello",
        "--",
        "sh",
        "-c",
        "echo hello from $SLURM_JOB_ID; echo GPUS=$NVIDIA_VISIBLE_DEVICES; id -u",
    )
    job = submitted(result)
    assert "log:" in result.stdout
    state = site.slurm.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=60)
    started = [e for e in site.events("slurm.job.started") if e["details"]["job"] == job]
    log = Path(alice.home) / ".ds01" / "jobs" / f"hello-{job}.log"
    assert state == "COMPLETED", log.read_text() if log.exists() else site.slurm.log_tail()
    [event] = started
    assert event["user"] == "ds01ta" and len(event["details"]["slots"]) == 1
    allocated = [
        e for e in site.events("gpu.allocated") if e["details"]["container"] == f"slurm-job-{job}"
    ]
    assert len(allocated) == 1
    uuid = allocated[0]["details"]["uuids"][0]
    log = Path(alice.home) / ".ds01" / "jobs" / f"hello-{job}.log"
    text = log.read_text()
    assert f"hello from {job}" in text
    assert f"GPUS={uuid}" in text  # exactly the slot ds01 recorded, nothing else
    assert str(alice.uid) in text.split()  # ran as the user, not the image's root
    assert os.stat(log).st_uid == alice.uid
    # done: container gone, GPU released, owner told it started and completed
    assert not job_containers(site.runtime(), job)
    assert live_slots(site, "ds01ta") == []
    subjects = [n["subject"] for n in site.notices("ds01ta")]
    assert f"Job {job} (hello) started" in subjects
    assert f"Job {job} completed" in subjects
    logs = ds01_as(alice, user_cli, site, "job", "logs", job)
    assert f"hello from {job}" in logs.stdout
    status = ds01_as(alice, user_cli, site, "job", "status", job, "--json")
    assert status.returncode == 0 and '"COMPLETED"' in status.stdout


def test_a_failing_job_fails_with_its_exit_code(site, users, user_cli):
    alice, _ = users
    job = submit(
        site,
        alice,
        user_cli,
        "--image",
        TEST_IMAGE,
        "--name",
        "broken",
        "--",
        "sh",
        "-c",
        "echo oops; exit 3",
    )
    assert site.slurm.wait_state(job, {"COMPLETED", "FAILED"}, timeout=60) == "FAILED"
    log = Path(alice.home) / ".ds01" / "jobs" / f"broken-{job}.log"
    assert site.slurm.job(job)["ExitCode"] == "3:0", log.read_text()
    assert f"Job {job} failed (exit code 3)" in [n["subject"] for n in site.notices("ds01ta")]


def test_third_gpu_job_pends_and_cancel_frees_the_gpu_at_once(site, users, user_cli):
    alice, bob = users
    long = ["--image", TEST_IMAGE, "--gpus", "1", "--time", "10m", "--", "sleep", "300"]
    first = submit(site, alice, user_cli, "--name", "a1", *long)
    second = submit(site, alice, user_cli, "--name", "a2", *long)
    for job in (first, second):
        site.slurm.wait_state(job, {"RUNNING"}, timeout=30)
        wait_for(f"job {job}'s container", lambda j=job: job_containers(site.runtime(), j))
    held = live_slots(site, "ds01ta")
    assert len(held) == 2 and held[0] != held[1]  # both GPUs, one each
    third = submit(site, bob, user_cli, "--name", "b1", *long)
    assert site.slurm.job(third)["JobState"] == "PENDING"
    listed = json.loads(ds01_as(bob, user_cli, site, "job", "list", "--json").stdout)
    assert [(r["job_id"], r["state"], r["user"]) for r in listed] == [(third, "PENDING", "ds01tb")]

    cancelled = ds01_as(alice, user_cli, site, "job", "cancel", first)
    assert cancelled.returncode == 0, cancelled.stderr
    # the cancel itself stopped the container and released its GPU: no cycle needed
    assert not job_containers(site.runtime(), first)
    assert len(live_slots(site, "ds01ta")) == 1, [
        (e["event_type"], e["details"])
        for e in site.events()
        if e["event_type"].startswith(("slurm", "gpu.rel"))
    ]
    assert f"Job {first} cancelled" in [n["subject"] for n in site.notices("ds01ta")]
    site.slurm.wait_state(third, {"RUNNING"}, timeout=30)
    wait_for("bob's job's container", lambda: live_slots(site, "ds01tb"))
    assert live_slots(site, "ds01tb")[0] != live_slots(site, "ds01ta")[0]
    for job, who in ((second, alice), (third, bob)):
        assert ds01_as(who, user_cli, site, "job", "cancel", job).returncode == 0
    assert live_slots(site, "ds01ta") == [] and live_slots(site, "ds01tb") == []


def test_another_user_cannot_cancel_read_or_claim_a_job(site, users, user_cli):
    alice, bob = users
    args = ["--image", TEST_IMAGE, "--gpus", "1", "--name", "mine", "--", "sleep", "300"]
    job = running_job(site, alice, user_cli, *args)
    for args in (("cancel", job), ("status", job), ("logs", job)):
        refused = ds01_as(bob, user_cli, site, "job", *args)
        assert refused.returncode != 0, args
        assert f"job {job} is not yours" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    listed = json.loads(ds01_as(bob, user_cli, site, "job", "list", "--json").stdout)
    assert job not in [r["job_id"] for r in listed]
    # claiming the job's GPUs: bob's own `ds01 job run` naming alice's job
    claim = ds01_as(
        bob,
        user_cli,
        site,
        "job",
        "run",
        "--image",
        TEST_IMAGE,
        "--",
        "true",
        env={"SLURM_JOB_ID": job},
    )
    assert claim.returncode != 0 and f"job {job} is not yours" in claim.stderr
    # alice's own second container for the same job is refused too
    again = ds01_as(
        alice,
        user_cli,
        site,
        "job",
        "run",
        "--image",
        TEST_IMAGE,
        "--",
        "true",
        env={"SLURM_JOB_ID": job},
    )
    assert again.returncode != 0 and "already has its container" in again.stderr
    # attach: bob's docker exec into alice's job container, through the gateway
    import subprocess

    attach = subprocess.run(
        [
            "runuser",
            "-u",
            bob.name,
            "--",
            "env",
            f"DOCKER_HOST=unix://{site.gateway_socket}",
            "docker",
            "exec",
            f"slurm-job-{job}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert attach.returncode != 0
    assert site.slurm.job(job)["JobState"] == "RUNNING"
    assert ds01_as(alice, user_cli, site, "job", "cancel", job).returncode == 0


def test_a_submit_over_quota_never_reaches_slurm(site, users, user_cli):
    alice, _ = users
    before = sorted(site.slurm.run("squeue", "-h", "-t", "all", "-o", "%i").stdout.split())
    refused = ds01_as(
        alice, user_cli, site, "job", "submit", "--image", TEST_IMAGE, "--gpus", "3", "--", "true"
    )
    assert refused.returncode == 2, refused.stderr
    assert "your quota is 2" in refused.stderr and "Traceback" not in refused.stderr
    missing = ds01_as(
        alice, user_cli, site, "job", "submit", "--image", "ds01/ds01tb/secret:1", "--", "true"
    )
    assert missing.returncode == 2 and "is not on this server" in missing.stderr
    assert sorted(site.slurm.run("squeue", "-h", "-t", "all", "-o", "%i").stdout.split()) == before


def test_slurms_gpus_are_kept_from_plain_containers(site, users, user_cli):
    alice, _ = users
    refused = ds01_as(
        alice, user_cli, site, "container", "create", "plain", "--image", TEST_IMAGE, "--gpus", "1"
    )
    assert refused.returncode != 0
    assert "kept for Slurm batch jobs (ds01 job submit" in refused.stderr, refused.stderr
    assert live_slots(site, "ds01ta") == []


def test_a_script_runs_in_the_workspace_as_the_user_and_jobs_chain(site, users, user_cli):
    alice, _ = users
    workspace = Path(alice.home) / "slurm-ws"
    workspace.mkdir(exist_ok=True)
    os.chown(workspace, alice.uid, alice.gid)
    script = workspace / "train.sh"
    script.write_text("#!/bin/sh\necho epoch 1 > /workspace/out.txt\necho trained\n")
    os.chown(script, alice.uid, alice.gid)
    first = submit(
        site,
        alice,
        user_cli,
        str(script),
        "--image",
        TEST_IMAGE,
        "--workspace",
        str(workspace),
        "--name",
        "train",
    )
    second = submit(
        site,
        alice,
        user_cli,
        "--image",
        TEST_IMAGE,
        "--workspace",
        str(workspace),
        "--after",
        first,
        "--name",
        "eval",
        "--",
        "cat",
        "/workspace/out.txt",
    )
    assert site.slurm.wait_state(first, {"COMPLETED", "FAILED"}, timeout=60) == "COMPLETED"
    assert site.slurm.wait_state(second, {"COMPLETED", "FAILED"}, timeout=60) == "COMPLETED"
    out = workspace / "out.txt"
    assert out.read_text() == "epoch 1\n" and os.stat(out).st_uid == alice.uid
    jobs_dir = Path(alice.home) / ".ds01" / "jobs"
    assert "trained" in (jobs_dir / f"train-{first}.log").read_text()
    assert "epoch 1" in (jobs_dir / f"eval-{second}.log").read_text()


def test_an_array_runs_every_task_in_its_own_container(site, users, user_cli):
    alice, _ = users
    args = ["--image", TEST_IMAGE, "--array", "0-2", "--name", "arr", "--"]
    job = submit(site, alice, user_cli, *args, "sh", "-c", "echo task=$SLURM_ARRAY_TASK_ID")
    for task in range(3):
        site.slurm.wait_state(f"{job}_{task}", {"COMPLETED"}, timeout=60)
        log = Path(alice.home) / ".ds01" / "jobs" / f"arr-{job}_{task}.log"
        assert f"task={task}" in log.read_text()  # each task knows its place
    started = {e["details"]["job"] for e in site.events("slurm.job.started")}
    assert len({site.slurm.job(f"{job}_{t}")["JobId"] for t in range(3)} & started) == 3


def test_cancelling_an_array_by_its_id_cancels_every_task(site, users, user_cli):
    alice, bob = users
    args = ["--image", TEST_IMAGE, "--array", "0-1", "--name", "many"]
    job = submit(site, alice, user_cli, *args, "--", "sleep", "300")
    tasks = [site.slurm.job(f"{job}_{t}")["JobId"] for t in range(2)]
    for task in tasks:
        site.slurm.wait_state(task, {"RUNNING"}, timeout=30)
        wait_for("the task's container", lambda t=task: job_containers(site.runtime(), t))
    refused = ds01_as(bob, user_cli, site, "job", "cancel", job)
    assert refused.returncode == 2 and f"job {job} is not yours" in refused.stderr
    done = ds01_as(alice, user_cli, site, "job", "cancel", job)
    assert done.returncode == 0 and "2 tasks" in done.stdout, done.stderr
    for task in tasks:
        assert not job_containers(site.runtime(), task)
        assert site.slurm.wait_state(task, {"CANCELLED"}, timeout=20) == "CANCELLED"


def test_green_submit_starts_in_the_clean_hours(site, users, user_cli):
    alice, _ = users
    result = ds01_as(
        alice,
        user_cli,
        site,
        "job",
        "submit",
        "--image",
        TEST_IMAGE,
        "--gpus",
        "1",
        "--time",
        "2h",
        "--green",
        "--deadline",
        "12h",
        "--name",
        "green",
        "--",
        "true",
    )
    job = submitted(result)
    assert "instead of" in result.stdout and "Start at" in result.stdout, result.stdout
    record = site.slurm.job(job)
    assert record["JobState"] == "PENDING" and record["Reason"] == "BeginTime"
    begin = dt.datetime.fromisoformat(record["StartTime"]).astimezone(dt.UTC)
    clean = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(
        hours=3
    )
    assert abs((begin - clean).total_seconds()) <= 3600
    assert ds01_as(alice, user_cli, site, "job", "cancel", job).returncode == 0


def test_admins_see_every_job_and_generate_the_config(site, users, user_cli, admin_member):
    alice, bob = users
    job = submit(
        site, alice, user_cli, "--image", TEST_IMAGE, "--name", "waits", "--", "sleep", "300"
    )
    everyone = json.loads(
        ds01_as(admin_member, user_cli, site, "job", "list", "--all", "--json").stdout
    )
    assert job in [r["job_id"] for r in everyone]
    refused = ds01_as(bob, user_cli, site, "job", "list", "--all")
    assert refused.returncode == 2 and "admin" in refused.stderr
    status = ds01_as(admin_member, user_cli, site, "job", "status", job, "--json")
    assert json.loads(status.stdout)["user"] == "ds01ta"
    generated = ds01_as(admin_member, user_cli, site, "admin", "slurm", "config", "--json")
    assert generated.returncode == 0, generated.stderr
    assert f"NodeName={site.node}" in json.loads(generated.stdout)["gres_conf"]
    assert ds01_as(bob, user_cli, site, "admin", "slurm", "config").returncode == 2
    assert ds01_as(admin_member, user_cli, site, "job", "cancel", job).returncode == 0


def test_interactive_gives_a_shell_in_the_image_on_an_allocated_gpu(site, users, user_cli):
    """`ds01 job interactive`: queued through salloc/srun, then a shell in the job's container
    (as the user, on the GPU Slurm gave); leaving it ends the job and frees the GPU."""
    alice, _ = users
    args = [
        "env",
        f"DS01_API_SOCKET={site.api_socket}",
        str(user_cli / "bin" / "ds01"),
        "job",
        "interactive",
        "--image",
        TEST_IMAGE,
        "--gpus",
        "1",
        "--time",
        "10m",
    ]
    seen = converse(
        alice,
        site.gateway_socket,
        args,
        [
            ("runs in slurm-job-", "echo ANSWER=$((6*7)) ME=$(id -u) GPUS=$NVIDIA_VISIBLE_DEVICES"),
            ("ANSWER=42", "exit"),
        ],
    )
    assert f"ANSWER=42 ME={alice.uid} GPUS=GPU-" in seen, seen
    started = [e for e in site.events("slurm.job.started") if e["user"] == "ds01ta"][-1]
    job = started["details"]["job"]
    wait_for("the interactive job to end", lambda: not job_containers(site.runtime(), job))
    assert live_slots(site, "ds01ta") == []
    assert site.slurm.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=30)
