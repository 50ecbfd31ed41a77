"""ds01-diskquota: per-user disk limits on the filesystems an admin lists.

Where a filesystem has user quotas, the ``disk_quota`` limit is set with ``setquota`` (hard
limit; the soft limit, 90%, warns first) and usage is read with ``repquota``. Where it has
none, usage is measured by walking it every ``scan_interval``. Either way, a user over the limit
is told and, with ``over_limit: refuse``, gets no new container until they free space.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_core.api import (
    ContainerSpec,
    EffectiveLimits,
    Event,
    QuotaLine,
    Refusal,
    Workload,
    effective_limits,
    format_bytes,
    hookimpl,
    username_for_uid,
)
from ds01_diskquota import fsquota, store
from ds01_diskquota.config import DiskQuotaConfig, Filesystem
from ds01_diskquota.measure import usage_by_uid

if TYPE_CHECKING:
    from ds01_core.api import Runtime

log = logging.getLogger(__name__)
PLUGIN = "diskquota"


@hookimpl
def plugin_config_sections() -> Mapping[str, type]:
    return {PLUGIN: DiskQuotaConfig}


def config_of(runtime: Runtime) -> DiskQuotaConfig:
    return runtime.plugin_config(PLUGIN) or DiskQuotaConfig()


def uses_quotas(runtime: Runtime, fs: Filesystem) -> bool:
    """Whether ``fs`` is handled with filesystem quotas (decided once per runtime)."""
    modes: dict[str, bool] = runtime.memo("diskquota-modes", dict)
    if fs.path not in modes:
        modes[fs.path] = fs.mode == "quota" or (fs.mode == "auto" and fsquota.quotas_on(fs.path))
    return modes[fs.path]


def refresh(runtime: Runtime, users: Sequence[str], *, force: bool = False) -> list[Event]:
    """Set quotas that changed and re-read usage where the scan interval has passed."""
    cfg = config_of(runtime)
    now = runtime.now()
    events: list[Event] = []
    for fs in cfg.filesystems:
        with runtime.state.transaction() as db:
            last = store.last_scan(db, fs.path)
        due = force or last is None or (now - last).total_seconds() >= cfg.scan_interval
        if uses_quotas(runtime, fs):
            for user in users:
                limit = effective_limits(runtime, user).get("disk_quota")
                with runtime.state.transaction() as db:
                    if limit is None or store.applied(db, fs.path, user) == limit:
                        continue
                    fsquota.set_quota(user, fs.path, int(limit))
                    store.record_applied(db, fs.path, user, int(limit))
                events.append(
                    Event("disk.quota_set", user, PLUGIN, {"path": fs.path, "limit": int(limit)})
                )
            if due:
                usage = fsquota.usage(fs.path)
        elif due:
            usage = {
                username_for_uid(uid) or f"uid:{uid}": used
                for uid, used in usage_by_uid(fs.path).items()
            }
        else:
            continue
        if due:
            with runtime.state.transaction() as db:
                store.save_usage(db, fs.path, usage, now)
    return events


def over_limit(runtime: Runtime, user: str, limits: EffectiveLimits) -> list[QuotaLine]:
    """The user's usage per configured filesystem against ``disk_quota``."""
    limit = limits.get("disk_quota")
    with runtime.state.transaction(immediate=False) as db:
        usage = store.usage_of(db, user)
    lines = []
    for fs in config_of(runtime).filesystems:
        used, measured = usage.get(fs.path, (0, None))
        how = "filesystem quota" if uses_quotas(runtime, fs) else "measured"
        when = f", {measured:%Y-%m-%d %H:%M}Z" if measured else ", not measured yet"
        lines.append(
            QuotaLine(
                f"disk {fs.path}",
                used,
                limit,
                "bytes",
                how + when,
                over=limit is not None and used > limit,
            )
        )
    return lines


@hookimpl
def reconcile(runtime: Runtime, workloads: Sequence[Workload]) -> list[Event]:
    if not config_of(runtime).filesystems:
        return []
    users = sorted(
        {w.owner for w in workloads if w.owner and w.owner != "unknown"}
        | set(runtime.config.limits.users)
    )
    try:
        return refresh(runtime, users)
    except OSError as exc:
        log.error("disk quotas: %s", exc)
        return [Event("disk.quota_failed", None, PLUGIN, {"error": str(exc)})]


@hookimpl
def quota_usage(runtime: Runtime, user: str, limits: EffectiveLimits) -> list[QuotaLine]:
    return over_limit(runtime, user, limits)


@hookimpl
def prepare_container(runtime: Runtime, spec: ContainerSpec) -> Refusal | None:
    cfg = config_of(runtime)
    if not cfg.filesystems:
        return None
    over = [
        line
        for line in over_limit(runtime, spec.user, effective_limits(runtime, spec.user))
        if line.over
    ]
    if not over:
        return None
    text = "; ".join(
        f"{line.resource}: {format_bytes(int(line.used or 0))} of "
        f"{format_bytes(int(line.limit or 0))} (disk_quota) used"
        for line in over
    )
    message = f"{text}. Free some space, then try again"
    if cfg.over_limit == "warn":
        log.warning("%s is over a disk quota: %s", spec.user, text)
        return None
    return Refusal(message, PLUGIN)
