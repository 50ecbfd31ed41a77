"""The ``slurm-jobs`` cycle step: job containers follow their Slurm jobs, and idle GPU jobs
are warned, then cancelled.

Each cycle (when this server runs job containers), one ``squeue`` call tells every job's state.
A container whose job has ended (completed, cancelled, timed out, or forgotten by Slurm) while
its step could not say so — killed, or the node's ``ds01-api`` down — is ended here: stopped,
removed, its GPUs released, its owner told. A job whose GPUs have all stayed at or below
``idle.gpu_threshold`` % is warned ``idle.warn_before`` ahead of ``idle.cancel_after`` and, in a
later cycle (never without a warning first), cancelled (``idle.action: cancel``).

When Slurm does not answer, nothing is ended: a job is never taken for finished because its
controller is restarting.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ds01_core.api import CycleStep, Event, Notice, format_duration, tell_user
from ds01_slurm.jobs import FINAL_STATES
from ds01_slurm.node_jobs import end_container
from ds01_slurm.settings import JOB_LABEL, slurm_config
from ds01_slurm.slurm_cmd import SlurmError, run_slurm

if TYPE_CHECKING:
    from ds01_core.api import CycleContext, Runtime, Workload
    from ds01_slurm.config import SlurmConfig

log = logging.getLogger(__name__)

#: why a container whose job is in this state is ended (None: by its exit code)
ENDINGS = {
    "CANCELLED": "cancelled",
    "TIMEOUT": "timed out",
    "PREEMPTED": "cancelled",
    "NODE_FAIL": "failed",
    "DEADLINE": "timed out",
    "OUT_OF_MEMORY": "failed",
}
IDLE_MEMO = "ds01_slurm.idle"


def job_states(cfg: SlurmConfig, job_ids: Sequence[str]) -> dict[str, str]:
    """Slurm's state of each job it still knows (one ``squeue``; a forgotten job is absent)."""
    out = run_slurm(cfg, "squeue", ["-h", "-t", "all", "-j", ",".join(job_ids), "-o", "%i\t%T"])
    states = {}
    for line in out.splitlines():
        job, _, state = line.partition("\t")
        states[job.strip()] = state.strip()
    return states


def watch_jobs(ctx: CycleContext) -> Iterable[Event]:
    runtime = ctx.runtime
    jobs = [w for w in ctx.workloads if w.kind == "container" and JOB_LABEL in w.labels]
    idle: dict[str, dict[str, Any]] = runtime.memo(IDLE_MEMO, dict)
    if not jobs:
        idle.clear()
        return []
    cfg = slurm_config(runtime)
    try:
        states = job_states(cfg, sorted({w.labels[JOB_LABEL] for w in jobs}))
    except SlurmError as exc:
        ctx.report.errors.append(f"slurm-jobs: Slurm did not answer, no job ended: {exc}")
        return []
    events: list[Event] = []
    utilization = _slot_utilization(runtime)
    for workload in jobs:
        job = workload.labels[JOB_LABEL]
        state = states.get(job)
        gone = state is None or state in FINAL_STATES or state == "PENDING"
        summary = {"Id": workload.id, "State": workload.status, "Labels": workload.labels}
        if workload.status == "running" and not gone:
            events += _idle_check(ctx, cfg, workload, utilization, idle)
            continue
        if gone:
            idle.pop(job, None)
            why = ENDINGS.get(state or "") or (
                None
                if workload.status != "running"
                else ("requeued" if state == "PENDING" else "ended")
            )
            end_container(runtime, summary, why)
    return events


def _slot_utilization(runtime: Runtime) -> dict[str, float | None]:
    found: dict[str, float | None] = {}
    for gpu in runtime.gpu.gpus():
        for slot in gpu.slots:
            value = slot.utilization if slot.utilization is not None else gpu.utilization
            found[slot.uuid] = value
            found[slot.slot_id] = value
    return found


def _idle_check(
    ctx: CycleContext,
    cfg: SlurmConfig,
    workload: Workload,
    utilization: dict[str, float | None],
    idle: dict[str, dict[str, Any]],
) -> list[Event]:
    job = workload.labels[JOB_LABEL]
    readings = [utilization.get(s) for s in workload.gpu_slots]
    after = cfg.idle.cancel_after.seconds()
    quiet = bool(readings) and all(r is not None and r <= cfg.idle.gpu_threshold for r in readings)
    if not quiet or cfg.idle.action == "none" or after is None:
        idle.pop(job, None)
        return []
    seen = idle.setdefault(job, {"since": ctx.now, "warned": False})
    idle_for = (ctx.now - seen["since"]).total_seconds()
    warn_at = max(0.0, after - float(cfg.idle.warn_before))
    user = workload.owner
    if not seen["warned"] and idle_for >= warn_at:
        seen["warned"] = True
        left = format_duration(max(0.0, after - idle_for))
        what = "cancelled" if cfg.idle.action == "cancel" else "reported to the admins"
        _notify(
            ctx.runtime,
            user,
            f"Job {job}: its GPUs are idle",
            f"Your Slurm job {job}'s GPUs have done nothing for {format_duration(idle_for)}. "
            f"It will be {what} in {left} unless they get busy.",
            job,
        )
        return [
            Event(
                "slurm.job.idle_warning",
                user,
                "slurm",
                {"job": job, "idle_seconds": round(idle_for), "cancel_in": left},
            )
        ]
    if seen["warned"] and idle_for >= after and cfg.idle.action == "cancel":
        # the container first, so that its owner is told why (the job's step, signalled by
        # the cancel, then finds nothing left to end)
        idle.pop(job, None)
        summary = {"Id": workload.id, "State": workload.status, "Labels": workload.labels}
        end_container(ctx.runtime, summary, "cancelled: its GPUs were idle")
        try:
            run_slurm(cfg, "scancel", [job])
        except SlurmError as exc:
            ctx.report.errors.append(f"slurm-jobs: could not cancel idle job {job}: {exc}")
        return [
            Event(
                "slurm.job.idle_cancelled",
                user,
                "slurm",
                {"job": job, "idle_seconds": round(idle_for)},
            )
        ]
    return []


def _notify(runtime: Runtime, user: str, subject: str, message: str, job: str) -> None:
    if not slurm_config(runtime).notify:
        return
    try:
        tell_user(
            runtime,
            Notice(user, subject, message, "warning", f"slurm-job-{job}", "slurm.job.idle_warning"),
        )
    except Exception:  # the step goes on for the other jobs
        log.exception("idle notice for job %s failed", job)


STEP = CycleStep(
    name="slurm-jobs",
    run=watch_jobs,
    description="job containers follow their Slurm jobs; idle GPU jobs warned, then cancelled",
    needs=("detect",),
)

__all__ = ["STEP", "dt"]
