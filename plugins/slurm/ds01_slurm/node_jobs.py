"""A job's container on the node Slurm chose: created with the job's own GPUs, and ended.

``slurm.job_start`` is called by the job itself (its batch script runs ``ds01 job run`` on the
node, as the job's owner, through ``ds01-api``). Nothing the caller says decides the GPUs: the
service asks Slurm (``scontrol show job -d``) whose job it is, whether it runs, on which nodes
and with which GRES indexes here, and maps those to ds01's slots (:mod:`ds01_slurm.gres`). The
container is then made through ds01's admission (quota, image, workspace, plugins), with
exactly those slots, running as the user.

``slurm.job_finish`` stops and removes the container and releases its GPUs at once, telling
the owner how the job ended; the cycle's ``slurm-jobs`` step does the same for a job whose
step died without saying so.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ds01_core.api import (
    Conflict,
    DockerError,
    Event,
    Forbidden,
    Invalid,
    NotFound,
    Notice,
    ServiceError,
    Unavailable,
    create_container,
    live_allocations,
    release_gpus,
    tell_user,
)
from ds01_slurm.gres import GresMismatch, node_name, slots_for_indexes, slurm_gpus
from ds01_slurm.jobs import BadJobId, JobRecord, expand_nodes, show_job, show_jobs
from ds01_slurm.settings import (
    JOB_LABEL,
    KIND_LABEL,
    LOG_LABEL,
    NODE_LABEL,
    OWNER_LABEL,
    container_name,
    slurm_config,
)
from ds01_slurm.slurm_cmd import SlurmError, SlurmUnavailable

if TYPE_CHECKING:
    from ds01_core.api import Runtime, ServiceContext

log = logging.getLogger(__name__)

#: the audit event of each way a job ends (``slurm.job.<kind>``)
EVENT_KINDS = {
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
    "timed out": "timeout",
    "cancelled: its GPUs were idle": "idle_cancelled",
    "requeued": "requeued",
    "ended": "ended",
}

#: the command of an interactive job's container: up until stopped, for ``docker exec``
KEEP_ALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM; while sleep 3600 & wait $!; do :; done"]


def job_records(runtime: Runtime, job: str) -> list[JobRecord]:
    """Slurm's records of ``job`` (one job, or an array's tasks) as a service error when there
    are none or Slurm cannot say."""
    try:
        records = show_jobs(slurm_config(runtime), job)
    except BadJobId as exc:
        raise Invalid(str(exc)) from None
    except SlurmUnavailable as exc:
        raise Unavailable(str(exc)) from None
    except SlurmError as exc:
        raise Conflict(f"Slurm: {exc}") from None
    if not records:
        raise NotFound(f"Slurm has no job {job} (finished long ago, or never was)")
    return records


def owned_records(ctx: ServiceContext, job: str, *, admin_may: bool = True) -> list[JobRecord]:
    """Every record of ``job`` if the caller owns them (or is an admin, where ``admin_may``);
    another user's job is refused without saying more about it."""
    records = job_records(ctx.runtime, job)
    if any(r.uid != ctx.caller.uid for r in records) and not (admin_may and ctx.caller.admin):
        raise Forbidden(f"job {job} is not yours")
    return records


def owned_record(ctx: ServiceContext, job: str, *, admin_may: bool) -> JobRecord:
    """``job`` (an array's id: its first task) if the caller may see it (:func:`owned_records`)."""
    return owned_records(ctx, job, admin_may=admin_may)[0]


