"""``ds01 job submit``'s work in the user's own process: the batch script, ``sbatch`` as the
user, and what Slurm then says about the job's place in the queue.

The job is submitted with the user's own uid (this process is theirs), never by root on their
behalf. Its script runs ``ds01 job run`` on the node Slurm chooses, which asks that node's
``ds01-api`` for the container (:mod:`ds01_slurm.node_jobs`).
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ds01_slurm.slurm_cmd import failure_words

#: the script's own command in the container: the user's script, written where it can run
SCRIPT_RUNNER = (
    'printf "%s" "$DS01_JOB_SCRIPT" > /tmp/ds01-job-script && chmod 700 /tmp/ds01-job-script '
    "&& exec /tmp/ds01-job-script"
)


class SubmitError(Exception):
    """The submission did not reach Slurm, or Slurm refused it; the words say why."""


@attrs.frozen
class JobRequest:
    """What the user asked for, as ``ds01 job submit`` took it."""

    image: str
    command: tuple[str, ...]
    name: str
    gpus: int = 0
    mig: str | None = None
    full_gpu: bool = False
    time_seconds: float | None = None
    cpus: int | None = None
    mem_bytes: int | None = None
    workspace: str | None = None
    after: str | None = None
    array: str | None = None
    begin: str | None = None
    partition: str | None = None
    nodelist: str | None = None
    script_text: str | None = None


def ds01_command() -> str:
    """How the node runs ``ds01``: this very program (the same install on every node)."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "ds01"
    return os.path.abspath(argv0) if os.sep in argv0 else argv0


def slurm_time(seconds: float) -> str:
    """Seconds as Slurm's ``--time`` (``D-HH:MM:SS``), rounded up to a minute."""
    minutes = max(1, math.ceil(seconds / 60))
    days, rest = divmod(minutes, 1440)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"


def gres(req: JobRequest) -> str | None:
    if req.mig:
        return f"gpu:{req.mig}:1"
    if req.full_gpu:
        return "gpu:1"
    return f"gpu:{req.gpus}" if req.gpus else None


def batch_script(req: JobRequest, log_path: str, ds01: str | None = None) -> str:
    """The script Slurm runs on the node: ``ds01 job run`` with the image and the command
    (``ds01``: the program on the node; default :func:`ds01_command`)."""
    run = [ds01 or ds01_command(), "job", "run", "--image", req.image, "--log", log_path]
    if req.workspace:
        run += ["--workspace", req.workspace]
    command = list(req.command) if not req.script_text else ["/bin/sh", "-c", SCRIPT_RUNNER]
    lines = [
        "#!/bin/sh",
        f"# ds01 job {req.name}: {req.image}, written by `ds01 job submit`",
    ]
    if req.script_text:
        lines.append(f"DS01_JOB_SCRIPT={shlex.quote(req.script_text)}")
        lines.append("export DS01_JOB_SCRIPT")
    lines.append("exec " + shlex.join([*run, "--", *command]))
    return "\n".join(lines) + "\n"


def sbatch_args(req: JobRequest, log_pattern: str, partition: str | None) -> list[str]:
    args = ["--parsable", f"--job-name={req.name}", f"--output={log_pattern}"]
    args.append(f"--comment=ds01 image {req.image}")  # no '=': scontrol prints KEY=VALUE
    if g := gres(req):
        args.append(f"--gres={g}")
    if req.time_seconds is not None:
        args.append(f"--time={slurm_time(req.time_seconds)}")
    if req.cpus:
        args.append(f"--cpus-per-task={req.cpus}")
    if req.mem_bytes:
        args.append(f"--mem={max(1, req.mem_bytes // (1 << 20))}M")
    if req.after:
        args.append(f"--dependency=afterok:{req.after}")
    if req.array:
        args.append(f"--array={req.array}")
    if req.begin:
        args.append(f"--begin={req.begin}")
    if req.partition or partition:
        args.append(f"--partition={req.partition or partition}")
    if req.nodelist:
        args.append(f"--nodelist={req.nodelist}")
    if req.workspace:
        args.append(f"--chdir={req.workspace}")
    return args


def slurm_run(
    settings: Mapping[str, Any], name: str, args: Sequence[str], *, stdin: str | None = None
) -> str:
    """A Slurm command as this user (their uid: Slurm checks them, not ds01)."""
    env = dict(os.environ)
    if settings.get("slurm_conf"):
        env["SLURM_CONF"] = settings["slurm_conf"]
    binary = os.path.join(settings["bin_dir"], name) if settings.get("bin_dir") else name
    try:
        done = subprocess.run(
            [binary, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    except FileNotFoundError:
        raise SubmitError(f"Slurm's {name} is not installed on this server") from None
    except subprocess.TimeoutExpired:
        raise SubmitError(
            f"Slurm did not answer {name} within 60s: is slurmctld running?"
        ) from None
    if done.returncode != 0:
        words, unreachable = failure_words(name, done)
        raise SubmitError(words if unreachable else f"Slurm refused: {words}")
    return done.stdout


def submit(req: JobRequest, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Write the log folder and submit; the job id, log path, queue position, expected start."""
    log_dir = settings["log_dir"]
    os.makedirs(log_dir, mode=0o700, exist_ok=True)
    pattern = "%x-%A_%a.log" if req.array else "%x-%j.log"
    log_pattern = os.path.join(log_dir, pattern)
    script = batch_script(req, log_pattern)
    out = slurm_run(
        settings, "sbatch", sbatch_args(req, log_pattern, settings.get("partition")), stdin=script
    )
    job_id = out.strip().split(";")[0]
    if not job_id.isdigit():
        raise SubmitError(f"sbatch answered {out.strip()!r}, not a job id")
    log_path = log_pattern.replace("%x", req.name).replace("%j", job_id).replace("%A", job_id)
    return {"job": job_id, "name": req.name, "log": log_path, **where_in_queue(settings, job_id)}


def where_in_queue(settings: Mapping[str, Any], job_id: str) -> dict[str, Any]:
    """The job's state, its place among pending jobs (by priority) and Slurm's expected start."""
    try:
        mine = slurm_run(settings, "squeue", ["-h", "-j", job_id, "-o", "%T\t%S\t%r"]).split("\t")
        pending = slurm_run(settings, "squeue", ["-h", "-t", "PD", "-o", "%Q\t%i", "--sort=-p,i"])
    except SubmitError:
        return {"state": None, "position": None, "expected_start": None}
    state = mine[0].strip() if mine and mine[0].strip() else None
    start = mine[1].strip() if len(mine) > 1 and mine[1].strip() not in ("", "N/A") else None
    order = [line.split("\t")[1] for line in pending.splitlines() if "\t" in line]
    position = order.index(job_id) + 1 if job_id in order else None
    return {
        "state": state,
        "position": position,
        "expected_start": start,
        "reason": mine[2].strip() if len(mine) > 2 else None,
    }
