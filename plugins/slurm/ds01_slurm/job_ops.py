"""The service operations behind ``ds01 job``: check a submission, list, show, cancel, and the
node-side start and finish of a job's container.

The rules live here, not in the CLI: root runs them in-process, every other user through
``ds01-api``, which learns the caller from the kernel. Slurm is asked as root, so a user sees
their own jobs only (an admin everyone's), whatever Slurm's ``PrivateData`` says.
"""

from __future__ import annotations

import os
import pwd
from typing import TYPE_CHECKING, Any

from ds01_core.api import (
    Conflict,
    DockerError,
    Invalid,
    Operation,
    Param,
    Unavailable,
    effective_limits,
    format_duration,
    image_owner,
    live_allocations,
)
from ds01_slurm.gres import node_name
from ds01_slurm.jobs import queue
from ds01_slurm.node_jobs import (
    end_container,
    job_containers,
    job_finish,
    job_start,
    owned_record,
    owned_records,
)
from ds01_slurm.settings import slurm_config
from ds01_slurm.slurm_cmd import SlurmError, SlurmUnavailable, run_slurm

if TYPE_CHECKING:
    from ds01_core.api import ServiceContext


def _slurm_errors(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except SlurmUnavailable as exc:
        raise Unavailable(str(exc)) from None
    except SlurmError as exc:
        raise Conflict(f"Slurm: {exc}") from None


def home_of(user: str) -> str:
    try:
        return pwd.getpwnam(user).pw_dir
    except KeyError:
        return f"/home/{user}"


def validate(
    ctx: ServiceContext,
    image: str,
    gpus: int = 0,
    mig: str | None = None,
    full_gpu: bool = False,
    time_seconds: float | None = None,
    cpus: int | None = None,
    mem_bytes: int | None = None,
    workspace: str | None = None,
) -> dict[str, Any]:
    """Refuse, before Slurm sees it, a job the caller's ds01 limits would never let run; say
    what Slurm needs to know (its configuration, the partition, where the log goes)."""
    runtime, user = ctx.runtime, ctx.caller.name
    limits = effective_limits(runtime, user)
    problems: list[str] = []
    slots = 1 if (mig or full_gpu) else gpus
    weight = float(slots)
    if mig:
        weights = [s.weight for s in runtime.gpu.slots() if s.profile == mig]
        weight = min(weights) if weights else weight
    quota = limits.get("max_gpu_equivalents")
    if slots and quota is not None and weight > quota + 1e-9:
        problems.append(
            f"the job asks for {weight:g} GPU-equivalent(s); your quota is {quota:g} (`ds01 quota`)"
        )
    per_container = limits.get("max_gpu_slots_per_container")
    if per_container is not None and slots > per_container:
        problems.append(f"the job asks for {slots} GPUs; at most {per_container} per job")
    if full_gpu and limits.get("allow_full_gpu") is False:
        problems.append("--full-gpu is not allowed for you (allow_full_gpu)")
    max_runtime = limits.get("max_runtime")
    most = max_runtime.seconds() if max_runtime is not None else None
    if time_seconds is not None and most is not None and time_seconds > most:
        problems.append(
            f"--time {format_duration(time_seconds)} is longer than your max_runtime "
            f"{format_duration(most)}"
        )
    max_cpus = limits.get("max_cpus")
    if cpus is not None and max_cpus is not None and cpus > max_cpus:
        problems.append(f"--cpus {cpus} is more than your max_cpus {max_cpus:g}")
    memory = limits.get("memory")
    if mem_bytes is not None and memory is not None and mem_bytes > int(memory):
        problems.append(f"--mem is more than your memory limit ({memory})")
    found = None
    if image.strip():
        try:
            found = runtime.docker.inspect_image(image)
        except DockerError as exc:  # a name the engine cannot read is no image of this server
            if exc.status is None:
                raise Unavailable(f"cannot reach Docker: {exc}") from None
    if found is None or image_owner(found) not in (None, user):
        problems.append(f"image {image!r} is not on this server: build or pull it first")
    if workspace is not None:
        problems += _workspace_problems(workspace, ctx.caller.uid)
    if problems:
        raise Invalid("this job cannot run: " + "; ".join(problems))
    warnings = []
    held = sum(a.weight for a in live_allocations(runtime) if a.user == user)
    if slots and quota is not None and held + weight > quota + 1e-9:
        warnings.append(
            f"your containers hold {held:g} of your {quota:g} GPU-equivalents now: when the job "
            "starts it is refused unless they have been released by then"
        )
    return {"weight": weight, "warnings": warnings, **settings(ctx)}


def settings(ctx: ServiceContext) -> dict[str, Any]:
    """What the caller's own process needs to run Slurm's commands and reach its job: Slurm's
    configuration, the partition, the caller's log folder, the gateway's socket."""
    runtime, user = ctx.runtime, ctx.caller.name
    cfg = slurm_config(runtime)
    home = home_of(user)
    return {
        "slurm_conf": str(cfg.slurm_conf) if cfg.slurm_conf else None,
        "bin_dir": str(cfg.bin_dir) if cfg.bin_dir else None,
        "partition": cfg.partition,
        "log_dir": cfg.log_dir.replace("{home}", home.rstrip("/") or "/").replace("{user}", user),
        "green": {
            "watts_per_gpu": cfg.green.watts_per_gpu,
            "watts_cpu_only": cfg.green.watts_cpu_only,
        },
        "gateway_socket": runtime.config.gateway.socket,
        "node": node_name(cfg),
    }


def _workspace_problems(workspace: str, uid: int) -> list[str]:
    if not os.path.isabs(workspace):
        return [f"workspace {workspace} must be an absolute path"]
    try:
        owner = os.stat(workspace).st_uid
    except OSError:
        return [f"workspace {workspace} is not a directory here"]
    if not os.path.isdir(workspace) or owner != uid:
        return [f"workspace {workspace} is not a directory of yours"]
    return []


def list_jobs(
    ctx: ServiceContext, all: bool = False, user: str | None = None
) -> list[dict[str, str]]:
    """The caller's jobs; an admin's ``all`` (or one ``user``'s) for admins."""
    cfg = slurm_config(ctx.runtime)
    if all:
        ctx.require_admin()
        users = None
    else:
        users = [ctx.target_user(user, "another user's jobs")]
    return _slurm_errors(queue, cfg, users)


def status(ctx: ServiceContext, job: str) -> dict[str, Any]:
    """One job the caller owns (any, for an admin): Slurm's record, and its container here."""
    record = owned_record(ctx, job, admin_may=True)
    data = record.to_json()
    here = [c for c in job_containers(ctx.runtime, record.job_id)]
    data["container"] = here[0]["Names"][0].lstrip("/") if here else None
    data["container_state"] = here[0].get("State") if here else None
    data["image"] = here[0].get("Image") if here else _comment_image(record.comment)
    data["node"] = node_name(slurm_config(ctx.runtime))
    return data


def _comment_image(comment: str) -> str | None:
    prefix = "ds01 image "
    return comment[len(prefix) :].split()[0] if comment.startswith(prefix) else None


def cancel(ctx: ServiceContext, job: str) -> dict[str, Any]:
    """Cancel a job the caller owns (any, for an admin) — an array's id: every task — and end
    its containers here at once."""
    cfg = slurm_config(ctx.runtime)
    records = owned_records(ctx, job)
    live = [r for r in records if not r.final]
    if not live:
        raise Conflict(f"job {job} has already ended ({records[0].state})")
    _slurm_errors(run_slurm, cfg, "scancel", [job])
    ended = [
        end_container(ctx.runtime, c, "cancelled")
        for record in live
        for c in job_containers(ctx.runtime, record.job_id)
    ]
    return {"job": job, "was": live[0].state, "tasks": len(live), "containers_ended": len(ended)}


_JOB = Param("job", required=True)

OPERATIONS = (
    Operation(
        "slurm.settings",
        "GET",
        "/v1/slurm/settings",
        settings,
        summary="Where Slurm's configuration and your job logs are.",
    ),
    Operation(
        "slurm.validate",
        "POST",
        "/v1/slurm/validate",
        validate,
        (
            Param("image", required=True),
            Param("gpus", "int", default=0),
            Param("mig"),
            Param("full_gpu", "bool", default=False),
            Param("time_seconds", "float"),
            Param("cpus", "int"),
            Param("mem_bytes", "int"),
            Param("workspace"),
        ),
        summary="Check a job against your ds01 limits before it goes to Slurm.",
    ),
    Operation(
        "slurm.jobs",
        "GET",
        "/v1/slurm/jobs",
        list_jobs,
        (Param("all", "bool", default=False), Param("user")),
        summary="Your Slurm jobs (everyone's for admins).",
    ),
    Operation("slurm.job", "GET", "/v1/slurm/jobs/{job}", status, (_JOB,), summary="One job."),
    Operation(
        "slurm.cancel",
        "POST",
        "/v1/slurm/jobs/{job}/cancel",
        cancel,
        (_JOB,),
        summary="Cancel a job.",
    ),
    Operation(
        "slurm.job_start",
        "POST",
        "/v1/slurm/jobs/{job}/start",
        job_start,
        (
            _JOB,
            Param("image", required=True),
            Param("command", "list"),
            Param("workspace"),
            Param("interactive", "bool", default=False),
            Param("log_path"),
            Param("env", "list"),
        ),
        summary="Start your running job's container on this node, on the GPUs Slurm gave it.",
    ),
    Operation(
        "slurm.job_finish",
        "POST",
        "/v1/slurm/jobs/{job}/finish",
        job_finish,
        (_JOB, Param("cancelled", "bool", default=False)),
        summary="End your job's container on this node and release its GPUs.",
    ),
)
