"""Built-in idle policy: stop a container idle past its timeout, warn before.

``trylast``: a plugin can overrule it for some containers (keep a class of notebooks alive,
stop others sooner) by answering ``on_idle`` first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ds01_core.framework.hookspecs import hookimpl


@hookimpl(trylast=True)
def on_idle(idle_seconds: float, policy: Mapping[str, Any]) -> str:
    timeout = policy.get("idle_timeout")
    if timeout is None:
        return "none"
    return "stop" if idle_seconds >= timeout else "warn"
