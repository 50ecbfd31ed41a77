"""``ds01 job run``: what a job's script does on its node, as the job's owner.

It asks the node's ``ds01-api`` for the job's container (the GPUs come from Slurm's record,
not from anything said here), copies the container's output to its own (Slurm's log file for
the job), then ends the container and exits with its exit code. When Slurm cancels the job or
its time runs out, Slurm signals this process first: the container is then ended at once and
its GPUs released, rather than at the next cycle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from ds01_core.api import CliState, ServiceError, fail

#: the job's variables its container gets: the script it was submitted as, an array task's place
PASSED_ON = (
    "DS01_JOB_SCRIPT",
    "DS01_MLFLOW",  # DS01_MLFLOW=off ds01 job submit …: the job's container is not wired
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
)


class Signalled(Exception):
    """Slurm asked the job to stop (SIGTERM, SIGINT, SIGHUP)."""


def _raise(signum: int, _frame: Any) -> NoReturn:
    raise Signalled(signal.Signals(signum).name)


def job_id() -> str:
    found = os.environ.get("SLURM_JOB_ID", "")
    if not found:
        fail("`ds01 job run` runs inside a Slurm job (no SLURM_JOB_ID): use `ds01 job submit`", 2)
    return found


def run_step(
    state: CliState,
    *,
    image: str,
    command: Sequence[str],
    workspace: str | None,
    log_path: str | None,
    interactive: bool,
) -> int:
    """Start the container, follow it, end it; the exit code the job should have."""
    job = job_id()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _raise)
    try:
        started = state.call(
            "slurm.job_start",
            job=job,
            image=image,
            command=list(command),
            workspace=workspace,
            interactive=interactive,
            log_path=log_path,
            env=[f"{k}={v}" for k, v in os.environ.items() if k in PASSED_ON],
        )
    except Signalled:
        _finish(state, job, cancelled=True)
        return 143
    gpus = ", ".join(started["slots"]) or "no GPU"
    click.echo(
        f"ds01: job {job} runs in {started['container']} on {started['node']} ({gpus})", err=True
    )
    if started.get("warning"):
        click.echo(f"ds01: warning: {started['warning']}", err=True)
    try:
        if interactive:
            _shell(state, started["container"])
        else:
            _copy_output(state, started["container"])
    except Signalled as why:
        click.echo(f"ds01: job {job} stopped by Slurm ({why}): ending its container", err=True)
        _finish(state, job, cancelled=True)
        return 143
    result = _finish(state, job, cancelled=False)
    code = result.get("exit_code")
    return int(code) if isinstance(code, int) else 1


def _copy_output(state: CliState, container: str) -> None:
    """The container's output to ours until it ends; a broken stream (``ds01-api`` restarted)
    is picked up again where it was, from the lines not yet copied."""
    tail = "all"
    while True:
        try:
            for chunk in state.stream("containers.logs", name=container, follow=True, tail=tail):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
            return
        except Signalled:
            raise
        except Exception as exc:  # the stream broke; the container may still run
            click.echo(f"ds01: lost the output stream ({exc}); reattaching", err=True)
        time.sleep(1.0)
        try:
            running = [c for c in state.call("containers.list") if c.get("name") == container]
        except ServiceError:
            running = [{"name": container}]  # cannot tell: try again
        if not running:
            return
        tail = "0"


def _finish(state: CliState, job: str, *, cancelled: bool) -> dict[str, Any]:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # ending must not be cut short by a second signal
    try:
        return dict(state.call("slurm.job_finish", job=job, cancelled=cancelled))
    except ServiceError as exc:
        click.echo(f"ds01: could not end job {job}'s container: {exc}", err=True)
        return {}


def _shell(state: CliState, container: str) -> None:
    """A shell in the interactive job's container, through the user's Docker endpoint."""
    socket = os.environ.get("DS01_GATEWAY_SOCKET") or _gateway_socket(state)
    env = dict(os.environ)
    if socket:
        env["DOCKER_HOST"] = f"unix://{socket}"
    shell = "command -v bash >/dev/null && exec bash || exec sh"
    try:
        subprocess.run(
            ["docker", "exec", "-it", container, "/bin/sh", "-c", shell], env=env, check=False
        )
    except FileNotFoundError:
        click.echo("ds01: the docker client is not installed on this node", err=True)


def _gateway_socket(state: CliState) -> str | None:
    try:
        return str(state.call("slurm.settings")["gateway_socket"])
    except (ServiceError, KeyError):
        return None
