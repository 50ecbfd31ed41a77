"""``ds01 admin cgroups check``: does every user's cgroup on disk match the configuration?"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ds01_cgroups.enforcer import UserCheck, enforcer_for
from ds01_core.api import (
    Workload,
    current_workloads,
    effective_limits,
    normalize_username,
    users_to_enforce,
)

if TYPE_CHECKING:
    from ds01_core.api import Runtime

log = logging.getLogger(__name__)


def check_users(runtime: Runtime, only: Iterable[str] = ()) -> list[UserCheck]:
    """One report per user with limits or workloads (or per user in ``only``).

    Read-only: nothing is written, and a user's cgroup that does not exist yet is a mismatch
    only when the user has aggregate limits.
    """
    errors: list[str] = []
    try:
        workloads: list[Workload] = current_workloads(runtime, errors)
    except Exception as exc:  # no engine: still check the configured users' cgroups
        log.warning("cannot list workloads: %s", exc)
        workloads = []
    for error in errors:
        log.warning("%s", error)
    wanted = [normalize_username(u) for u in only]
    users = wanted or users_to_enforce(runtime, workloads)
    enforcer = enforcer_for(runtime)
    reports = []
    for user in users:
        limits = effective_limits(runtime, user)
        own = [w for w in workloads if w.owner == user]
        reports.append(enforcer.check(user, limits, limits.group, own))
    return reports
