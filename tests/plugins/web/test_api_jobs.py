"""Batch jobs over the REST API against a real Slurm (tests/plugins/slurm/slurm_env.py): alice
submits a command and a script over HTTP — ``sbatch`` runs as her (Slurm records her uid), with
the same checks and the same batch script as ``ds01 job submit`` — and reads the output, read as
her; bob reaches none of her job's operations; a job over quota never reaches Slurm.

One Slurm per machine at a time: two jobs, no GPUs, a module-scoped site.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from ds01_core.framework.runtime import load_runtime
from ds01_core.services.catalogue import operation_table
from ds01_core.transports.api_socket.server import ThreadedRuntime
from tests.plugins.slurm.slurm_env import TEST_IMAGE, slurm_site, wait_for
from tests.plugins.web.test_api_cross_user import ATTACKS, SLURM, call
from tests.plugins.web.web_env import events, request, serving, token_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def jobs(docker_engine, test_image, unix_users, user_cli):
    alice, bob = unix_users["ds01ta"], unix_users["ds01tb"]
    with slurm_site() as site:
        data = yaml.safe_load(site.config.read_text())
        data.setdefault("api", {})["socket"] = site.api_socket  # the job's `ds01 job run`
        data["plugins"]["slurm"]["ds01_command"] = str(user_cli / "bin" / "ds01")
        config = site.directory / "web.yaml"
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        runtime = load_runtime(str(config), runtime_class=ThreadedRuntime)
        tokens = {
            u.name: token_for(runtime, u.uid, "jobs", ["read", "write"])["token"]
            for u in (alice, bob)
        }
        try:
            with serving(runtime) as url:
                yield {
                    "site": site,
                    "runtime": runtime,
                    "url": url,
                    "tokens": tokens,
                    "alice": alice,
                }
        finally:
            runtime.close()


def submit(jobs: dict[str, Any], body: dict[str, Any], who: str = "ds01ta") -> Any:
    return request(jobs["url"], "POST", "/api/v1/slurm/jobs", jobs["tokens"][who], body)


def test_a_command_job_is_submitted_as_the_user_and_its_log_read_as_her(jobs):
    site, alice = jobs["site"], jobs["alice"]
    answer = submit(
        jobs,
        {
            "image": TEST_IMAGE,
            "command": ["sh", "-c", "echo hello from $SLURM_JOB_ID; id -u"],
            "name": "rest",
            "time_seconds": 600,
        },
    )
    assert answer.status == 200, answer
    job = answer.json["job"]
    assert answer.json["log"] == f"{alice.home}/.ds01/jobs/rest-{job}.log"
    assert site.slurm.job(job)["UserId"].startswith("ds01ta("), "sbatch did not run as alice"
    state = site.slurm.wait_state(job, {"COMPLETED", "FAILED"}, timeout=90)
    log = Path(answer.json["log"])
    assert state == "COMPLETED", log.read_text() if log.exists() else site.slurm.log_tail()
    assert os.stat(log).st_uid == alice.uid and os.stat(log.parent).st_uid == alice.uid
    assert os.stat(log.parent).st_mode & 0o077 == 0  # her log folder is hers alone
    out = request(
        jobs["url"], "GET", f"/api/v1/slurm/jobs/{job}/logs?lines=5", jobs["tokens"]["ds01ta"]
    )
    assert out.status == 200, out
    assert f"hello from {job}" in out.json["output"] and str(alice.uid) in out.json["output"]
    assert out.json["state"] == "COMPLETED"
    one = request(
        jobs["url"], "GET", f"/api/v1/slurm/jobs/{job}/logs?lines=1", jobs["tokens"]["ds01ta"]
    )
    assert one.json["output"].strip() == str(alice.uid)  # the last line only
    shown = request(jobs["url"], "GET", f"/api/v1/slurm/jobs/{job}", jobs["tokens"]["ds01ta"])
    assert shown.status == 200 and shown.json["state"] == "COMPLETED", shown
    audit = [e for e in events(jobs["runtime"], "web.request") if e["user"] == "ds01ta"]
    assert "POST /api/v1/slurm/jobs" in {e["details"]["endpoint"] for e in audit}


def test_a_script_job_runs_and_bob_reaches_none_of_its_operations(jobs):
    site, url = jobs["site"], jobs["url"]
    answer = submit(
        jobs, {"image": TEST_IMAGE, "script": "#!/bin/sh\necho script-ran\nsleep 300\n"}
    )
    assert answer.status == 200, answer
    job = answer.json["job"]
    site.slurm.wait_state(job, {"RUNNING"}, timeout=60)

    def output() -> Any:
        got = request(url, "GET", f"/api/v1/slurm/jobs/{job}/logs", jobs["tokens"]["ds01ta"])
        return got if got.status == 200 and "script-ran" in got.json["output"] else None

    wait_for("the script's output", output)
    table = operation_table(jobs["runtime"])
    attacked = [name for name, attacks in ATTACKS.items() if attacks[0][1] == SLURM]
    assert attacked, "no job operation is marked for this test in test_api_cross_user.ATTACKS"
    for name in attacked:
        op = table.get(name)
        params: dict[str, Any] = {"job": job}
        params.update({p.name: TEST_IMAGE for p in op.params if p.required and p.name == "image"})
        world = {"url": url}
        refused = call(world, op, params, jobs["tokens"]["ds01tb"])
        assert refused.status in (403, 404), (name, refused)
        assert b"script-ran" not in refused.body and b"ds01ta" not in refused.body, refused
    bobs_list = request(url, "GET", "/api/v1/slurm/jobs", jobs["tokens"]["ds01tb"])
    assert bobs_list.status == 200 and job not in {j["job_id"] for j in bobs_list.json}
    assert site.slurm.job(job)["JobState"] == "RUNNING"  # untouched by bob's cancel
    cancelled = request(
        url, "POST", f"/api/v1/slurm/jobs/{job}/cancel", jobs["tokens"]["ds01ta"], {}
    )
    assert cancelled.status == 200, cancelled
    assert site.slurm.wait_state(job, {"CANCELLED"}, timeout=30) == "CANCELLED"


def test_bad_submissions_never_reach_slurm(jobs):
    site = jobs["site"]
    before = site.slurm.run("squeue", "-h", "-o", "%i").stdout.split()
    cases = [
        ({"image": TEST_IMAGE, "command": ["true"], "gpus": 3}, 400, "quota"),
        ({"image": TEST_IMAGE}, 400, "script"),
        ({"image": TEST_IMAGE, "command": ["true"], "script": "echo"}, 400, "not both"),
        ({"image": TEST_IMAGE, "command": ["true"], "name": "../x"}, 400, "job name"),
        ({"image": TEST_IMAGE, "command": ["true"], "after": "1;rm"}, 400, "job id"),
        ({"image": "no-such:image", "command": ["true"]}, 400, "not on this server"),
    ]
    for body, status, words in cases:
        answer = submit(jobs, body)
        assert answer.status == status and words in answer.json["error"]["message"], (body, answer)
    assert site.slurm.run("squeue", "-h", "-o", "%i").stdout.split() == before
