"""The self-test's result: one verdict per check, and the report that gathers them.

A verdict is ``ok``, ``unsupported`` (the GPU or driver does not offer it: not a fault),
``failed`` (NVML answered with an error, named in ``detail``) or ``differs`` (the provider's
reading and NVML's answer disagree; ``detail`` names each difference). The report passes when
every check is ``ok`` or ``unsupported``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import attrs

Verdict = Literal["ok", "unsupported", "failed", "differs"]
PASSING: frozenset[str] = frozenset({"ok", "unsupported"})


@attrs.frozen
class Check:
    """One check: what was compared (``check`` on ``subject``), the verdict and why, and the
    two sides in a few words (``provider``: what ds01's provider read; ``nvml``: NVML's answer).
    """

    check: str
    subject: str
    verdict: Verdict
    detail: str = ""
    provider: str = ""
    nvml: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict in PASSING

    @property
    def text(self) -> str:
        """``failed: <error>``, ``differs: <what>``, or the bare verdict."""
        if self.verdict in ("failed", "differs") and self.detail:
            return f"{self.verdict}: {self.detail}"
        return self.verdict

    def to_json(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "text": self.text}


def judged(
    check: str,
    subject: str,
    *,
    failed: Sequence[str] = (),
    differs: Sequence[str] = (),
    unsupported: bool = False,
    note: str = "",
    provider: str = "",
    nvml: str = "",
) -> Check:
    """The verdict from what was found: a failure over a difference over "unsupported"."""
    if failed:
        verdict: Verdict = "failed"
        detail = "; ".join([*failed, *differs])
    elif differs:
        verdict, detail = "differs", "; ".join(differs)
    else:
        verdict, detail = ("unsupported" if unsupported else "ok"), note
    return Check(check, subject, verdict, detail, provider, nvml)


@attrs.frozen
class Report:
    """Every check of one self-test run, with what was read and how."""

    backend: str
    interval: float
    checks: tuple[Check, ...]
    unsupported_calls: dict[str, int] = attrs.Factory(dict)
    calls: int = 0
    nvidia_smi: tuple[str, ...] = ()
    mig_layout: tuple[dict[str, Any], ...] = ()

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def counts(self) -> dict[str, int]:
        found = {"ok": 0, "unsupported": 0, "failed": 0, "differs": 0}
        for c in self.checks:
            found[c.verdict] += 1
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "backend": self.backend,
            "interval": self.interval,
            "counts": self.counts(),
            "checks": [c.to_json() for c in self.checks],
            "unsupported_calls": dict(sorted(self.unsupported_calls.items())),
            "calls": self.calls,
            "mig_layout": list(self.mig_layout),
            "nvidia_smi": list(self.nvidia_smi),
        }
