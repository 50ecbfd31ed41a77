"""One NVML answer as the self-test keeps it: a value, "unsupported", or the error it raised.

The self-test reports what NVML says, so no exception may end it: :func:`ask` turns each call's
outcome into an :class:`Answer`. "Not supported" (``NVML_ERROR_NOT_SUPPORTED``, a function the
driver or binding lacks) is told apart from a failure, which is named with NVML's own words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ds01_core.services.gpu_selftest.readonly import NotAllowed

_UNSUPPORTED = ("NVMLError_NotSupported", "NVMLError_FunctionNotFound")


@attrs.frozen
class Answer:
    """What one call gave: ``value``; or ``unsupported``; or ``error`` (a sentence) and
    ``kind``, the exception's class name."""

    value: Any = None
    error: str | None = None
    unsupported: bool = False
    kind: str | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.unsupported

    def describe(self, show: Callable[[Any], str] = str) -> str:
        """The answer in a few words: the value shown by ``show``, or why there is none."""
        if self.unsupported:
            return "not supported"
        if self.error is not None:
            return f"error: {self.error}"
        return show(self.value)


def error_text(exc: BaseException) -> str:
    """``Insufficient Permissions (NVMLError_NoPermission)``: NVML's words and the class."""
    message = str(exc).strip()
    name = type(exc).__name__
    return f"{message} ({name})" if message and message != name else name


def ask(nvml: Any, name: str, *args: Any) -> Answer:
    """Call ``nvml.<name>(*args)`` and keep its outcome.

    A function the binding lacks counts as unsupported; :class:`NotAllowed` (a call outside the
    read-only allow-list) is a failure, never "unsupported", so it cannot pass unnoticed.
    """
    try:
        fn = getattr(nvml, name)
    except NotAllowed as exc:
        return Answer(error=str(exc), kind="NotAllowed")
    except AttributeError:
        return Answer(error=f"this NVML has no {name}", unsupported=True, kind="missing")
    return call(fn, *args)


def call(fn: Callable[..., Any], *args: Any) -> Answer:
    """``fn(*args)``'s outcome as an :class:`Answer` (nothing it raises escapes)."""
    try:
        return Answer(value=fn(*args))
    except NotAllowed as exc:
        return Answer(error=str(exc), kind="NotAllowed")
    except Exception as exc:  # any NVML error (or a binding bug) is an answer to report
        kind = type(exc).__name__
        return Answer(error=error_text(exc), unsupported=kind in _UNSUPPORTED, kind=kind)
