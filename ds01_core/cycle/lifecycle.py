"""The lifecycle step of a cycle: idle containers stopped on time, runtimes capped, leftovers
removed — each action warned about first, logged with the numbers that justified it.

Every container is handled, whatever its origin, by the policy
:mod:`ds01_core.domain.policy` resolves: the owner's limits, which an origin's policy can
only make stricter.
Nothing is ever done to a container labelled ``ds01.protected``, and ds01 only ever acts
through Docker (stop, remove): it never kills a process itself.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.cycle.activity import Activity, Counters, activity, gpu_active, sample
from ds01_core.domain.model import Event, Notice, Workload, utc_text
from ds01_core.domain.policy import Policy, high_demand_factor, policy_for
from ds01_core.domain.user_limits import effective_limits

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)

PROTECTED_LABEL = "ds01.protected"


# -- grants: keepalive and exemptions (the state store's grants table) -------------------------


def _iso(moment: dt.datetime) -> str:
    return utc_text(moment)


def add_grant(
    db: sqlite3.Connection,
    kind: str,
    user: str,
    target: str,
    expires: dt.datetime,
    reason: str,
    granted_by: str,
    now: dt.datetime,
) -> int:
    cursor = db.execute(
        "INSERT INTO grants (user, kind, target, expires, reason, granted_by, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (user, kind, target, _iso(expires), reason, granted_by, _iso(now)),
    )
    return int(cursor.lastrowid or 0)


def active_grants(db: sqlite3.Connection, now: dt.datetime) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT * FROM grants WHERE revoked_at IS NULL AND kind IN "
        "('keepalive', 'exempt_idle', 'exempt_runtime') ORDER BY id"
    ).fetchall()
    return [dict(r) for r in rows if dt.datetime.fromisoformat(r["expires"]) > now]


def first_notice(
    db: sqlite3.Connection, target: str, kind: str, threshold: str, now: dt.datetime
) -> bool:
    """Record that a notice was sent; False if it had been already (each is sent once)."""
    return bool(
        db.execute(
            "INSERT OR IGNORE INTO notices_sent (container, kind, threshold, sent_at) "
            "VALUES (?, ?, ?, ?)",
            (target, kind, threshold, _iso(now)),
        ).rowcount
    )


def revoke_grants(db: sqlite3.Connection, ids: Sequence[int], now: dt.datetime) -> int:
    count = 0
    for grant_id in ids:
        count += db.execute(
            "UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (_iso(now), grant_id),
        ).rowcount
    return count


def _covers(grant: dict[str, Any], workload: Workload) -> bool:
    target = grant["target"] or ""
    return target in (f"container:{workload.id}", f"user:{workload.owner}")


# -- idle streaks --------------------------------------------------------------------------


def signals(
    workload: Workload, act: Activity | None, policy: Policy, gpu: dict
) -> dict[str, bool | None]:
    """Each available signal: True = active, False = below its threshold, None = unknown."""
    result: dict[str, bool | None] = {"gpu": None, "cpu": None, "network": None, "processes": None}
    if act is not None:
        if act.cpu_cores is not None:
            result["cpu"] = act.cpu_cores >= policy.cpu_threshold
        if act.net_bytes_per_s is not None:
            result["network"] = act.net_bytes_per_s >= policy.network_threshold
        if act.new_processes is not None:
            result["processes"] = act.new_processes > 0
    pids = gpu["pids"].get(workload.id)
    result["gpu"] = gpu_active(
        workload.gpu_slots, gpu["slots"], gpu["processes"], pids, policy.gpu_threshold
    )
    return result


def update_streak(
    db: sqlite3.Connection,
    workload: Workload,
    sig: dict[str, bool | None],
    now: dt.datetime,
    sampled_seconds: float,
) -> tuple[int, dt.datetime | None]:
    """Record this cycle's verdict; (consecutive idle cycles, idle since)."""
    row = db.execute("SELECT * FROM idle_streaks WHERE container = ?", (workload.id,)).fetchone()
    active = [name for name, value in sig.items() if value]
    known = [name for name, value in sig.items() if value is not None]
    last = row["last_active_signal"] if row else None
    if active or not known:  # activity, or nothing to judge by: not idle
        cycles, since = 0, None
        last = active[0] if active else last
    else:
        cycles = (row["cycles"] if row else 0) + 1
        previous = (
            dt.datetime.fromisoformat(row["idle_since"]) if row and row["idle_since"] else None
        )
        since = previous or now - dt.timedelta(seconds=sampled_seconds)
    db.execute(
        "INSERT OR REPLACE INTO idle_streaks (container, idle_since, cycles, last_active_signal, "
        "updated_at) VALUES (?, ?, ?, ?, ?)",
        (workload.id, _iso(since) if since else None, cycles, last, _iso(now)),
    )
    if active:
        db.execute("DELETE FROM notices_sent WHERE container = ? AND kind = 'idle'", (workload.id,))
    return cycles, since


