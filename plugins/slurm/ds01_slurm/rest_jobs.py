"""Jobs for callers who are not a process of their own (the REST API): ``slurm.submit`` and
``slurm.logs``, each run *as the caller* in a child process.

``ds01 job submit`` runs ``sbatch`` in the user's own process. A transport that serves many
users from one (root) process must not submit for them as root: here ``sbatch`` runs in a child
with the caller's uid, gid and groups (Slurm checks them, not ds01), after the same checks
(:func:`ds01_slurm.job_ops.validate`) and with the same batch script as the CLI's. A job's log
is read the same way, by a child with the caller's ids, so a log the caller cannot read stays
unread whatever the server may read.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ds01_core.api import Conflict, Forbidden, Invalid, Operation, Param, Unavailable
from ds01_slurm.job_ops import home_of, validate
from ds01_slurm.node_jobs import owned_record
from ds01_slurm.settings import slurm_config
from ds01_slurm.slurm_cmd import failure_words
from ds01_slurm.submit import JobRequest, batch_script, sbatch_args, where_in_queue

if TYPE_CHECKING:
    from ds01_core.api import ServiceContext

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ARRAY = re.compile(r"^[0-9][0-9,%:-]{0,63}$")
#: the most lines ``slurm.logs`` returns at once
MAX_LINES = 10_000
#: makes the log folder (the user's own, private) and then runs the rest of the arguments
MKDIR_THEN = 'umask 077 && mkdir -p -- "$0" && exec "$@"'


def as_user(
    ctx: ServiceContext,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``argv`` in a child process with the caller's uid, gid and groups (never root's)."""
    try:
        entry = pwd.getpwuid(ctx.caller.uid)
    except KeyError:
        raise Forbidden(f"{ctx.caller.name} has no account on this server") from None
    if entry.pw_uid == 0:
        raise Forbidden("root submits with `ds01 job submit`, not over the REST API")
    home = entry.pw_dir if os.path.isdir(entry.pw_dir) else "/"
    try:
        return subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env),
            cwd=home,
            user=entry.pw_uid,
            group=entry.pw_gid,
            extra_groups=os.getgrouplist(entry.pw_name, entry.pw_gid),
            check=False,
        )
    except FileNotFoundError:
        raise Unavailable(f"{argv[0]} is not installed on this server") from None
    except subprocess.TimeoutExpired:
        raise Unavailable(
            f"{os.path.basename(argv[0])} did not finish within {timeout:g}s"
        ) from None


def _env(ctx: ServiceContext, settings: Mapping[str, Any]) -> dict[str, str]:
    """A clean environment for the caller's child (sbatch exports it to the job): theirs, not
    the server's."""
    user = ctx.caller.name
    ds01 = slurm_config(ctx.runtime).ds01_command
    path = "/usr/local/bin:/usr/bin:/bin"
    if ds01 and os.sep in ds01:
        path = f"{os.path.dirname(ds01)}:{path}"
    env = {
        "HOME": home_of(user),
        "USER": user,
        "LOGNAME": user,
        "PATH": path,
        "LANG": "C.UTF-8",
        "DS01_API_SOCKET": ctx.runtime.config.api.socket,
    }
    if settings.get("slurm_conf"):
        env["SLURM_CONF"] = str(settings["slurm_conf"])
    return env


def _binary(settings: Mapping[str, Any], name: str) -> str:
    return os.path.join(settings["bin_dir"], name) if settings.get("bin_dir") else name


def _request(
    image: str,
    command: list[str] | None,
    script: str | None,
    name: str | None,
    after: str | None,
    array: str | None,
    **rest: Any,
) -> JobRequest:
    if bool(command) == bool(script):
        raise Invalid("give the job's script text (script) or its command (command), not both")
    name = name or os.path.basename((command or ["job"])[0])[:64] or "job"
    if not _NAME.match(name):
        raise Invalid(f"job name {name!r}: use letters, digits, '_', '.', '-' (at most 64)")
    if after is not None and not after.isdigit():
        raise Invalid(f"after: give a job id, not {after!r}")
    if array is not None and not _ARRAY.match(array):
        raise Invalid(f"array: {array!r} is not a Slurm array (e.g. 0-9 or 1-100%10)")
    return JobRequest(
        image=image,
        command=tuple(command or ()),
        name=name,
        after=after,
        array=array,
        script_text=script,
        **rest,
    )


