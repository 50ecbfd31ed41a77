"""The rules that turn one GPU's readings into its health, without I/O: readings + what was known.

The ``gpu-health`` step (:mod:`ds01_core.cycle.gpu_health`) reads the provider and the store;
this module only decides, so that every rule can be tested with plain values:

- **unhealthy** (should take no new work): the GPU fell off the bus, a row could not be
  remapped, uncorrected ECC errors since the driver loaded, a critical XID (``critical_xids``)
  within ``xid_window``;
- **degraded** (works, someone should look): too hot (within ``thermal_margin`` of the slowdown
  temperature, or throttled for heat), pages or rows waiting for a reset to be retired, any
  other XID within the window, reads of the GPU failing;
- **ok** otherwise.

A GPU whose readings are missing in one cycle keeps what was concluded before, so that one
failed read neither raises nor clears an alert.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import attrs

from ds01_core.domain.config.schema import HealthConfig
from ds01_core.domain.gpu.health import (
    REASON_CODES,
    GpuHealth,
    GpuTelemetry,
    HealthReason,
    HealthState,
)

#: What NVIDIA's XID catalogue says each common code means (words for ``ds01 gpu health``).
XID_NAMES: dict[int, str] = {
    8: "GPU stopped processing",
    13: "graphics engine exception",
    31: "GPU memory page fault",
    32: "invalid or corrupted push buffer stream",
    38: "driver firmware error",
    43: "GPU stopped processing (an application's fault)",
    45: "preemptive cleanup after an error",
    48: "double-bit ECC error",
    61: "internal micro-controller breakpoint",
    62: "internal micro-controller halt",
    63: "ECC page retirement or row remapping recorded",
    64: "ECC page retirement or row remapping failed",
    68: "video processor exception",
    69: "graphics engine class error",
    74: "NVLink error",
    79: "GPU fell off the bus",
    92: "high single-bit ECC error rate",
    94: "contained ECC error",
    95: "uncontained ECC error",
    109: "context switch timeout",
    119: "GSP RPC timeout",
    120: "GSP error",
    140: "unrecovered ECC error",
}

#: Throttle reasons that mean "too hot" (``hw_slowdown`` is also raised by a power brake).
HEAT_THROTTLES = ("hw_thermal", "sw_thermal", "hw_slowdown")

#: Reasons that make a GPU unhealthy by themselves (an XID does when it is critical).
UNHEALTHY_CODES = frozenset({"fell_off_bus", "row_remap_failure", "ecc_uncorrected"})


@attrs.frozen
class SeenXid:
    """One XID error ds01 saw on a GPU, and when the driver reported it."""

    code: int
    at: dt.datetime


@attrs.frozen
class Known:
    """What the last cycle concluded about one GPU: its health and the XIDs still in the window."""

    health: GpuHealth
    xids: tuple[SeenXid, ...] = ()


@attrs.frozen
class Verdict:
    """This cycle's conclusion about one GPU.

    ``xids``: the XIDs to remember (those within the window); ``new_xids``: those seen for the
    first time now (one ``gpu.xid`` event each); ``xid_count``: how many XID errors the provider
    counted since the last cycle (more than one when several came between two reads: only the
    last one's code is known); ``changed``: the state, the set of reason codes or the drain
    differ from the last cycle's (one ``gpu.health_changed`` event).
    """

    health: GpuHealth
    xids: tuple[SeenXid, ...] = ()
    new_xids: tuple[SeenXid, ...] = ()
    changed: bool = False
    xid_count: int = 0


def clock(moment: dt.datetime) -> str:
    """``14:02 UTC``: when something happened, for a reason's words."""
    return moment.astimezone(dt.UTC).strftime("%H:%M UTC")


def xid_words(xid: SeenXid) -> str:
    """``XID 79 (GPU fell off the bus) at 14:02 UTC``."""
    name = XID_NAMES.get(xid.code)
    return f"XID {xid.code}{f' ({name})' if name else ''} at {clock(xid.at)}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def new_xids(
    telemetry: GpuTelemetry, before: Known | None, now: dt.datetime
) -> tuple[SeenXid, ...]:
    """The XID the provider reports now, when ds01 has not seen it before: a later time than
    any remembered, or (a provider without times) a grown error count."""
    if telemetry.last_xid is None:
        return ()
    previous = before.health.telemetry if before is not None else None
    if telemetry.last_xid_at is not None:
        known = [x.at for x in before.xids] if before is not None else []
        if previous is not None and previous.last_xid_at is not None:
            known.append(previous.last_xid_at)
        if known and telemetry.last_xid_at <= max(known):
            return ()
        return (SeenXid(telemetry.last_xid, telemetry.last_xid_at),)
    if previous is not None and telemetry.xid_errors <= previous.xid_errors:
        return ()
    return (SeenXid(telemetry.last_xid, now),)