def job_start(
    ctx: ServiceContext,
    job: str,
    image: str,
    command: list[str] | None = None,
    workspace: str | None = None,
    interactive: bool = False,
    log_path: str | None = None,
    env: list[str] | None = None,
) -> dict[str, Any]:
    """Create and start the container of the caller's running job ``job`` on this node;
    ``env``: the job's own ``KEY=VALUE`` entries for it (its script, when submitted as one)."""
    runtime = ctx.runtime
    cfg = slurm_config(runtime)
    record = owned_record(ctx, job, admin_may=False)  # even an admin runs only their own jobs
    here = node_name(cfg)
    if not record.running:
        raise Conflict(
            f"job {job} is {record.state}, not running: its container starts when it runs"
        )
    if here not in expand_nodes(record.nodes):
        raise Conflict(
            f"job {job} runs on {record.nodes}, not on this server ({here}): "
            "`ds01 job run` belongs in the job's own script"
        )
    if job_containers(runtime, job):
        raise Conflict(f"job {job} already has its container ({container_name(job)})")
    try:
        slots = slots_for_indexes(slurm_gpus(runtime, cfg), record.gpus_by_node.get(here, []), here)
    except (GresMismatch, OSError) as exc:
        raise Unavailable(str(exc)) from None
    _end_stale_holders(runtime, [s.uuid for s in slots])
    labels = {
        JOB_LABEL: record.job_id,
        NODE_LABEL: here,
        KIND_LABEL: "interactive" if interactive else "batch",
    }
    if log_path and "%" in log_path:  # the script names Slurm's pattern; Slurm knows the file
        log_path = record.stdout or None
    if log_path:
        labels[LOG_LABEL] = log_path
    bad = [e for e in env or [] if "=" not in e or e.startswith(("NVIDIA_", "SLURM_JOB_"))]
    if bad:
        raise Invalid(f"not KEY=VALUE, or a variable ds01 sets itself: {', '.join(bad)}")
    env = [*(env or []), f"SLURM_JOB_ID={record.job_id}", f"SLURM_JOB_NAME={record.name}"]
    name = container_name(record.job_id)
    if runtime.docker.inspect_container(name) is not None:  # a name anyone could have taken
        name = f"{name}-{secrets.token_hex(3)}"
    try:
        created = create_container(
            runtime,
            ctx.caller.name,
            name=name,
            image=image,
            command=KEEP_ALIVE if interactive else (command or []),
            slot_uuids=[s.uuid for s in slots],
            workspace=workspace,
            labels=labels,
            env=env,
            as_user=True,
            source="slurm",
        )
    except ServiceError as refused:
        _tell(
            runtime,
            ctx.caller.name,
            f"Job {record.job_id} could not start",
            f"Your Slurm job {record.job_id} ({record.name}) was given its GPUs but ds01 "
            f"refused its container: {refused}. The job ends; submit it again when that "
            "changes.",
            "slurm.job.refused",
            name,
            severity="warning",
        )
        raise
    try:
        runtime.docker.start(created["id"])
    except DockerError as exc:
        _remove(runtime, created["id"], "job container did not start")
        raise Conflict(f"job {job}'s container did not start: {exc}") from None
    details = {
        "job": record.job_id,
        "container": created["name"],
        "container_id": created["id"],
        "node": here,
        "slots": list(created["slots"]),
        "image": image,
    }
    runtime.events.append(Event("slurm.job.started", ctx.caller.name, "slurm", details))
    gpus = ", ".join(created["slots"]) or "no GPU"
    _tell(
        runtime,
        ctx.caller.name,
        f"Job {record.job_id} ({record.name}) started",
        f"Your Slurm job {record.job_id} ({record.name}) is running on {here} with {gpus}, "
        f"in {image}." + (f" Its output: {log_path}" if log_path else ""),
        "slurm.job.started",
        created["name"],
    )
    return {**details, "warning": created.get("warning")}


def _end_stale_holders(runtime: Runtime, uuids: list[str]) -> None:
    """Slurm gave these GPUs to a new job, so a job before it has ended; if that job's
    container still holds one (its step was killed while the container stopped), end it now
    rather than refuse the new job. A GPU held by anything else is left to admission."""
    wanted = set(uuids)
    holders = {a.container for a in live_allocations(runtime) if wanted & set(a.slot_uuids)}
    cfg = slurm_config(runtime)
    for container in holders:
        inspect = runtime.docker.inspect_container(container)
        labels = ((inspect or {}).get("Config") or {}).get("Labels") or {}
        job = labels.get(JOB_LABEL)
        if inspect is None or job is None:
            continue
        try:
            record = show_job(cfg, job)
        except SlurmError:
            continue
        if record is None or not record.running:
            state = ((inspect.get("State") or {}).get("Status")) or ""
            summary = {"Id": inspect["Id"], "State": state, "Labels": labels}
            end_container(
                runtime, summary, "cancelled" if record and record.state == "CANCELLED" else None
            )


def job_finish(ctx: ServiceContext, job: str, cancelled: bool = False) -> dict[str, Any]:
    """End the caller's job's container on this node: stop, remove, release, tell."""
    runtime = ctx.runtime
    found = job_containers(runtime, job)
    mine = [c for c in found if ctx.caller.admin or owner_of(c) == ctx.caller.name]
    if found and not mine:
        raise Forbidden(f"job {job} is not yours")
    if not mine:
        return {"job": job, "found": False, "exit_code": None, "state": None}
    outcome = end_container(runtime, mine[0], "cancelled" if cancelled else None)
    return {"job": job, "found": True, **outcome}


