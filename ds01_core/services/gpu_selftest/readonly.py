"""A read-only view of NVML: only an allow-list of getter names can be called through it.

The self-test runs on production GPU servers, at install time and for support, so it must not
be able to change anything there, not even by mistake in a later edit. Everything it asks NVML
goes through :class:`ReadOnlyNvml`, which hands out NVML's getters (``nvmlDeviceGet*``,
``nvmlSystemGet*``, the GPM sampling calls, ``nvmlInit``/``nvmlShutdown``) and its constants,
error classes and structure types, and raises :class:`NotAllowed` for every other function —
a name with ``Set``, ``Reset``, ``Clear``, ``Create`` or ``Destroy`` in it never, even when it
would otherwise match, except the four event-set calls by their exact names (:data:`EVENT_CALLS`:
listening for XID errors changes nothing on a GPU). Every call made through it is recorded with
its outcome.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

#: Functions allowed by their exact name. ``nvmlGpmMetricsGet`` computes a metric from two
#: samples already taken: it reads nothing new and changes nothing.
ALLOWED_NAMES = frozenset(
    {
        "nvmlInit",
        "nvmlShutdown",
        "nvmlGpmMigSampleGet",
        "nvmlGpmSampleFree",
        "nvmlGpmQueryDeviceSupport",
        "nvmlGpmMetricsGet",
    }
)
#: The calls that listen for XID errors (``ds01_core.domain.gpu.nvml.xid``), allowed by their
#: exact names although ``Set``/``Create`` are in them: an event set lives in the calling process
#: and is freed again; registering on one asks the driver to report, it changes no GPU setting.
EVENT_CALLS = frozenset(
    {"nvmlEventSetCreate", "nvmlDeviceRegisterEvents", "nvmlEventSetWait_v2", "nvmlEventSetFree"}
)
#: Functions allowed by the start of their name (``nvmlGpmSample*``: Alloc, Get, Free).
ALLOWED_PREFIXES = ("nvmlDeviceGet", "nvmlSystemGet", "nvmlGpmSample")
#: Words that refuse a name whatever else it matches (``nvmlSystemGetTopologyGpuSet`` too:
#: a harmless getter refused is a price worth paying for a rule with no exceptions).
DENIED = re.compile(r"Set|Reset|Clear|Create|Destroy")


class NotAllowed(PermissionError):
    """The self-test asked for an NVML function that is not a read-only getter."""


def is_allowed(name: str) -> bool:
    """Whether ``name`` is an NVML function the self-test may call."""
    if name in EVENT_CALLS:
        return True
    if DENIED.search(name):
        return False
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)


@attrs.frozen
class Call:
    """One call made through the wrapper: the function and its outcome (``ok`` or the
    exception's class name)."""

    name: str
    outcome: str


class ReadOnlyNvml:
    """``nvml`` (the ``pynvml`` module or a stand-in) with only its getters reachable.

    ``calls`` lists every call made, in order; ``refused`` every name asked for and refused.
    """

    def __init__(self, nvml: Any):
        self._nvml = nvml
        self.calls: list[Call] = []
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> Any:
        nvml = self.__dict__.get("_nvml")
        if nvml is None or name.startswith("__"):
            raise AttributeError(name)
        if name.startswith("NVML"):  # constants (NVML_*) and exception classes (NVMLError*)
            return getattr(nvml, name)
        if is_allowed(name):
            try:
                value = getattr(nvml, name)
            except AttributeError:  # this binding (or the simulated host) lacks it
                self.calls.append(Call(name, "missing"))
                raise
            return self._recorded(name, value) if callable(value) else value
        if not DENIED.search(name) and name.startswith(("nvml", "c_nvml")):
            value = getattr(nvml, name)
            # structure types (c_nvml*_t) and version constants (nvmlMemory_v2): data, not calls
            if isinstance(value, type) or not callable(value):
                return value
        self.refused.append(name)
        raise NotAllowed(f"{name} is not a read-only NVML call; the GPU self-test never calls it")

    def unsupported(self) -> dict[str, int]:
        """Each function that answered "not supported" (or is missing), with how often."""
        found: dict[str, int] = {}
        for call in self.calls:
            if call.outcome in UNSUPPORTED_OUTCOMES:
                found[call.name] = found.get(call.name, 0) + 1
        return found

    def _recorded(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                self.calls.append(Call(name, type(exc).__name__))
                raise
            self.calls.append(Call(name, "ok"))
            return result

        call.__name__ = name
        return call


#: Outcomes that mean "this driver or GPU does not offer it", not "it broke".
UNSUPPORTED_OUTCOMES = frozenset(
    {"NVMLError_NotSupported", "NVMLError_FunctionNotFound", "missing"}
)
