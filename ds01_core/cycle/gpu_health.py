"""The ``gpu-health`` step: each GPU's readings turned into its health, stored, and changes audited.

Once per full cycle, after ``detect``: the GPU listing (the one detection read in this cycle
where the provider kept it, so NVML is not walked twice), the provider's telemetry (ECC, XID,
temperatures, throttling; a provider without ``telemetry()`` gives only its read failures) and
its ``health()`` are judged by :mod:`ds01_core.domain.gpu.health_rules` against what the last
cycle concluded (the ``gpu_health`` table). The result goes into the cycle's report (``gpus``,
``health``: what the Prometheus exporter publishes) and the table (what ``ds01 gpu health`` and
allocation read; a drained GPU gets no new allocation).

Audit events only on change, so that alerts resolve and nothing is repeated every cycle: one
``gpu.health_changed`` when a GPU's state, its set of reason codes or its drain change (also
back to ``ok``), one ``gpu.xid`` for each XID seen for the first time. While the GPUs are
unavailable (NVML down, released by an admin), nothing is read or written and ``health`` is
empty.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ds01_core.domain.gpu.access import GpuUnavailableError
from ds01_core.domain.gpu.base import HEALTH_OK, GpuProvider
from ds01_core.domain.gpu.health import GpuTelemetry
from ds01_core.domain.gpu.health_rules import Known, Verdict, evaluate, xid_words
from ds01_core.domain.model import Event, Gpu
from ds01_core.domain.state import gpu_health as table

if TYPE_CHECKING:
    from ds01_core.cycle.steps import CycleContext

log = logging.getLogger(__name__)

SOURCE = "gpu-health"


class Unavailable(Exception):
    """The GPUs cannot be read now (the GPU access says why, once): the step does nothing."""


def listing(ctx: CycleContext, provider: GpuProvider) -> list[Gpu]:
    """The GPUs as read in this cycle: detection's listing when the provider kept one made since
    the cycle began, else one read now; empty when the listing fails (health still judged)."""
    kept = getattr(provider, "last_listing", None)
    if isinstance(kept, tuple) and len(kept) == 2 and kept[0] >= ctx.started:
        return list(kept[1])
    try:
        return provider.gpus()
    except GpuUnavailableError as exc:
        raise Unavailable(str(exc)) from None
    except Exception as exc:
        log.warning("gpu-health: the GPU listing failed: %s", exc)
        return []


def telemetry(provider: GpuProvider) -> tuple[dict[int, GpuTelemetry], bool]:
    """Each GPU's readings by index, and whether the provider reads telemetry at all (a failed
    read: none this cycle, so every GPU keeps its last health)."""
    read = getattr(provider, "telemetry", None)
    if read is None:
        return {}, False
    try:
        return {t.index: t for t in read()}, True
    except GpuUnavailableError as exc:
        raise Unavailable(str(exc)) from None
    except Exception as exc:
        log.warning("gpu-health: GPU telemetry unavailable this cycle: %s", exc)
        return {}, True


def read_errors(provider: GpuProvider) -> dict[int, str]:
    """GPU index -> the provider's ``health()`` for the GPUs whose reads fail (or {})."""
    health = getattr(provider, "health", None)
    if health is None:
        return {}
    try:
        return {i: s for i, s in dict(health()).items() if s != HEALTH_OK}
    except GpuUnavailableError as exc:
        raise Unavailable(str(exc)) from None
    except Exception as exc:
        log.warning("gpu-health: the provider's health unavailable: %s", exc)
        return {}


def judge(
    ctx: CycleContext, provider: GpuProvider
) -> tuple[list[Gpu], list[Verdict], dict[int, Known]]:
    """This cycle's listing, a verdict for every GPU read now or known before, and what was
    known before."""
    runtime = ctx.runtime
    gpus = listing(ctx, provider)
    readings, telemetry_read = telemetry(provider)
    errors = read_errors(provider)
    before = {i: s.known for i, s in table.load(runtime.state.db).items()}
    uuids = {g.index: g.uuid for g in gpus}
    verdicts = []
    config = runtime.config.gpu.health
    for index in sorted({*uuids, *readings, *errors, *before}):
        known = before.get(index)
        reading = readings.get(index)
        seen = index in uuids or index in readings or index in errors
        if not seen and known is not None:
            verdicts.append(Verdict(known.health, known.xids))  # not read at all: kept
            continue
        uuid = reading.uuid if reading is not None and reading.uuid else uuids.get(index, "")
        verdicts.append(
            evaluate(
                index,
                uuid,
                reading,
                known,
                config,
                ctx.now,
                read_error=errors.get(index),
                telemetry_read=telemetry_read,
            )
        )
    return gpus, verdicts, before


def events_of(verdicts: Sequence[Verdict], before: dict[int, Known]) -> list[Event]:
    """``gpu.xid`` for each new XID, then ``gpu.health_changed`` for each change."""
    events = []
    for verdict in verdicts:
        health = verdict.health
        for xid in verdict.new_xids:
            log.warning("GPU %d: %s", health.index, xid_words(xid))
            events.append(
                Event(
                    "gpu.xid",
                    None,
                    SOURCE,
                    {
                        "gpu": health.index,
                        "uuid": health.uuid,
                        "xid": xid.code,
                        "words": xid_words(xid),
                        "count": verdict.xid_count,
                    },
                )
            )
        if not verdict.changed:
            continue
        known = before.get(health.index)
        previous = known.health.state if known is not None else "ok"
        details: dict[str, Any] = {
            "gpu": health.index,
            "uuid": health.uuid,
            "state": health.state,
            "previous_state": previous,
            "reasons": table.reasons_json(health),
            "drained": health.drained,
        }
        level = logging.INFO if health.state == "ok" else logging.WARNING
        log.log(
            level,
            "GPU %d health: %s -> %s%s%s",
            health.index,
            previous,
            health.state,
            "".join(f"; {r.detail}" for r in health.reasons),
            " (drained)" if health.drained else "",
        )
        events.append(Event("gpu.health_changed", None, SOURCE, details))
    return events


def run(ctx: CycleContext) -> list[Event]:
    """The step: judge every GPU, fill the report, store the verdicts, return the changes."""
    runtime = ctx.runtime
    try:
        provider = runtime.gpu
        gpus, verdicts, before = judge(ctx, provider)
    except (GpuUnavailableError, Unavailable) as exc:
        log.debug("gpu-health: GPUs unavailable, nothing judged: %s", exc)
        return []
    ctx.report.gpus = gpus
    ctx.report.health = [v.health for v in verdicts]
    events = events_of(verdicts, before)
    with runtime.state.transaction() as db:
        for verdict in verdicts:
            table.save(db, Known(verdict.health, verdict.xids), ctx.now)
    return events


__all__ = ["SOURCE", "events_of", "judge", "listing", "read_errors", "run", "telemetry"]
