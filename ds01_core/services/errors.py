"""Service failures that a transport shows to the caller as they are.

Each kind maps to one HTTP status on the API socket and one exit code in the CLI, so the same
refusal reads the same whichever way it reached the user.
"""

from __future__ import annotations

from typing import ClassVar


class ServiceError(Exception):
    """A failure whose message is for the caller: what was wrong and what to do."""

    status: ClassVar[int] = 400
    exit_code: ClassVar[int] = 1
    kind: ClassVar[str] = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Invalid(ServiceError):
    """The request itself is wrong (a bad value, a missing argument): a usage error."""

    status = 400
    exit_code = 2
    kind = "invalid"


class Forbidden(ServiceError):
    """The caller may not do this (another user's data, an admin operation)."""

    status = 403
    exit_code = 2
    kind = "forbidden"


class NotFound(ServiceError):
    """No such thing, or none the caller may see (the two are not told apart)."""

    status = 404
    kind = "not_found"


class Conflict(ServiceError):
    """The request is fine but the server's state does not allow it now."""

    status = 409
    kind = "conflict"


class Unavailable(ServiceError):
    """Something ds01 depends on (Docker, the GPUs, a plugin) could not be reached."""

    status = 503
    kind = "unavailable"


KINDS: dict[str, type[ServiceError]] = {
    cls.kind: cls for cls in (ServiceError, Invalid, Forbidden, NotFound, Conflict, Unavailable)
}


def from_kind(kind: str, message: str) -> ServiceError:
    """Rebuild an error received over the API socket, so the CLI treats it like a local one."""
    return KINDS.get(kind, ServiceError)(message)


class Busy(ServiceError):
    """The caller holds too much of a shared resource (connections) already."""

    status = 429
    kind = "busy"


KINDS[Busy.kind] = Busy
