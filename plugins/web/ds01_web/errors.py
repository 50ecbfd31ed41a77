"""The REST API's error answers: ``{"error": {"kind", "message", "code"}}``, one stable code per
service error kind (the same kinds and HTTP statuses as the API socket) and the few refusals
that only the web transport makes (no or a bad token, a scope too narrow, too many requests)."""

from __future__ import annotations

from typing import Any

from ds01_core.api import ServiceError

#: kind → (HTTP status, stable code); the service kinds first, as ``ds01_core`` defines them
CODES: dict[str, tuple[int, str]] = {
    "error": (400, "DS01_ERROR"),
    "invalid": (400, "DS01_INVALID"),
    "forbidden": (403, "DS01_FORBIDDEN"),
    "not_found": (404, "DS01_NOT_FOUND"),
    "conflict": (409, "DS01_CONFLICT"),
    "busy": (429, "DS01_BUSY"),
    "unavailable": (503, "DS01_UNAVAILABLE"),
    # the web transport's own
    "unauthenticated": (401, "DS01_UNAUTHENTICATED"),
    "insufficient_scope": (403, "DS01_INSUFFICIENT_SCOPE"),
    "rate_limited": (429, "DS01_RATE_LIMITED"),
    "method_not_allowed": (405, "DS01_METHOD_NOT_ALLOWED"),
    "internal": (500, "DS01_INTERNAL"),
}


class WebError(Exception):
    """A refusal made by the web transport itself (not by an operation)."""

    def __init__(self, kind: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = CODES[kind][0]
        self.headers = headers or {}


def error_body(kind: str, message: str) -> dict[str, Any]:
    code = CODES.get(kind, CODES["error"])[1]
    return {"error": {"kind": kind, "message": message, "code": code}}


def from_service(exc: ServiceError) -> WebError:
    """A service error as the web transport answers it: the socket's status, a stable code."""
    error = WebError(exc.kind if exc.kind in CODES else "error", exc.message)
    error.status = exc.status
    return error


__all__ = ["CODES", "WebError", "error_body", "from_service"]