def _thermal(telemetry: GpuTelemetry, margin: float) -> str | None:
    words = []
    temp, slowdown = telemetry.temperature_c, telemetry.slowdown_temperature_c
    if temp is not None and slowdown is not None and temp >= slowdown - margin:
        words.append(
            f"{temp:.0f} °C, within {margin:g} °C of the slowdown temperature ({slowdown:.0f} °C)"
        )
    throttled = [r for r in HEAT_THROTTLES if r in telemetry.throttle_reasons]
    if throttled:
        words.append(f"clocks throttled ({', '.join(throttled)})")
    return "; ".join(words) or None


def _pending(telemetry: GpuTelemetry) -> str | None:
    waiting = []
    if telemetry.retired_pages_pending:
        waiting.append("retired pages")
    if telemetry.remapped_rows_pending:
        waiting.append("remapped rows")
    if not waiting:
        return None
    return f"{' and '.join(waiting)} wait for a GPU reset to take effect"


def reasons_of(
    telemetry: GpuTelemetry | None,
    read_error: str | None,
    xids: Sequence[SeenXid],
    config: HealthConfig,
) -> tuple[list[HealthReason], bool]:
    """The reasons, in :data:`REASON_CODES` order, and whether any of them is critical."""
    found: dict[str, str] = {}
    critical = False
    if telemetry is not None:
        uncorrected = telemetry.ecc_volatile_uncorrected
        if uncorrected:
            found["ecc_uncorrected"] = (
                f"{_plural(uncorrected, 'uncorrected ECC error')} since the driver loaded"
            )
        thermal = _thermal(telemetry, config.thermal_margin)
        if thermal:
            found["thermal"] = thermal
        if telemetry.fell_off_bus:
            found["fell_off_bus"] = (
                "the GPU fell off the bus (NVML: GPU is lost); it needs a reboot or a reseat"
            )
        if telemetry.remapped_rows_failed:
            found["row_remap_failure"] = "a memory row could not be remapped: the GPU needs service"
        pending = _pending(telemetry)
        if pending:
            found["pending_retirement"] = pending
    if xids:
        found["xid"] = "; ".join(xid_words(x) for x in sorted(xids, key=lambda x: x.at))
        critical = any(x.code in config.critical_xids for x in xids)
    if read_error and "fell_off_bus" not in found:  # a lost GPU's reads fail: said already
        found["read_failed"] = f"reads failing: {read_error.removeprefix('degraded: ')}"
    reasons = [HealthReason(code, found[code]) for code in REASON_CODES if code in found]
    return reasons, critical


def evaluate(
    index: int,
    uuid: str,
    telemetry: GpuTelemetry | None,
    before: Known | None,
    config: HealthConfig,
    now: dt.datetime,
    *,
    read_error: str | None = None,
    telemetry_read: bool = True,
) -> Verdict:
    """One GPU's health in this cycle.

    :param telemetry: this cycle's readings; None when the provider gave none for this GPU.
    :param before: what the last cycle concluded (None: never seen).
    :param read_error: the provider's ``health()`` for this GPU when it is not ``ok``.
    :param telemetry_read: the provider reads telemetry at all; when it does and this GPU's is
        missing, the GPU keeps its last health (a missed read is not a recovery).
    """
    if telemetry is None and telemetry_read and before is not None:
        return Verdict(before.health, before.xids)
    fresh = new_xids(telemetry, before, now) if telemetry is not None else ()
    window = dt.timedelta(seconds=float(config.xid_window))
    remembered = (*(before.xids if before is not None else ()), *fresh)
    recent = tuple(x for x in remembered if now - x.at <= window)
    reasons, critical = reasons_of(telemetry, read_error, recent, config)
    codes = {r.code for r in reasons}
    state: HealthState
    if codes & UNHEALTHY_CODES or critical:
        state = "unhealthy"
    elif codes:
        state = "degraded"
    else:
        state = "ok"
    previous = before.health if before is not None else None
    since = previous.since if previous is not None and previous.state == state else now
    health = GpuHealth(
        index,
        uuid or (previous.uuid if previous is not None else ""),
        state,
        tuple(reasons),
        since,
        state in config.drain,
        telemetry,
    )
    if previous is None:
        changed = state != "ok"
    else:
        changed = (
            state != previous.state
            or codes != {r.code for r in previous.reasons}
            or health.drained != previous.drained
        )
    return Verdict(health, recent, fresh, changed, _xid_count(telemetry, previous, fresh))


def _xid_count(
    telemetry: GpuTelemetry | None, previous: GpuHealth | None, fresh: Sequence[SeenXid]
) -> int:
    """XID errors counted since the last cycle (the counter restarts with the provider)."""
    if not fresh or telemetry is None:
        return 0
    before = previous.telemetry.xid_errors if previous and previous.telemetry else 0
    grown = (
        telemetry.xid_errors - before if telemetry.xid_errors >= before else telemetry.xid_errors
    )
    return max(grown, 1)


__all__ = [
    "HEAT_THROTTLES",
    "UNHEALTHY_CODES",
    "XID_NAMES",
    "Known",
    "SeenXid",
    "Verdict",
    "evaluate",
    "new_xids",
    "reasons_of",
    "xid_words",
]
