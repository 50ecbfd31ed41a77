"""Whole-file checks: rules that span fields, run after every value has been read.

Each check is a small function taking the structured :class:`~.schema.Config` and returning
the problems it found; :func:`validate` runs them all, so every problem of a file is reported
at once. Checks of single values (a finite float, an absolute path) live in :mod:`.checks`,
applied by the converter to every field of their type.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ds01_core.domain.config.checks import limit_problem
from ds01_core.domain.config.errors import ConfigProblem, join_path
from ds01_core.domain.config.schema import (
    LIMIT_KEYS,
    ORIGINS,
    Config,
    LifecycleConfig,
    LimitSet,
    Override,
)
from ds01_core.domain.model import utc_text
from ds01_core.domain.units import TimeLimit
from ds01_core.domain.users import normalize_username

_POSITIVE_KEYS = tuple(k for k in LIMIT_KEYS if k != "allow_full_gpu")

Problems = list[ConfigProblem]


def _not_positive(value: Any) -> str:
    """The refusal of a zero or negative time limit, saying how to write what was meant."""
    return (
        f"must be greater than 0, got {value} (write 'never' for no limit, or leave the key "
        "out to keep the value from the level below)"
    )


def check_limit_set(limits: LimitSet, path: str) -> Problems:
    """Every limit set at one level is greater than 0 and within what the kernel takes."""
    problems = []
    for key in _POSITIVE_KEYS:
        value = getattr(limits, key)
        if isinstance(value, TimeLimit):  # never (infinity) is allowed; 0 or less is not
            if value <= 0:
                problems.append(ConfigProblem(join_path(path, key), _not_positive(value)))
            continue
        problem = limit_problem(key, value)
        if problem is not None:
            problems.append(ConfigProblem(join_path(path, key), problem))
    return problems


def check_limit_levels(config: Config) -> Problems:
    """The defaults, each group's and each user's limits (overrides: :func:`check_overrides`)."""
    limits = config.limits
    problems = check_limit_set(limits.defaults, "limits.defaults")
    for name, group in limits.groups.items():
        problems += check_limit_set(group, f"limits.groups.{name}")
    for name, user in limits.users.items():
        problems += check_limit_set(user, f"limits.users.{name}")
    return problems


def _first_groups(config: Config) -> tuple[dict[str, str], Problems]:
    """Each listed member's group (the first that lists them), and every second listing."""
    seen_in: dict[str, str] = {}
    problems = []
    for name, group in config.limits.groups.items():
        for index, member in enumerate(group.members):
            member_norm = normalize_username(member)
            if member_norm in seen_in and seen_in[member_norm] != name:
                problems.append(
                    ConfigProblem(
                        f"limits.groups.{name}.members[{index}]",
                        f"user {member_norm!r} is already a member of group "
                        f"{seen_in[member_norm]!r}; a user belongs to one group",
                    )
                )
            seen_in.setdefault(member_norm, name)
    return seen_in, problems


def check_group_membership(config: Config) -> Problems:
    """A user belongs to one group, whether placed by ``members`` or by ``users.<name>.group``."""
    limits = config.limits
    seen_in, problems = _first_groups(config)
    for name, user in limits.users.items():
        if user.group is None:
            continue
        listed_in = seen_in.get(normalize_username(name))
        if user.group not in limits.groups:
            known = ", ".join(sorted(limits.groups)) or "none defined"
            problems.append(
                ConfigProblem(
                    f"limits.users.{name}.group",
                    f"unknown group {user.group!r} (groups: {known})",
                )
            )
        elif listed_in is not None and listed_in != user.group:
            problems.append(
                ConfigProblem(
                    f"limits.users.{name}.group",
                    f"user {name!r} is listed as a member of group "
                    f"{listed_in!r} but placed in {user.group!r}; "
                    "a user belongs to one group",
                )
            )
    return problems


def _override_problems(override: Override, path: str, now: dt.datetime) -> Problems:
    problems = check_limit_set(override.values, f"{path}.values")
    if not list(override.values.items_set()):
        problems.append(ConfigProblem(f"{path}.values", "sets no limit"))
    if override.expires <= now:
        problems.append(
            ConfigProblem(
                f"{path}.expires",
                f"expired on {utc_text(override.expires)}; remove the override or extend it",
            )
        )
    if not override.reason.strip():
        problems.append(ConfigProblem(f"{path}.reason", "must say why the override exists"))
    if not override.approved_by.strip():
        problems.append(ConfigProblem(f"{path}.approved_by", "must name who approved it"))
    return problems


def check_overrides(config: Config, now: dt.datetime) -> Problems:
    """Each override sets a valid limit, has not expired, and says why and who approved it."""
    problems: Problems = []
    for index, override in enumerate(config.limits.overrides):
        problems += _override_problems(override, f"limits.overrides[{index}]", now)
    return problems


