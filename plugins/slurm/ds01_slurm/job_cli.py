"""``ds01 job``: submit, list, status, logs, cancel, interactive — and ``run``, the job's side.

Every rule is a service operation (``slurm.*``, :mod:`ds01_slurm.job_ops`); this module reads
options, asks, and prints. ``submit`` and ``interactive`` call Slurm's own ``sbatch`` and
``srun`` in this (the user's) process, so that Slurm sees the user's own uid.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import click

from ds01_core.api import (
    ByteSize,
    CliState,
    Duration,
    fail,
    json_option,
    pass_state,
    print_json,
    print_table,
)


def duration_option(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return float(Duration.parse(text))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _size(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(ByteSize.parse(text))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--mem") from None


@click.group("job")
def job() -> None:
    """Batch jobs on Slurm, in your image, on GPUs Slurm chooses and ds01 accounts for."""


_GPU_OPTIONS = [
    click.option("--gpus", type=click.IntRange(min=0), default=0, help="Whole GPUs (or slots)."),
    click.option("--mig", metavar="PROFILE", help="One MIG instance of PROFILE (e.g. 1g.10gb)."),
    click.option("--full-gpu", is_flag=True, help="One whole GPU."),
    click.option("--time", "time_text", metavar="DURATION", help="Time limit: 30m, 4h, 2d."),
]


def gpu_options(fn: Any) -> Any:
    for option in reversed(_GPU_OPTIONS):
        fn = option(fn)
    return fn


@job.command("submit")
@click.argument("script", required=False, type=click.Path(dir_okay=False))
@click.argument("command", nargs=-1)
@click.option("--image", required=True, help="The image the job runs in (e.g. ds01/you/train).")
@gpu_options
@click.option("--cpus", type=click.IntRange(min=1), help="CPUs for the job.")
@click.option("--mem", "mem_text", metavar="SIZE", help="Memory: 16g, 512m.")
@click.option("--name", help="The job's name (default: the script's or command's).")
@click.option("--workspace", type=click.Path(file_okay=False), help="Your folder, at /workspace.")
@click.option("--after", metavar="JOB", help="Start after JOB completed successfully.")
@click.option("--array", metavar="SPEC", help="A job array, e.g. 0-9 or 1-100%10.")
@click.option("--nodelist", metavar="NODES", help="Run on these Slurm nodes.")
@click.option("--green", is_flag=True, help="Start when the grid's carbon intensity is lowest.")
@click.option("--deadline", metavar="WHEN", help="With --green: finish by (12h, 2d, 08:00).")
@json_option
@pass_state
def submit(state: CliState, script: str | None, command: tuple[str, ...], **opts: Any) -> None:
    """Submit SCRIPT (run in the image) or `-- COMMAND…` as a Slurm batch job.

    ds01 checks the job against your limits first, so a job that could never run is refused
    now rather than left pending.
    """
    from ds01_slurm.submit import JobRequest, SubmitError
    from ds01_slurm.submit import submit as do_submit

    script_text, command = _script_or_command(script, command)
    workspace = os.path.abspath(opts["workspace"]) if opts["workspace"] else None
    time_seconds = duration_option(opts["time_text"], "--time")
    if opts["after"] and not opts["after"].isdigit():
        raise click.BadParameter("give a job id", param_hint="--after")
    if opts["deadline"] and not opts["green"]:
        raise click.UsageError("--deadline goes with --green")
    if sum([bool(opts["gpus"]), bool(opts["mig"]), opts["full_gpu"]]) > 1:
        raise click.UsageError("choose one of --gpus, --mig, --full-gpu")
    checked = state.call(
        "slurm.validate",
        image=opts["image"],
        gpus=opts["gpus"],
        mig=opts["mig"],
        full_gpu=opts["full_gpu"],
        time_seconds=time_seconds,
        cpus=opts["cpus"],
        mem_bytes=_size(opts["mem_text"]),
        workspace=workspace,
    )
    begin: str | None = None
    green_lines: list[str] = []
    if opts["green"]:
        begin, green_lines = _green(state, checked, opts, time_seconds)
    name = opts["name"] or os.path.basename(script or command[0])[:64] or "job"
    request = JobRequest(
        image=opts["image"],
        command=command,
        name=name,
        gpus=opts["gpus"],
        mig=opts["mig"],
        full_gpu=opts["full_gpu"],
        time_seconds=time_seconds,
        cpus=opts["cpus"],
        mem_bytes=_size(opts["mem_text"]),
        workspace=workspace,
        after=opts["after"],
        array=opts["array"],
        begin=begin,
        nodelist=opts["nodelist"],
        script_text=script_text,
    )
    try:
        result = do_submit(request, checked)
    except (SubmitError, OSError) as exc:
        fail(str(exc))
    result["warnings"] = checked.get("warnings", [])
    if opts["as_json"]:
        print_json(result)
        return
    for line in result["warnings"]:
        click.echo(f"Warning: {line}", err=True)
    for line in green_lines:
        click.echo(line)
    click.echo(f"Submitted job {result['job']} ({name}).")
    if result.get("position"):
        click.echo(f"  queue position: {result['position']} of the pending jobs")
    elif result.get("state"):
        click.echo(f"  state: {result['state']}")
    if result.get("expected_start"):
        click.echo(f"  expected start: {result['expected_start']} (Slurm's estimate)")
    click.echo(f"  log: {result['log']}")
    click.echo(f"  follow it: ds01 job logs {result['job']} -f")


def _script_or_command(
    script: str | None, command: tuple[str, ...]
) -> tuple[str | None, tuple[str, ...]]:
    if script and command:  # `ds01 job submit -- python x.py`: click puts python in SCRIPT
        return None, (script, *command)
    if script and "--" in sys.argv:
        return None, (script,)
    if script:
        try:
            with open(script, encoding="utf-8") as handle:
                return handle.read(), ()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {script}: {exc}", param_hint="SCRIPT") from None
    if not command:
        raise click.UsageError("give a SCRIPT, or the command after --")
    return None, command


def _green(
    state: CliState, checked: dict[str, Any], opts: dict[str, Any], time_seconds: float | None
) -> tuple[str | None, list[str]]:
    """``--green``: the start with the least CO₂ before the deadline (default: within 24h)."""
    import datetime as dt

    from ds01_slurm.config import GreenConfig
    from ds01_slurm.green import GreenError
    from ds01_slurm.green_cli import describe, green_plan, parse_deadline, sbatch_begin

    if time_seconds is None:
        raise click.UsageError("--green needs --time (how long the job runs)")
    now = dt.datetime.now(dt.UTC)
    try:
        deadline = parse_deadline(opts["deadline"] or "24h", now)
        plan = green_plan(
            state,
            duration_s=time_seconds,
            deadline=deadline,
            gpus=float(checked.get("weight") or 0.0),
            config=GreenConfig(**checked.get("green", {})),
            now=now,
        )
    except GreenError as exc:
        fail(str(exc))
    begin = sbatch_begin(plan)
    return (begin.removeprefix("--begin=") if begin else None), describe(plan)


@job.command("list")
@click.option("--all", "all_users", is_flag=True, help="Everyone's jobs (admins).")
@json_option
@pass_state
def list_jobs(state: CliState, all_users: bool, as_json: bool) -> None:
    """Your jobs, pending and running (and those Slurm still remembers)."""
    rows = state.call("slurm.jobs", all=all_users)
    if as_json:
        print_json(rows)
        return
    print_table(
        [
            [
                r["job_id"],
                r["name"],
                *([r["user"]] if all_users else []),
                r["state"],
                r["run_time"],
                r["time_limit"],
                _gres(r["gres"]),
                r["nodes"] or r["reason"],
            ]
            for r in rows
        ],
        [
            "JOB",
            "NAME",
            *(["USER"] if all_users else []),
            "STATE",
            "TIME",
            "LIMIT",
            "GPUS",
            "NODES/REASON",
        ],
    )


def _gres(text: str) -> str:
    return text.replace("gres:", "").replace("gres/", "") if text not in ("", "N/A") else "-"


@job.command("status")
@click.argument("job_id", metavar="JOB")
@json_option
@pass_state
def status(state: CliState, job_id: str, as_json: bool) -> None:
    """One job: state, time used and allowed, GPUs, memory, image, log, exit code."""
    data = state.call("slurm.job", job=job_id)
    if as_json:
        print_json(data)
        return
    gpus = "; ".join(f"{n}: GRES {','.join(map(str, i))}" for n, i in data["gpus_by_node"].items())
    rows = [
        ("job", f"{data['job_id']} ({data['name']})"),
        ("user", data["user"]),
        (
            "state",
            data["state"] + (f" ({data['reason']})" if data["reason"] not in ("None", "") else ""),
        ),
        ("time", f"{data['run_time']} of {data['time_limit']}"),
        ("nodes", data["nodes"] or "-"),
        ("GPUs", gpus or "-"),
        ("resources", data["tres"] or "-"),
        ("image", data.get("image") or "-"),
        (
            "container",
            f"{data['container']} ({data['container_state']})" if data.get("container") else "-",
        ),
        ("log", data["stdout"] or "-"),
        ("exit code", data["exit_code"] or "-"),
    ]
    for key, value in rows:
        click.echo(f"{key + ':':11} {value}")


@job.command("logs")
@click.argument("job_id", metavar="JOB")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the job ends.")
@pass_state
def logs(state: CliState, job_id: str, follow: bool) -> None:
    """A job's output (the log Slurm writes for it, which is yours)."""
    from ds01_slurm.jobs import FINAL_STATES

    data = state.call("slurm.job", job=job_id)
    path = data["stdout"]
    if not path:
        fail(f"job {job_id} has no log file")
    offset = 0
    while True:
        offset = _print_from(path, offset, pending=data["state"] == "PENDING")
        if not follow or data["state"] in FINAL_STATES:
            return
        time.sleep(1.0)
        data = state.call("slurm.job", job=job_id)


def _print_from(path: str, offset: int, *, pending: bool) -> int:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        if pending:
            return offset
        fail(f"{path} is not there (yet): the job has written nothing")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    return offset + len(chunk)


@job.command("cancel")
@click.argument("job_id", metavar="JOB")
@json_option
@pass_state
def cancel(state: CliState, job_id: str, as_json: bool) -> None:
    """Cancel a job: its container stops and its GPUs are free at once."""
    result = state.call("slurm.cancel", job=job_id)
    if as_json:
        print_json(result)
        return
    tasks = f", {result['tasks']} tasks" if result.get("tasks", 1) > 1 else ""
    click.echo(f"Cancelled job {result['job']} (it was {result['was']}{tasks}).")
