"""Built-in: bare-metal GPU access held to its grants (plugin name ``bare-metal``).

It implements one hook, ``reconcile`` (called every cycle after detection, and once when the
daemon starts), because both of its jobs bring reality in line with the record:

1. Grants whose time is up are ended (:func:`ds01_core.services.bare_metal_grants.expire`): the user leaves
   ``bare_metal.group`` and a ``bare_metal.expired`` event is returned.
2. Every host GPU process (a workload of kind ``process`` from the detectors) whose owner is
   not root, not in ``gateway.admin_group`` and holds no active grant is reported once, as
   ``bare_metal.unauthorised`` (user, pid, command, GPUs), and its owner is told through the
   ``notify`` hook. It is remembered by pid *and* start time in the state store's
   ``notices_sent`` table (a ``process`` subject, :mod:`ds01_core.domain.state.notices_sent`),
   so neither a later cycle nor a daemon restart repeats the report or restarts the grace
   period. With ``bare_metal.action: kill``, once it has been seen for
   ``bare_metal.grace``, that process alone gets SIGTERM, then SIGKILL if it is still there
   :data:`KILL_WAIT` seconds later (``bare_metal.killed``). ``notify`` never kills.

Why so careful about killing: ds01 never acts on a process it cannot attribute. Right before
each signal the pid's start time, real uid and cgroup are read again from ``/proc``, and the
signal is sent through a pidfd opened before that check, so a pid reused in between is never
hit. A process inside a container (kind ``container`` from detection, or a cgroup naming a
container runtime) is never signalled: containers are the lifecycle's business, through Docker.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs

from ds01_core.cycle.detection.procfs import PROC, read_proc
from ds01_core.cycle.notices import tell_user
from ds01_core.domain.model import Event, Notice, Workload, utc_text
from ds01_core.domain.state.notices_sent import (
    Subject,
    first_notice,
    forget,
    sent_at,
    subjects_with,
)
from ds01_core.domain.units import format_duration
from ds01_core.domain.users import unix_groups_of, username_for_uid
from ds01_core.framework.hookspecs import hookimpl
from ds01_core.services.bare_metal_grants import expire, granted_users

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)

#: the flag a host GPU process gets in this cycle's inventory when its owner holds no grant
NO_GRANT = "no_grant"

SOURCE = "bare-metal"
#: the ``notices_sent`` kind and threshold under which unauthorised processes are remembered
SEEN_KIND = "bare_metal"
SEEN_THRESHOLD = "unauthorised"
#: seconds between SIGTERM and SIGKILL
KILL_WAIT = 5.0
#: a cgroup path naming one of these belongs to a container, whatever detection said
CONTAINER_MARKERS = ("docker", "containerd", "kubepods", "libpod")


@hookimpl
def reconcile(runtime: Runtime, workloads: Sequence[Workload]) -> list[Event]:
    # an exception here would cost every other plugin's reconcile results: report it instead
    events: list[Event] = []
    for step in (expire, lambda rt: watch(rt, workloads)):
        try:
            events += step(runtime)
        except Exception as exc:
            log.exception("bare metal: reconcile step failed")
            events.append(Event("bare_metal.error", None, SOURCE, {"error": str(exc)}))
    return events


# -- /proc ------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of ``pid``, or None when it is gone."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    if len(fields) < 20:
        return None
    return fields[0], int(fields[19])


def _alive(pid: int, start_ticks: int) -> bool:
    """Still running as the same process (a zombie has already ended)."""
    stat = _stat(pid)
    return stat is not None and stat[1] == start_ticks and stat[0] not in ("Z", "X")


def _not_ours(pid: int, start_ticks: int, uid: int) -> str | None:
    """Why ``pid`` must not be signalled now, or None when it is still that host process."""
    info, stat = read_proc(pid), _stat(pid)
    if info is None or stat is None:
        return "gone"
    if info.start_ticks != start_ticks or info.uid != uid:
        return "pid reused by another process"
    if stat[0] in ("Z", "X"):
        return "gone"
    try:
        with open(f"{PROC}/{pid}/cgroup", encoding="utf-8", errors="replace") as f:
            cgroup = f.read()
    except OSError:
        return "gone"
    if info.container_id is not None or any(m in cgroup for m in CONTAINER_MARKERS):
        return "runs in a container"
    return None


def _signal(pid: int, start_ticks: int, uid: int, sig: signal.Signals) -> str | None:
    """Send ``sig`` if ``pid`` is still the process we mean; None if sent, else why not."""
    fd: int | None = None
    with contextlib.suppress(AttributeError, OSError):  # no pidfds: plain kill after the check
        fd = os.pidfd_open(pid)
    try:
        why = _not_ours(pid, start_ticks, uid)  # checked while the pidfd pins the process
        if why is not None:
            return why
        if fd is not None:
            signal.pidfd_send_signal(fd, sig)
        else:
            os.kill(pid, sig)
        return None
    except ProcessLookupError:
        return "gone"
    finally:
        if fd is not None:
            os.close(fd)


@attrs.frozen
class ProcessRef:
    """One host process, pinned by its start time and real uid."""

    pid: int
    start_ticks: int
    uid: int


def stop_processes(refs: Sequence[ProcessRef], *, wait: float = KILL_WAIT) -> list[str]:
    """SIGTERM each process, SIGKILL those still alive after ``wait`` seconds (waiting for all at
    once, so one slow process never delays the others).

    :return: per process, ``"SIGTERM"`` or ``"SIGKILL"`` (what ended it), or why it was not
        signalled (``"gone"``, ``"pid reused by another process"``, ``"runs in a container"``).
    """
    outcomes = [_signal(r.pid, r.start_ticks, r.uid, signal.SIGTERM) or "SIGTERM" for r in refs]
    pending = [i for i, o in enumerate(outcomes) if o == "SIGTERM"]
    deadline = time.monotonic() + wait
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [i for i in pending if _alive(refs[i].pid, refs[i].start_ticks)]
    for i in pending:
        r = refs[i]
        if _alive(r.pid, r.start_ticks):
            why = _signal(r.pid, r.start_ticks, r.uid, signal.SIGKILL)
            outcomes[i] = "SIGKILL" if why is None else outcomes[i]
    return outcomes


# -- the watch ----------------------------------------------------------------------------------


@attrs.frozen
class _Sighting:
    workload: Workload
    ref: ProcessRef
    first_seen: dt.datetime
    gpus: list[str]


def watch(runtime: Runtime, workloads: Sequence[Workload]) -> list[Event]:
    """Report (and in ``kill`` mode, stop after the grace period) host GPU processes of users
    without bare-metal access; forget processes that have ended."""
    config = runtime.config.bare_metal
    now = runtime.now()
    events: list[Event] = []
    exempt = _exemptions(runtime, now)
    slot_name = _slot_names(runtime)
    due: list[_Sighting] = []
    for workload in workloads:
        if workload.kind != "process":
            continue
        for pid in workload.pids:
            info = read_proc(pid)
            if info is None or info.uid == 0 or info.container_id is not None:
                continue
            if (username_for_uid(info.uid) or f"uid:{info.uid}") != workload.owner:
                continue  # the pid is no longer the process detection saw
            if exempt(workload.owner):
                continue
            if NO_GRANT not in workload.flags:  # for those who publish it (the exporter)
                workload.flags.append(NO_GRANT)
            subject = Subject.process(pid, info.start_ticks)
            with runtime.state.transaction() as db:
                new = first_notice(db, subject, SEEN_KIND, SEEN_THRESHOLD, now)
                first_seen = sent_at(db, subject, SEEN_KIND, SEEN_THRESHOLD) or now
            sighting = _Sighting(
                workload,
                ProcessRef(pid, info.start_ticks, info.uid),
                first_seen,
                [slot_name(u) for u in workload.gpu_slots],
            )
            if new:
                events.append(_reported(runtime, sighting, info.cmdline))
            seen = (now - sighting.first_seen).total_seconds()
            if config.action == "kill" and seen >= float(config.grace):
                due.append(sighting)
    if due:
        events += _stop(runtime, due, now)
    _forget_ended(runtime)
    return events


def _exemptions(runtime: Runtime, now: dt.datetime) -> Callable[[str], bool]:
    """Whether a user may use GPUs on the host: root, admins, and holders of a grant."""
    admin_group = runtime.config.gateway.admin_group
    granted: set[str] | None = None
    cache: dict[str, bool] = {}

    def exempt(user: str) -> bool:
        nonlocal granted
        if user not in cache:
            if granted is None:
                granted = granted_users(runtime, now=now)
            cache[user] = user == "root" or user in granted or admin_group in unix_groups_of(user)
        return cache[user]

    return exempt


def _slot_names(runtime: Runtime) -> Callable[[str], str]:
    """Slot UUID → its short id (``3``, ``3.2``), looked up once, only if needed."""
    names: dict[str, str] | None = None

    def name(uuid: str) -> str:
        nonlocal names
        if names is None:
            try:
                names = {s.uuid: s.slot_id for s in runtime.gpu.slots()}
            except Exception as exc:
                log.warning("bare metal: GPU slots unavailable: %s", exc)
                names = {}
        return names.get(uuid, uuid)

    return name


def _reported(runtime: Runtime, s: _Sighting, command: str) -> Event:
    config = runtime.config.bare_metal
    user, pid = s.workload.owner, s.ref.pid
    gpus = ", ".join(s.gpus) or "?"
    message = (
        f"Your process {pid} ({command or s.workload.name}) uses GPU {gpus} directly on the host, "
        "without bare-metal GPU access. Run GPU work in a container through ds01 (`ds01 "
        "container …`, or docker, which goes through the ds01 gateway), or ask an admin for "
        "access."
    )
    if config.action == "kill":
        message += f" The process will be stopped in {format_duration(float(config.grace))}."
    tell_user(
        runtime,
        Notice(
            user,
            f"GPU process {pid} outside a container",
            message,
            "action" if config.action == "kill" else "warning",
            None,
            "bare_metal.unauthorised",
        ),
    )
    return Event(
        "bare_metal.unauthorised",
        user,
        SOURCE,
        {
            "pid": pid,
            "command": command or s.workload.name,
            "gpu": s.gpus,
            "action": config.action,
            "first_seen": utc_text(s.first_seen),
        },
    )


def _stop(runtime: Runtime, due: Sequence[_Sighting], now: dt.datetime) -> list[Event]:
    events = []
    outcomes = stop_processes([s.ref for s in due])
    for s, outcome in zip(due, outcomes, strict=True):
        user, pid = s.workload.owner, s.ref.pid
        if outcome not in ("SIGTERM", "SIGKILL"):
            if outcome != "gone":
                log.warning("bare metal: not stopping pid %s of %s: %s", pid, user, outcome)
            continue
        events.append(
            Event(
                "bare_metal.killed",
                user,
                SOURCE,
                {
                    "pid": pid,
                    "command": s.workload.cmdline or s.workload.name,
                    "gpu": s.gpus,
                    "signal": outcome,
                    "seen_seconds": round((now - s.first_seen).total_seconds()),
                    "grace": float(runtime.config.bare_metal.grace),
                },
            )
        )
        tell_user(
            runtime,
            Notice(
                user,
                f"GPU process {pid} stopped",
                f"Your process {pid} ({s.workload.cmdline or s.workload.name}) used GPU "
                f"{', '.join(s.gpus) or '?'} outside a container without bare-metal access and "
                "was stopped. Run GPU work in a container through ds01, or ask an admin for "
                "access.",
                "action",
                None,
                "bare_metal.killed",
            ),
        )
    return events


def _forget_ended(runtime: Runtime) -> None:
    """Drop what is remembered about processes that have ended (a pid and a start time never
    come back together, so nothing is lost)."""
    with runtime.state.transaction() as db:
        for subject in subjects_with(db, "process", SEEN_KIND):
            try:
                ended = not _alive(*subject.pid_and_start())
            except ValueError:
                ended = True
            if ended:
                forget(db, subject, SEEN_KIND)