def end_container(runtime: Runtime, summary: dict[str, Any], why: str | None) -> dict[str, Any]:
    """Stop (when running) and remove one job container, release its GPUs, and tell its owner
    how the job ended: ``completed`` (exit 0), ``failed`` (another exit code) or ``why``
    (``cancelled``, ``timed out``, ``cancelled for idle GPUs`` …). Whoever removes the container
    tells; a second caller finds it gone and stays silent."""
    container = str(summary["Id"])
    labels = summary.get("Labels") or {}
    job, user = labels.get(JOB_LABEL, "?"), owner_of(summary)
    with _claim(runtime, container) as mine:
        if not mine:  # another process is ending it, and tells: wait for that, stay silent
            _wait_gone(runtime, container)
            release_gpus(runtime, container, f"slurm job {job} ended")
            return {"exit_code": None, "state": "gone"}
        try:
            if summary.get("State") == "running":
                runtime.docker.stop(container, timeout=int(float(slurm_config(runtime).stop_grace)))
            inspect = runtime.docker.inspect_container(container)
            code = ((inspect or {}).get("State") or {}).get("ExitCode")
            runtime.docker.remove(container, force=True)
        except DockerError as exc:
            if exc.status not in (404, 409):
                raise Unavailable(f"cannot end job {job}'s container: {exc}") from None
            _wait_gone(runtime, container)
            release_gpus(runtime, container, f"slurm job {job} ended")
            return {"exit_code": None, "state": "gone"}
    state = why or ("completed" if code == 0 else "failed")
    released = release_gpus(runtime, container, f"slurm job {job} {state}")
    details = {
        "job": job,
        "container": container_name(job),
        "container_id": container,
        "exit_code": code,
        "state": state,
        "released": [a.id for a in released],
    }
    kind = EVENT_KINDS.get(state, "ended")
    runtime.events.append(Event(f"slurm.job.{kind}", user, "slurm", details))
    words = {"completed": "completed", "failed": f"failed (exit code {code})"}.get(state, state)
    _tell(
        runtime,
        user,
        f"Job {job} {words}",
        f"Your Slurm job {job} {words}; its GPUs are free again."
        + (f" Its output: {labels[LOG_LABEL]}" if labels.get(LOG_LABEL) else ""),
        f"slurm.job.{kind}",
        container_name(job),
        severity="info" if state == "completed" else "warning",
    )
    return {"exit_code": code, "state": state}


@contextlib.contextmanager
def _claim(runtime: Runtime, container: str) -> Iterator[bool]:
    """True for the one process (ds01-api for the job's step or a cancel, ds01d's cycle) that
    ends this container; the others get False while it does."""
    directory = Path(runtime.config.paths.runtime_dir) / "slurm-jobs"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / f"{container[:64]}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            (directory / f"{container[:64]}.lock").unlink(missing_ok=True)


def _wait_gone(runtime: Runtime, container: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and runtime.docker.inspect_container(container) is not None:
        time.sleep(0.1)


def job_containers(runtime: Runtime, job: str | None = None) -> list[dict[str, Any]]:
    """This engine's job containers (of ``job``, or all), running or not."""
    label = JOB_LABEL if job is None else f"{JOB_LABEL}={job}"
    try:
        return runtime.docker.list_containers(all=True, filters={"label": [label]})
    except DockerError as exc:
        raise Unavailable(f"cannot reach Docker: {exc}") from None


def owner_of(summary: dict[str, Any]) -> str:
    return str((summary.get("Labels") or {}).get(OWNER_LABEL, ""))


def _remove(runtime: Runtime, container: str, reason: str) -> None:
    try:
        runtime.docker.remove(container, force=True)
    except DockerError:
        log.warning("could not remove job container %s after: %s", container, reason)
    release_gpus(runtime, container, reason)


def _tell(
    runtime: Runtime,
    user: str,
    subject: str,
    message: str,
    event_type: str,
    container: str,
    severity: str = "info",
) -> None:
    if not slurm_config(runtime).notify or not user:
        return
    try:
        tell_user(
            runtime,
            Notice(user, subject, message, severity, container, event_type),  # type: ignore[arg-type]
        )
    except Exception:  # a notice that cannot go out must not fail the job
        log.exception("job notice to %s failed", user)
