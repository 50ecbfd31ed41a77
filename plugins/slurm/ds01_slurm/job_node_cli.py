"""``ds01 job interactive`` and ``ds01 job run``: the commands that put a job's container on
a node — a shell on GPUs Slurm allocates, and the batch script's own step.

``interactive`` runs Slurm's ``srun --pty`` in the user's own process (Slurm sees their uid);
``run`` is what a job's script executes on its node (:mod:`ds01_slurm.job_step`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ds01_core.api import CliState, ServiceError, fail, pass_state
from ds01_slurm.job_cli import duration_option, gpu_options


@click.command("interactive")
@click.option("--image", required=True, help="The image to work in.")
@gpu_options
@click.option("--nodelist", metavar="NODES", help="Run on these Slurm nodes.")
@pass_state
def interactive(state: CliState, image: str, nodelist: str | None, **opts: Any) -> None:
    """A shell in your image on GPUs Slurm allocates (queued like a batch job)."""
    from ds01_slurm.submit import JobRequest, ds01_command, gres, slurm_time

    time_seconds = duration_option(opts["time_text"], "--time") or 3600.0
    checked = state.call(
        "slurm.validate",
        image=image,
        gpus=opts["gpus"],
        mig=opts["mig"],
        full_gpu=opts["full_gpu"],
        time_seconds=time_seconds,
    )
    request = JobRequest(
        image=image,
        command=(),
        name="interactive",
        gpus=opts["gpus"],
        mig=opts["mig"],
        full_gpu=opts["full_gpu"],
    )
    args = [f"--time={slurm_time(time_seconds)}", "--job-name=interactive"]
    if g := gres(request):
        args.append(f"--gres={g}")
    if nodelist:
        args.append(f"--nodelist={nodelist}")
    if checked.get("partition"):
        args.append(f"--partition={checked['partition']}")
    env = dict(os.environ)
    if checked.get("slurm_conf"):
        env["SLURM_CONF"] = checked["slurm_conf"]
    # srun allocates (queued like any job) and runs the step on a terminal on the node
    srun = os.path.join(checked["bin_dir"], "srun") if checked.get("bin_dir") else "srun"
    step = ["--pty", ds01_command(), "job", "run", "--interactive", "--image", image]
    click.echo("Waiting for Slurm to allocate… (Ctrl-C gives up)", err=True)
    try:
        os.execvpe(srun, [srun, *args, *step], env)
    except OSError as exc:
        fail(f"cannot run srun: {exc.strerror}")


@click.command("run", hidden=True)
@click.option("--image", required=True)
@click.option("--workspace")
@click.option("--log", "log_path")
@click.option("--interactive", is_flag=True)
@click.argument("command", nargs=-1)
@pass_state
def run(
    state: CliState,
    image: str,
    workspace: str | None,
    log_path: str | None,
    interactive: bool,
    command: tuple[str, ...],
) -> None:
    """Inside a Slurm job: run its container on the GPUs Slurm gave it (the job script's part)."""
    from ds01_slurm.job_step import run_step

    try:
        code = run_step(
            state,
            image=image,
            command=command,
            workspace=workspace,
            log_path=log_path,
            interactive=interactive,
        )
    except ServiceError as exc:
        click.echo(f"ds01: job {os.environ.get('SLURM_JOB_ID')}: {exc}", err=True)
        sys.exit(exc.exit_code if hasattr(exc, "exit_code") else 1)
    sys.exit(code)
