"""Limit resolution: built-in → defaults → group → user → unexpired overrides.

Each effective value carries where it came from, so ``ds01 config show --user`` can tell an
admin (and a puzzled user) why a limit is what it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import attrs

from ds01_core.domain.config import BUILTIN_LIMITS, LIMIT_KEYS, Config, LimitSet
from ds01_core.domain.model import EffectiveLimits, LimitValue, utc_text
from ds01_core.domain.users import normalize_username


@attrs.frozen
class OverrideRecord:
    """An override from any source (the config file or ``ds01 admin override``)."""

    user: str
    values: LimitSet
    expires: dt.datetime
    reason: str
    approved_by: str
    origin: str = "config"


def config_overrides(config: Config) -> list[OverrideRecord]:
    return [
        OverrideRecord(o.user, o.values, o.expires, o.reason, o.approved_by, "config")
        for o in config.limits.overrides
    ]


def resolve_limits(
    config: Config,
    user: str,
    *,
    now: dt.datetime | None = None,
    group: str | None = None,
    extra_overrides: Iterable[OverrideRecord] = (),
) -> EffectiveLimits:
    """The user's effective limits at ``now``.

    :param group: the user's group when known from elsewhere (a directory plugin); by default
        the configuration's own membership.
    :param extra_overrides: overrides kept outside the file (the state store); applied after
        the file's, in the order given, and only while unexpired.
    """
    now = now or dt.datetime.now(dt.UTC)
    name = normalize_username(user)
    group = group if group is not None else config.group_of(name)
    values: dict[str, LimitValue] = {}

    def apply(layer: LimitSet | None, source: str, expires: dt.datetime | None = None) -> None:
        if layer is None:
            return
        for key, value in layer.items_set():
            values[key] = LimitValue(value, source, expires)

    apply(BUILTIN_LIMITS, "built-in")
    apply(config.limits.defaults, "defaults")
    if group is not None:
        apply(config.limits.groups.get(group), f"group {group}")
    apply(config.limits.users.get(name), f"user {name}")
    for override in [*config_overrides(config), *extra_overrides]:
        if normalize_username(override.user) != name or override.expires <= now:
            continue
        source = (
            f"override until {utc_text(override.expires)} ({override.reason}; "
            f"approved by {override.approved_by})"
        )
        apply(override.values, source, override.expires)
    for key in LIMIT_KEYS:
        values.setdefault(key, LimitValue(None, "not set (no limit)"))
    return EffectiveLimits(user=name, group=group, values=values)
