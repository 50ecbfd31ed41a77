"""A fake ``pynvml`` for the NVML provider's tests: the simulated host plus injected errors.

:class:`FakeNvml` answers like real NVML (the simulated host already raises
``NVMLError_NotSupported`` on MIG utilisation, ``NotFound`` for empty MIG indices, …) and lets a
test make any call fail or answer differently, for one GPU or all, the way drivers do in the
field: a GPU that is lost, a metric without permission, an old driver's UUID form.
"""

from __future__ import annotations

import types
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

from ds01_core.domain.gpu.simulated import build_host
from ds01_core.domain.gpu.simulated.host import SimHost
from ds01_core.domain.gpu.simulated.nvml import SimulatedNvml
from ds01_core.domain.gpu.simulated.values import SimHandle


@attrs.define
class _Rule:
    function: str
    gpu: int | None
    mig: bool | None
    action: Callable[..., Any]

    def applies(self, function: str, args: tuple[Any, ...]) -> bool:
        if self.function not in ("*", function):
            return False
        target = args[0] if args else None
        if isinstance(target, SimHandle):
            index, on_mig = target.gpu, target.mig is not None
        elif isinstance(target, int) and function == "nvmlDeviceGetHandleByIndex":
            index, on_mig = target, False
        else:
            return self.gpu is None and self.mig is None
        if self.gpu is not None and index != self.gpu:
            return False
        return self.mig is None or on_mig == self.mig


class FakeNvml(SimulatedNvml):
    """:class:`SimulatedNvml` with call counting and per-call error or answer injection."""

    def __init__(self, host: SimHost, **kwargs: Any):
        super().__init__(host, **kwargs)
        self.calls: Counter[str] = Counter()
        self.rules: list[_Rule] = []
        for name in dir(SimulatedNvml):
            if name.startswith("nvml") and callable(getattr(SimulatedNvml, name)):
                setattr(self, name, self._wrap(name, getattr(self, name)))

    def fail(
        self,
        function: str,
        error: type[Exception],
        *,
        gpu: int | None = None,
        mig: bool | None = None,
    ) -> None:
        """Make ``function`` (``"*"``: every function) raise ``error`` for the handles chosen."""

        def raise_error(*_args: Any, **_kwargs: Any) -> Any:
            raise error()

        self.rules.append(_Rule(function, gpu, mig, raise_error))

    def answer(
        self,
        function: str,
        result: Callable[..., Any],
        *,
        gpu: int | None = None,
        mig: bool | None = None,
    ) -> None:
        """Make ``function`` return ``result(*args)`` instead, for the handles chosen."""
        self.rules.append(_Rule(function, gpu, mig, result))

    def heal(self) -> None:
        """Remove every injected rule."""
        self.rules.clear()

    def as_module(self) -> types.ModuleType:
        """A module object to put in ``sys.modules['pynvml']``."""
        module = types.ModuleType("pynvml")
        for name in dir(self):
            if name.startswith(("nvml", "NVML")):
                setattr(module, name, getattr(self, name))
        return module

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            for rule in reversed(self.rules):
                if rule.applies(name, args):
                    return rule.action(*args, **kwargs)
            return method(*args, **kwargs)

        return call


def a30_topology() -> dict[str, Any]:
    """Two A30s (4 slices: 1g.6gb, 2g.12gb, 4g.24gb), one whole and one split 2g + 1g + 1g."""
    return {
        "name": "A30-box",
        "driver_version": "535.161.08",
        "models": {
            "NVIDIA A30": {
                "memory": "24576MiB",
                "profiles": {
                    "1g.6gb": {"id": 0, "slices": 1, "memory": "5952MiB"},
                    "2g.12gb": {"id": 1, "slices": 2, "memory": "11968MiB"},
                    "4g.24gb": {"id": 3, "slices": 4, "memory": "24192MiB"},
                },
            }
        },
        "default_model": "NVIDIA A30",
        "gpus": [
            {"utilization": 55, "memory_used": "10GiB", "power_watts": 120.0},
            {
                "power_watts": 90.0,
                "mig": [
                    {"profile": "2g.12gb", "gi": 1},
                    {"profile": "1g.6gb", "gi": 5},
                    {"profile": "1g.6gb", "gi": 6},
                ],
            },
        ],
    }


def a30_fake(**kwargs: Any) -> FakeNvml:
    return FakeNvml(build_host(a30_topology(), source="a30"), **kwargs)
