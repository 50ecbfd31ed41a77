"""Numbers and paths a configuration must not accept, checked the same way for every field.

The converter (:mod:`ds01_core.domain.config.converter`) calls these for every value of a type,
whatever section it is in (plugin sections and ``ds01 admin override set`` values included), so a
new field is covered without a check of its own:

- a float is finite: ``.nan`` compares false with everything (a NaN threshold is never crossed,
  a NaN quota never refuses) and ``.inf`` is not a limit (leave the key out for none);
- an integer or a size fits in the 64-bit signed integer that Docker's API and the kernel's
  cgroup files take; a duration is at most a century (date arithmetic beyond that overflows);
- a field typed :data:`AbsPath` holds an absolute path: a relative one would be resolved against
  whatever directory the daemon or a CLI happened to start in.

Limits whose engine or kernel range is narrower than that are bounded by name in
:data:`LIMIT_MAXIMUMS`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NewType

from ds01_core.domain.units import ByteSize, Duration

if TYPE_CHECKING:
    from ds01_core.domain.config.schema import Config, LimitSet

#: A configuration field holding a path: refused unless absolute (``/var/lib/ds01``).
AbsPath = NewType("AbsPath", str)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: The kernel's largest ``pids.max`` on 64-bit hosts (PID_MAX_LIMIT); Docker's ``PidsLimit``
#: ends up there too (runc writes it), so a larger value fails every container create.
PID_MAX_LIMIT = 4 * 1024 * 1024
#: The kernel's largest CFS quota (2^44 - 1 µs) over the 100 ms period ds01 writes, in cores.
CPU_QUOTA_MAX_CORES = ((1 << 44) - 1) // 100_000
MAX_DURATION = Duration(100 * 365 * 86400)

#: limit name → (largest value the engine or kernel accepts, what sets that bound)
LIMIT_MAXIMUMS: dict[str, tuple[int, str]] = {
    "pids_limit": (PID_MAX_LIMIT, "the kernel's largest pids.max"),
    "tasks_max": (PID_MAX_LIMIT, "the kernel's largest pids.max"),
    "cpu_quota": (CPU_QUOTA_MAX_CORES, "the kernel's largest CPU quota, in cores"),
}

#: limits where 0 means "none at all" rather than a mistake (``max_images: 0``: no images)
ZERO_ALLOWED_LIMITS = frozenset({"max_images", "max_image_storage"})


def _shown(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return repr(value)


def finite_float(value: int | float) -> float:
    """``value`` as a float, refused when it is NaN, infinite or too large to be a float."""
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"expected a number of a sensible size, got {value}") from None
    if not math.isfinite(number):
        raise ValueError(
            f"expected a finite number, got {_shown(number)} (leave the key out for no limit)"
        )
    return number


def bounded_int(value: int) -> int:
    """``value``, refused outside the signed 64-bit range Docker and the kernel take."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(
            f"{value} is out of range: Docker and the kernel take whole numbers up to "
            f"{INT64_MAX} (leave the key out for no limit)"
        )
    return value


def checked_duration(value: object) -> Duration:
    """A parsed duration that is finite and at most :data:`MAX_DURATION`."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a duration like '30m' or '1.5h', got {_shown(value)}")
    duration = Duration.parse(value)
    if not math.isfinite(duration) or duration > MAX_DURATION:
        raise ValueError(f"a duration must be at most {MAX_DURATION} (100 years), got {value!r}")
    return duration


def checked_size(value: object) -> ByteSize:
    """A parsed size that fits in the signed 64-bit integer Docker and the kernel take."""
    try:
        size = ByteSize.parse(value)
    except OverflowError:
        size = None
    if size is None or size > INT64_MAX:
        raise ValueError(
            f"a size must be at most {INT64_MAX} bytes (8 EiB, the most Docker and the kernel "
            f"take), got {value!r}"
        )
    return size


def absolute_path(value: str) -> str:
    """``value`` when it is an absolute path."""
    if not value.startswith("/"):
        raise ValueError(f"must be an absolute path (starting with /), got {value!r}")
    return value


def limit_problem(key: str, value: Any) -> str | None:
    """What is wrong with one limit's value (None: nothing), for the file and for overrides."""
    if value is None or isinstance(value, bool):
        return None
    if key in ZERO_ALLOWED_LIMITS:
        if value < 0:
            return f"must be 0 or more, got {value!r} (0: none allowed; leave the key out for no limit)"
        return None
    if value <= 0:
        return (
            f"must be greater than 0, got {value!r} (leave the key out to keep the value from "
            "the level below)"
        )
    bound = LIMIT_MAXIMUMS.get(key)
    if bound is not None and value > bound[0]:
        return f"must be at most {bound[0]} ({bound[1]}), got {value!r}"
    return None


# -- warnings: accepted, but not what the admin meant ---------------------------------------


def host_cpu_count() -> int:
    """The CPUs this process may run on (what Docker counts for ``--cpus``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _limit_sets(config: Config) -> Iterator[tuple[str, LimitSet]]:
    limits = config.limits
    yield "limits.defaults", limits.defaults
    for name, group in limits.groups.items():
        yield f"limits.groups.{name}", group
    for name, user in limits.users.items():
        yield f"limits.users.{name}", user
    for index, override in enumerate(limits.overrides):
        yield f"limits.overrides[{index}].values", override.values


def config_warnings(config: Config, *, cpus: int | None = None) -> list[tuple[str, str]]:
    """(path, message) for values that are accepted but will not act as written.

    A per-container ``max_cpus`` above the host's CPU count is clamped to it when a container
    is created (the engine refuses more CPUs than the host has).
    """
    cpus = cpus or host_cpu_count()
    found = []
    for path, limit_set in _limit_sets(config):
        if limit_set.max_cpus is not None and limit_set.max_cpus > cpus:
            found.append(
                (
                    f"{path}.max_cpus",
                    f"{limit_set.max_cpus:g} is more than this host's {cpus} CPUs; containers "
                    f"get at most {cpus}",
                )
            )
    return found
