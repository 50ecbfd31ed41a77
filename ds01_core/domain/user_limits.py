"""A user's effective limits as the running system sees them, each with where it comes from.

The sources: the configuration file, the user's group (from a directory plugin when one
answers), and the state store's overrides.

Every place that needs a user's limits calls :func:`effective_limits`, so they can never
disagree about where a value comes from.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from typing import TYPE_CHECKING

from ds01_core.domain.limits import resolve_limits
from ds01_core.domain.model import EffectiveLimits
from ds01_core.domain.state.overrides import active_overrides
from ds01_core.domain.users import normalize_username

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)


def effective_limits(
    runtime: Runtime,
    user: str,
    *,
    db: sqlite3.Connection | None = None,
    now: dt.datetime | None = None,
) -> EffectiveLimits:
    """Resolve ``user``'s limits now; ``db`` is the caller's open transaction, if any.

    A state store that cannot be read (a user's own CLI: it is root-only) means no stored
    overrides; a directory plugin that fails means the file's membership applies.
    """
    name = normalize_username(user)
    now = now or runtime.now()
    try:
        extra = active_overrides(db if db is not None else runtime.state.db, now)
    except (sqlite3.Error, OSError) as exc:
        log.debug("state overrides unavailable: %s", exc)
        extra = []
    try:
        group = runtime.hooks.user_group(runtime, name)
    except Exception as exc:
        log.error("user_group plugin failed for %s: %s", name, exc)
        group = None
    if group is not None and group not in runtime.config.limits.groups:
        log.warning(
            "a plugin put %s in group %r, which the configuration does not define", name, group
        )
        group = None
    return resolve_limits(runtime.config, name, now=now, group=group, extra_overrides=extra)
