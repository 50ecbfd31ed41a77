"""The pure parts of ds01-slurm: Slurm's job records and host lists, the batch script and
sbatch's options, the configuration's checks, and the GRES order."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from ds01_core.domain.config import ConfigError, build_config
from ds01_slurm.config import SlurmConfig
from ds01_slurm.jobs import expand_nodes, gpu_indexes, key_values, parse_job, parse_queue
from ds01_slurm.submit import JobRequest, batch_script, gres, sbatch_args, slurm_time

#: as Slurm 22.05's `scontrol show job -d -o` prints a running job (one line; trimmed)
RUNNING = (
    "JobId=12 JobName=train run UserId=ds01ta(1001) GroupId=ds01ta(1001) JobState=RUNNING "
    "Reason=None Dependency=(null) ExitCode=0:0 RunTime=00:01:02 TimeLimit=04:00:00 "
    "SubmitTime=2026-11-30T22:00:00 StartTime=2026-11-30T22:00:01 EndTime=2026-12-01T02:00:01 "
    "Partition=debug NodeList=gpu[01-02] BatchHost=gpu01 NumNodes=2 "
    "TRES=cpu=2,node=2,billing=2,gres/gpu=3 JOB_GRES=gpu:a100:1,gpu:1g.10gb:2 "
    "Nodes=gpu01 CPU_IDs=0 Mem=0 GRES=gpu:a100:0(IDX:),gpu:1g.10gb:2(IDX:1-2) "
    "Nodes=gpu02 CPU_IDs=1 Mem=0 GRES=gpu:a100:1(IDX:0) MinCPUsNode=1 "
    "Comment=ds01 image ds01/ds01ta/train:1 StdOut=/home/ds01ta/.ds01/jobs/train-12.log "
    "WorkDir=/home/ds01ta"
)


def test_a_running_job_record_gives_each_nodes_gpu_indexes():
    record = parse_job(RUNNING)
    assert (record.job_id, record.name, record.user, record.uid) == (
        "12",
        "train run",
        "ds01ta",
        1001,
    )
    assert record.gpus_by_node == {"gpu01": [1, 2], "gpu02": [0]}
    assert record.running and not record.final
    assert record.nodes == "gpu[01-02]" and record.batch_host == "gpu01"
    assert record.stdout == "/home/ds01ta/.ds01/jobs/train-12.log"
    assert record.comment == "ds01 image ds01/ds01ta/train:1"
    assert record.tres == "cpu=2,node=2,billing=2,gres/gpu=3"


def test_an_ended_job_has_no_gpu_indexes():
    ended = parse_job("JobId=3 UserId=x(5) JobState=CANCELLED Nodes=vm CPU_IDs=0 Mem=0 GRES= X=1")
    assert ended.final and ended.gpus_by_node == {"vm": []}


@pytest.mark.parametrize(
    ("gres_text", "want"),
    [
        ("gpu:1(IDX:0)", [0]),
        ("gpu:a100:2(IDX:0,3)", [0, 3]),
        ("gpu:a100:0(IDX:),gpu:1g.10gb:3(IDX:1-3)", [1, 2, 3]),
        ("gpu:2(IDX:N/A)", []),
        ("mps:100(0),gpu:1(IDX:4)", [4]),
    ],
)
def test_gpu_indexes(gres_text, want):
    assert gpu_indexes(gres_text) == want


def test_host_lists():
    assert expand_nodes("gpu[01-03,07],login") == ["gpu01", "gpu02", "gpu03", "gpu07", "login"]
    assert expand_nodes("vm") == ["vm"]


def test_values_with_spaces_and_repeated_keys():
    assert key_values("A=1 Name=a b c Nodes=x GRES=g Nodes=y") == [
        ("A", "1"),
        ("Name", "a b c"),
        ("Nodes", "x"),
        ("GRES", "g"),
        ("Nodes", "y"),
    ]


def test_squeue_rows_keep_a_name_with_tabs_last():
    line = "\t".join(
        [
            "5",
            "ds01ta",
            "PENDING",
            "0:00",
            "10:00",
            "",
            "Resources",
            "gres:gpu:1",
            "N/A",
            "2026-11-30T22:00:00",
            "debug",
            "name\twith tab",
        ]
    )
    [row] = parse_queue([line, "garbage"])
    assert row["job_id"] == "5" and row["name"] == "name\twith tab" and row["reason"] == "Resources"
    assert row["final"] is False  # pending: still to run (the web page offers Cancel)


@pytest.mark.parametrize(
    ("state", "final"),
    [("RUNNING", False), ("COMPLETED", True), ("CANCELLED by 0", True), ("REVOKED", True),
     ("SPECIAL_EXIT", True), ("", False)],
)  # fmt: skip
def test_squeue_rows_say_whether_the_job_is_over(state, final):
    cells = ["7", "ds01ta", state, "0:01", "10:00", "n1", "None", "N/A", "", "", "debug", "j"]
    [row] = parse_queue(["\t".join(cells)])
    assert row["final"] is final


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1, "0-00:01:00"), (90 * 60, "0-01:30:00"), (26 * 3600 + 61, "1-02:02:00")],
)
def test_slurm_time_rounds_up_to_minutes(seconds, text):
    assert slurm_time(seconds) == text


def test_the_batch_script_runs_ds01_job_run_with_the_command_quoted():
    req = JobRequest(
        image="ds01/ds01ta/x:1",
        command=("python", "train.py", "--lr", "1e-3; rm -rf ~"),
        name="t",
        workspace="/home/ds01ta/p",
    )
    script = batch_script(req, "/home/ds01ta/.ds01/jobs/%x-%j.log")
    last = script.strip().splitlines()[-1]
    assert last.startswith("exec ")
    argv = shlex.split(last)[1:]
    assert argv[1:9] == [
        "job",
        "run",
        "--image",
        "ds01/ds01ta/x:1",
        "--log",
        "/home/ds01ta/.ds01/jobs/%x-%j.log",
        "--workspace",
        "/home/ds01ta/p",
    ]
    assert argv[9:] == ["--", "python", "train.py", "--lr", "1e-3; rm -rf ~"]


def test_a_script_is_carried_in_the_environment_and_run_as_written(tmp_path):
    text = '#!/bin/sh\necho "it\'s $((6 * 7))"\n'
    script = batch_script(JobRequest(image="i", command=(), name="s", script_text=text), "/l")
    assert "DS01_JOB_SCRIPT=" in script
    # the script as sh reads it: the variable holds the user's script, byte for byte
    head = script[: script.index("\nexec ") + 1]
    shown = subprocess.run(
        ["/bin/sh", "-c", head + 'printf %s "$DS01_JOB_SCRIPT"'],
        capture_output=True,
        text=True,
        check=True,
    )
    value = shown.stdout
    assert value == text
    from ds01_slurm.submit import SCRIPT_RUNNER

    runner = SCRIPT_RUNNER.replace("/tmp/ds01-job-script", str(tmp_path / "job"))
    done = subprocess.run(
        ["/bin/sh", "-c", runner],
        env={"DS01_JOB_SCRIPT": value},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "it's 42\n"


def test_sbatch_options():
    req = JobRequest(
        image="i",
        command=("x",),
        name="n",
        gpus=2,
        time_seconds=3600,
        cpus=4,
        mem_bytes=16 << 30,
        after="41",
        array="0-9%2",
        begin="2026-12-01T03:00:00",
        nodelist="node2",
    )
    args = sbatch_args(req, "/l/%x-%j.log", "gpu")
    assert args == [
        "--parsable",
        "--job-name=n",
        "--output=/l/%x-%j.log",
        "--comment=ds01 image i",
        "--gres=gpu:2",
        "--time=0-01:00:00",
        "--cpus-per-task=4",
        "--mem=16384M",
        "--dependency=afterok:41",
        "--array=0-9%2",
        "--begin=2026-12-01T03:00:00",
        "--partition=gpu",
        "--nodelist=node2",
    ]
    assert gres(JobRequest(image="i", command=(), name="n", mig="1g.10gb")) == "gpu:1g.10gb:1"
    assert gres(JobRequest(image="i", command=(), name="n")) is None


def test_bad_settings_are_refused_with_their_paths():
    data = {
        "plugins": {
            "slurm": {
                "gpus": [0, 0, -1],
                "log_dir": "/var/log/jobs",
                "node_name": "bad name",
                "idle": {"action": "kill", "warn_before": "3h", "gpu_threshold": 120},
            }
        }
    }
    with pytest.raises(ConfigError) as refused:
        build_config(data, sections={"slurm": SlurmConfig})
    text = str(refused.value)
    for path in (
        "plugins.slurm.gpus",
        "plugins.slurm.log_dir",
        "plugins.slurm.node_name",
        "plugins.slurm.idle.action",
        "plugins.slurm.idle.warn_before",
        "plugins.slurm.idle.gpu_threshold",
    ):
        assert path in text, text
