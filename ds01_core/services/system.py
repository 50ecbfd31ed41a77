"""Questions about the service itself: who the caller is, and whether it is up."""

from __future__ import annotations

from typing import Any

from ds01_core import __version__
from ds01_core.services.operations import Operation, ServiceContext


def whoami(ctx: ServiceContext) -> dict[str, Any]:
    """The caller as the service sees them (the kernel's word, not the client's)."""
    return {**ctx.caller.to_json(), "version": __version__}


OPERATIONS = (
    Operation("whoami", "GET", "/v1/whoami", whoami, summary="Who the service thinks you are."),
)