def check_detection(config: Config) -> Problems:
    """A process is confirmed after at least one cycle."""
    if config.detection.process_confirm_cycles < 1:
        return [ConfigProblem("detection.process_confirm_cycles", "must be at least 1")]
    return []


def check_sockets_and_connections(config: Config) -> Problems:
    """The gateway's and the API's sockets are absolute paths; each allows a connection."""
    problems = []
    if config.gateway.max_connections_per_user < 1:
        problems.append(ConfigProblem("gateway.max_connections_per_user", "must be at least 1"))
    for key in ("socket", "upstream"):
        if not getattr(config.gateway, key).removeprefix("unix://").startswith("/"):
            problems.append(
                ConfigProblem(f"gateway.{key}", "must be an absolute path (or unix:///path)")
            )
    if config.api.max_connections_per_user < 1:
        problems.append(ConfigProblem("api.max_connections_per_user", "must be at least 1"))
    if not config.api.socket.startswith("/"):
        problems.append(ConfigProblem("api.socket", "must be an absolute path"))
    return problems


def check_lifecycle_limits(lifecycle: LifecycleConfig) -> Problems:
    """Time limits of the lifecycle and of each origin: greater than 0 (``never`` for none)."""
    problems = []
    for key in ("created_timeout", "container_hold_after_stop"):
        value = getattr(lifecycle, key)
        if value <= 0:
            problems.append(ConfigProblem(f"lifecycle.{key}", _not_positive(value)))
    for origin, policy in lifecycle.origins.items():
        for key in ("idle_timeout", "max_runtime", "created_timeout", "container_hold_after_stop"):
            value = getattr(policy, key)
            if value is not None and value <= 0:
                path = f"lifecycle.origins.{origin}.{key}"
                problems.append(ConfigProblem(path, _not_positive(value)))
    return problems


def check_origins(config: Config) -> Problems:
    """``lifecycle.origins`` names only origins detection knows."""
    return [
        ConfigProblem(
            f"lifecycle.origins.{origin}", f"unknown origin (origins: {', '.join(ORIGINS)})"
        )
        for origin in config.lifecycle.origins
        if origin not in ORIGINS
    ]


def _in_unit_interval(path: str, value: float) -> Problems:
    return [] if 0 < value <= 1 else [ConfigProblem(path, "must be in (0, 1]")]


def check_lifecycle(config: Config) -> Problems:
    """The cycle's interval and window, and the fractions it warns and scales at."""
    lifecycle = config.lifecycle
    problems = check_lifecycle_limits(lifecycle)
    if lifecycle.interval <= 0:
        problems.append(ConfigProblem("lifecycle.interval", "must be greater than 0"))
    if lifecycle.idle_window < 1:
        problems.append(ConfigProblem("lifecycle.idle_window", "must be at least 1 (cycles)"))
    for index, fraction in enumerate(lifecycle.warn_at):
        if not 0 < fraction < 1:
            problems.append(
                ConfigProblem(
                    f"lifecycle.warn_at[{index}]", f"must be between 0 and 1, got {fraction}"
                )
            )
    for key in ("quota_warn_at", "high_demand_share", "high_demand_factor"):
        problems += _in_unit_interval(f"lifecycle.{key}", getattr(lifecycle, key))
    return problems


def check_plugin_selection(config: Config) -> Problems:
    """No plugin is both required and disabled."""
    plugins = config.plugins
    return [
        ConfigProblem("plugins.required", f"{name!r} is both required and disabled")
        for name in sorted(set(plugins.disabled) & set(plugins.required))
    ]


def check_gpu_health(config: Config) -> Problems:
    """``gpu.health``: a window and a margin that mean something, XIDs as NVML numbers them."""
    health = config.gpu.health
    problems = []
    if health.xid_window <= 0:
        problems.append(ConfigProblem("gpu.health.xid_window", "must be greater than 0"))
    if not 0 <= health.thermal_margin <= 50:
        problems.append(
            ConfigProblem(
                "gpu.health.thermal_margin",
                f"must be between 0 and 50 (degrees Celsius), got {health.thermal_margin}",
            )
        )
    for index, xid in enumerate(health.critical_xids):
        if not 0 < xid < 1000:
            problems.append(
                ConfigProblem(
                    f"gpu.health.critical_xids[{index}]", f"not an XID code (1..999): {xid}"
                )
            )
    for index, state in enumerate(health.drain):
        if state in health.drain[:index]:
            problems.append(ConfigProblem(f"gpu.health.drain[{index}]", f"{state!r} listed twice"))
    return problems


def validate(config: Config, *, now: dt.datetime | None = None) -> Problems:
    """Every whole-file check, in the order their problems are reported."""
    now = now or dt.datetime.now(dt.UTC)
    return [
        *check_limit_levels(config),
        *check_group_membership(config),
        *check_overrides(config, now),
        *check_origins(config),
        *check_detection(config),
        *check_sockets_and_connections(config),
        *check_lifecycle(config),
        *check_plugin_selection(config),
        *check_gpu_health(config),
    ]
