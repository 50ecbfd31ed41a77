"""Built-in idle policy: stop a container idle past its timeout, warn before.

``trylast``: a plugin can overrule it for some containers (keep a class of notebooks alive,
stop others sooner) by answering ``on_idle`` first.
"""

from __future__ import annotations

from ds01_core.domain.policy import Policy
from ds01_core.framework.hookspecs import hookimpl


@hookimpl(trylast=True)
def on_idle(idle_seconds: float, policy: Policy) -> str:
    """``stop`` once idle for the timeout in force (at it, not only past it), else ``warn``
    (the owner is told at each ``warn_at`` fraction)."""
    if policy.idle_timeout is None:
        return "none"
    return "stop" if idle_seconds >= policy.idle_timeout else "warn"