def submit(
    ctx: ServiceContext,
    image: str,
    command: list[str] | None = None,
    script: str | None = None,
    name: str | None = None,
    gpus: int = 0,
    mig: str | None = None,
    full_gpu: bool = False,
    time_seconds: float | None = None,
    cpus: int | None = None,
    mem_bytes: int | None = None,
    workspace: str | None = None,
    after: str | None = None,
    array: str | None = None,
) -> dict[str, Any]:
    """Check the job as ``ds01 job submit`` does, then ``sbatch`` it as the caller."""
    if gpus < 0 or (cpus is not None and cpus < 1) or (mem_bytes is not None and mem_bytes < 1):
        raise Invalid("gpus must be 0 or more, cpus and mem_bytes at least 1")
    if sum([bool(gpus), bool(mig), full_gpu]) > 1:
        raise Invalid("choose one of gpus, mig, full_gpu")
    resources: dict[str, Any] = {
        "gpus": gpus,
        "mig": mig,
        "full_gpu": full_gpu,
        "time_seconds": time_seconds,
        "cpus": cpus,
        "mem_bytes": mem_bytes,
        "workspace": workspace,
    }
    req = _request(image, command, script, name, after, array, **resources)
    checked = validate(ctx, image=image, **resources)  # the checks of `ds01 job submit`
    log_dir = checked["log_dir"]
    log_pattern = os.path.join(log_dir, "%x-%A_%a.log" if req.array else "%x-%j.log")
    script_text = batch_script(req, log_pattern, slurm_config(ctx.runtime).ds01_command)
    args = sbatch_args(req, log_pattern, checked.get("partition"))
    done = as_user(
        ctx,
        ["/bin/sh", "-c", MKDIR_THEN, log_dir, _binary(checked, "sbatch"), *args],
        env=_env(ctx, checked),
        stdin=script_text,
    )
    if done.returncode != 0:
        words, unreachable = failure_words("sbatch", done)
        if unreachable:
            raise Unavailable(words)
        raise Conflict(f"Slurm refused the job: {words}")
    job_id = done.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise Unavailable(f"sbatch answered {done.stdout.strip()!r}, not a job id")
    log_path = log_pattern.replace("%x", req.name).replace("%j", job_id).replace("%A", job_id)
    return {
        "job": job_id,
        "name": req.name,
        "log": log_path,
        "warnings": checked.get("warnings", []),
        **where_in_queue(checked, job_id),
    }


def logs(ctx: ServiceContext, job: str, lines: int = 100) -> dict[str, Any]:
    """The last ``lines`` of the caller's own job's output, read by a child with their ids."""
    if not 1 <= lines <= MAX_LINES:
        raise Invalid(f"lines must be from 1 to {MAX_LINES}, got {lines}")
    record = owned_record(ctx, job, admin_may=False)  # read as the caller: their own jobs
    path = record.stdout
    base = {"job": record.job_id, "state": record.state, "log": path or None}
    if not path:
        raise Conflict(f"job {job} has no log file (Slurm names none)")
    done = as_user(
        ctx, ["tail", "-n", str(lines), "--", path], env={"PATH": "/usr/bin:/bin"}, timeout=20
    )
    if done.returncode != 0:
        said = " ".join(done.stderr.split())
        if "No such file" in said:
            if record.state == "PENDING":
                return {**base, "output": "", "note": "the job has not started: no output yet"}
            raise Conflict(f"{path} is not there: the job has written nothing")
        raise Forbidden(f"cannot read {path} as {ctx.caller.name}: {said}")
    return {**base, "output": done.stdout}


_SUBMIT_PARAMS = (
    Param("image", required=True),
    Param("command", "list"),
    Param("script"),
    Param("name"),
    Param("gpus", "int", default=0),
    Param("mig"),
    Param("full_gpu", "bool", default=False),
    Param("time_seconds", "float"),
    Param("cpus", "int"),
    Param("mem_bytes", "int"),
    Param("workspace"),
    Param("after"),
    Param("array"),
)

OPERATIONS = (
    Operation(
        "slurm.submit",
        "POST",
        "/v1/slurm/jobs",
        submit,
        _SUBMIT_PARAMS,
        summary="Submit a batch job (script text or a command), as you, after ds01's checks.",
    ),
    Operation(
        "slurm.logs",
        "GET",
        "/v1/slurm/jobs/{job}/logs",
        logs,
        (Param("job", required=True), Param("lines", "int", default=100)),
        summary="The last lines of your job's output, read as you.",
    ),
)