# -- the step ------------------------------------------------------------------------------


class LifecycleStep:
    """One run of the lifecycle over the cycle's inventory."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.now = runtime.now()
        self.samples: dict[str, Counters] = runtime.memo("lifecycle-samples", dict)
        self.events: list[Event] = []
        self.stops: list[tuple[Workload, Policy, str, float, float, dict[str, bool | None]]] = []

    def run(self, workloads: Sequence[Workload]) -> list[Event]:
        containers = [w for w in workloads if w.kind == "container"]
        if not containers:
            return []
        factor = high_demand_factor(self.runtime)
        gpu = self._gpu_view(workloads)
        with self.runtime.state.transaction(immediate=False) as db:
            grants = active_grants(db, self.now)
        for workload in containers:
            if workload.labels.get(PROTECTED_LABEL, "").lower() in ("1", "true", "yes"):
                continue
            try:
                self._one(workload, policy_for(self.runtime, workload, factor), grants, gpu)
            except Exception as exc:  # one container's failure must not stop the others
                log.exception("lifecycle failed for %s", workload.name)
                self.events.append(
                    Event(
                        "lifecycle.error",
                        workload.owner,
                        "lifecycle",
                        {"container": workload.name, "error": str(exc)},
                    )
                )
        self._stop_all()
        seen = {w.id for w in containers}
        for gone in set(self.samples) - seen:
            del self.samples[gone]
        for user in sorted({w.owner for w in containers if w.owner and w.owner != "unknown"}):
            self._quota_warnings(user, [w for w in containers if w.owner == user])
        return self.events

    def _quota_warnings(self, user: str, mine: Sequence[Workload]) -> None:
        """Tell a user once when their GPU or memory use passes ``quota_warn_at`` of the quota;
        the warning re-arms when usage drops below it."""
        from ds01_core.cycle.activity import memory_bytes
        from ds01_core.domain.state.allocations import Allocations

        share = self.runtime.config.lifecycle.quota_warn_at
        limits = effective_limits(self.runtime, user)
        gpu = sum(a.weight for a in Allocations(self.runtime).live(user=user))
        memory = sum(memory_bytes(w.pids[0]) or 0 for w in mine if w.status == "running" and w.pids)
        for resource, used, limit, unit in (
            ("gpu", gpu, limits.get("max_gpu_equivalents"), "GPU-equivalents"),
            ("memory", memory, limits.get("memory_max"), "bytes"),
        ):
            if not limit:
                continue
            key = f"user:{user}"
            over = used >= share * limit
            with self.runtime.state.transaction() as db:
                if not over:
                    db.execute(
                        "DELETE FROM notices_sent WHERE container = ? AND kind = 'quota' "
                        "AND threshold = ?",
                        (key, resource),
                    )
                    continue
                new = first_notice(db, key, "quota", resource, self.now)
            if new:
                self._tell_quota(user, resource, used, float(limit), unit)

    def _tell_quota(self, user: str, resource: str, used: float, limit: float, unit: str) -> None:
        from ds01_core.cycle.pipeline import tell_user
        from ds01_core.domain.units import format_bytes

        def show(x: float) -> str:
            return format_bytes(int(x)) if unit == "bytes" else f"{x:.2f} {unit}"

        self.events.append(
            Event(
                "lifecycle.quota_warning",
                user,
                "lifecycle",
                {"resource": resource, "used": used, "limit": limit},
            )
        )
        tell_user(
            self.runtime,
            Notice(
                user,
                f"{resource} quota nearly used",
                f"You use {show(used)} of your {show(limit)} {resource} quota "
                f"({used / limit:.0%}). New requests beyond it will be refused.",
                "warning",
                None,
                "lifecycle.quota_warning",
            ),
        )

    def _gpu_view(self, workloads: Sequence[Workload]) -> dict[str, Any]:
        try:
            slots = {s.uuid: s for s in self.runtime.gpu.slots()}
            processes = self.runtime.gpu.processes()
        except Exception as exc:
            log.error("lifecycle: GPU signals unavailable: %s", exc)
            slots, processes = {}, []
        # MIG: utilisation from GPM where the GPU has it (once per cycle, so the figure covers
        # the time since the last cycle); elsewhere the slot keeps None and the container's
        # processes on it decide
        gpm = getattr(self.runtime.gpu, "mig_utilization", None)
        if gpm is not None:
            try:
                for uuid, value in gpm().items():
                    if value is not None and uuid in slots:
                        slots[uuid] = attrs.evolve(slots[uuid], utilization=value)
            except Exception as exc:
                log.error("lifecycle: GPM unavailable: %s", exc)
        pids = {w.id: frozenset(w.pids) for w in workloads if w.kind == "container"}
        return {"slots": slots, "processes": processes, "pids": pids}

    def _age(self, moment: dt.datetime | None) -> float | None:
        return None if moment is None else (self.now - moment).total_seconds()

    def _one(self, w: Workload, policy: Policy, grants: list[dict], gpu: dict) -> None:
        exempt = {g["kind"] for g in grants if _covers(g, w)}
        if w.status == "created":
            self._remove_if_older(
                w, w.created_at, policy.created_timeout, "lifecycle.created_removed"
            )
            return
        if w.status in ("exited", "dead"):
            self._remove_if_older(
                w, w.finished_at, policy.hold_after_stop, "lifecycle.stopped_removed"
            )
            return
        if w.status != "running" or not w.pids:
            return
        counters = sample(w.pids[0])
        previous = self.samples.get(w.id)
        self.samples[w.id] = counters
        act = activity(previous, counters) if previous is not None else None
        sig = signals(w, act, policy, gpu)
        with self.runtime.state.transaction() as db:
            cycles, since = update_streak(db, w, sig, self.now, act.seconds if act else 0.0)
        w.idle_seconds = self._age(since) if since else 0.0
        w.last_active_signal = next((k for k, v in sig.items() if v), None)

        running = self._age(w.started_at)
        if (
            policy.max_runtime is not None
            and running is not None
            and "exempt_runtime" not in exempt
        ):
            if running >= policy.max_runtime:
                self._stop(w, policy, "lifecycle.runtime_stop", running, policy.max_runtime, sig)
                return
            self._warn(w, "runtime", running, policy.max_runtime, policy)

        window = self.runtime.config.lifecycle.idle_window
        in_grace = running is not None and running < float(
            self.runtime.config.lifecycle.start_grace
        )
        if (
            policy.idle_timeout is None
            or cycles < window
            or in_grace
            or exempt & {"exempt_idle", "keepalive"}
        ):
            return
        timeout = policy.idle_timeout * policy.demand_factor
        idle = w.idle_seconds or 0.0
        decision = self.runtime.hooks.on_idle(
            self.runtime, w, idle, {**policy.as_mapping(), "idle_timeout": timeout}
        )
        if decision == "stop":
            self._stop(w, policy, "lifecycle.idle_stop", idle, timeout, sig)
        elif decision == "warn":
            self._warn(w, "idle", idle, timeout, policy)

    # -- actions ------------------------------------------------------------------------------

    def _warn(self, w: Workload, kind: str, value: float, limit: float, policy: Policy) -> None:
        from ds01_core.cycle.pipeline import tell_user

        passed = [f for f in policy.warn_at if value >= f * limit]
        if not passed:
            return
        threshold = f"{max(passed):g}"
        with self.runtime.state.transaction() as db:
            new = first_notice(db, w.id, kind, threshold, self.now)
        if not new:
            return
        left = max(0.0, limit - value)
        what = "idle" if kind == "idle" else "running"
        message = (
            f"Your container {w.name} has been {what} for {_human(value)}; it will be stopped "
            f"in {_human(left)} (limit {_human(limit)})."
            + (
                " Use it, or run `ds01 keepalive " + w.name + " --for 2h`."
                if kind == "idle"
                else ""
            )
        )
        self.events.append(
            Event(
                f"lifecycle.{kind}_warning",
                w.owner,
                "lifecycle",
                {
                    "container": w.name,
                    "container_id": w.id,
                    "seconds": round(value),
                    "limit": round(limit),
                    "threshold": threshold,
                },
            )
        )
        tell_user(
            self.runtime,
            Notice(
                w.owner,
                f"{w.name}: {what} warning",
                message,
                "warning",
                w.name,
                f"lifecycle.{kind}_warning",
            ),
        )

    def _stop(
        self,
        w: Workload,
        policy: Policy,
        event_type: str,
        value: float,
        limit: float,
        sig: dict[str, bool | None],
    ) -> None:
        """Queue a stop: they run together at the end of the step, so one container's grace
        period never delays another's stop."""
        self.stops.append((w, policy, event_type, value, limit, sig))

    def _stop_all(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from ds01_core.cycle.pipeline import tell_user

        if not self.stops:
            return
        docker = self.runtime.docker

        def stop(item: tuple) -> Exception | None:
            workload, policy = item[0], item[1]
            try:
                docker.stop(workload.id, timeout=int(policy.stop_grace))
            except Exception as exc:
                return exc
            return None

        with ThreadPoolExecutor(max_workers=min(16, len(self.stops))) as pool:
            outcomes = list(pool.map(stop, self.stops))
        for item, error in zip(self.stops, outcomes, strict=True):
            w, policy, event_type, value, limit, sig = item
            if error is not None:
                log.error("lifecycle: could not stop %s: %s", w.name, error)
                self.events.append(
                    Event(
                        "lifecycle.error",
                        w.owner,
                        "lifecycle",
                        {"container": w.name, "error": str(error)},
                    )
                )
                continue
            details = {
                "container": w.name,
                "container_id": w.id,
                "origin": w.origin,
                "seconds": round(value),
                "limit": round(limit),
                "signals": sig,
                "demand_factor": policy.demand_factor,
            }
            self.events.append(Event(event_type, w.owner, "lifecycle", details))
            why = "idle" if event_type == "lifecycle.idle_stop" else "running"
            tell_user(
                self.runtime,
                Notice(
                    w.owner,
                    f"{w.name} stopped",
                    f"Your container {w.name} was stopped: {why} for {_human(value)} (limit "
                    f"{_human(limit)}). Start it again with `ds01 container start {w.name}`.",
                    "action",
                    w.name,
                    event_type,
                ),
            )
        self.stops.clear()

    def _remove_if_older(
        self, w: Workload, since: dt.datetime | None, limit: float | None, event_type: str
    ) -> None:
        age = self._age(since)
        if limit is not None and age is not None and age >= limit:
            self._remove(w, event_type, age, limit)

    def _remove(self, w: Workload, event_type: str, age: float, limit: float) -> None:
        self.runtime.docker.remove(w.id, force=False)
        self.events.append(
            Event(
                event_type,
                w.owner,
                "lifecycle",
                {
                    "container": w.name,
                    "container_id": w.id,
                    "origin": w.origin,
                    "seconds": round(age),
                    "limit": round(limit),
                },
            )
        )


def _human(seconds: float) -> str:
    from ds01_core.domain.units import format_duration

    return format_duration(seconds)
