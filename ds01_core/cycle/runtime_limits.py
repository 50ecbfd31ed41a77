"""Runtime caps: a running container is stopped at its maximum runtime, and warned before.

Unlike idleness, a runtime cap is not decided by a hook. ``max_runtime`` is a hard limit an
admin sets per group, user or origin, and lifts for a user or a container only through an
exemption that names a reason and is logged (``ds01 admin exempt set --runtime``); a plugin
that keeps a class of containers alive through ``on_idle`` must not also, silently, let them
run for ever. A plugin that wants a different cap sets it through the limits instead.
"""

from __future__ import annotations

from ds01_core.cycle.limit_actions import LimitVerdict
from ds01_core.domain.policy import Policy

#: The grant that lifts the cap.
EXEMPTION = "exempt_runtime"


def runtime_verdict(
    policy: Policy, running_seconds: float | None, exemptions: set[str]
) -> LimitVerdict | None:
    """``stop`` at or past the cap, else ``warn`` (sent once a ``warn_at`` fraction is
    passed); None without a cap, a start time or when exempted."""
    if policy.max_runtime is None or running_seconds is None or EXEMPTION in exemptions:
        return None
    if running_seconds >= policy.max_runtime:
        return LimitVerdict("stop", "runtime", running_seconds, policy.max_runtime)
    return LimitVerdict("warn", "runtime", running_seconds, policy.max_runtime)
