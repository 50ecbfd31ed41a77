"""GPU faults on the simulated host, and what its driver accumulates from them.

The faults: hot, throttled, ECC errors, XIDs, fallen off the bus, rows that cannot be remapped.

So that GPU health can be tested end to end against a *running* ds01d, the faults live in
``faults.health`` (GPU index -> :class:`HealthFault`, set in-process by unit tests, or from
``gpu.simulated.faults_file``: :mod:`~ds01_core.domain.gpu.simulated.faults_file`). Faults are
states, except two that only add up, as on a real GPU: ECC counters grow (and reset only on a
"driver reload") and each XID is delivered once per event set (:class:`HealthLedger`); see
docs/gpu-telemetry.md.
"""

from __future__ import annotations

import attrs


@attrs.define
class HealthFault:
    """What is wrong with one simulated GPU (all off by default).

    ``ecc_corrected``/``ecc_uncorrected``: errors since the driver loaded (the volatile
    counters; the aggregate ones add what they grow by); leaving the key out keeps the count,
    ``0`` is a driver reload. ``xid``: codes delivered once each, in order, through the event set.
    """

    temperature: float | None = None
    throttle: list[str] = attrs.Factory(list)
    ecc_corrected: int | None = None
    ecc_uncorrected: int | None = None
    xid: list[int] = attrs.Factory(list)
    fell_off_bus: bool = False
    remap_failure: bool = False
    pending_retirement: bool = False


@attrs.define
class EccCounter:
    """One kind of ECC error on one GPU: since the driver loaded, over its life, and the
    fault's value last seen (to tell growth from a reload)."""

    volatile: int = 0
    aggregate: int = 0
    seen: int = 0

    def update(self, value: int | None) -> None:
        if value is None or value == self.seen:
            return  # a fault removed keeps the count: counters only grow until a reload
        self.aggregate += value - self.seen if value > self.seen else value
        self.volatile = value
        self.seen = value


@attrs.define
class SimEventSet:
    """An NVML event set: the GPUs registered on it and how far each one's XIDs are read."""

    cursors: dict[int, int] = attrs.Factory(dict)


@attrs.define
class HealthLedger:
    """ECC counters, the XIDs each GPU has raised, and the event sets open."""

    ecc: dict[tuple[int, str], EccCounter] = attrs.Factory(dict)
    xid_log: dict[int, list[int]] = attrs.Factory(dict)
    xid_seen: dict[int, list[int]] = attrs.Factory(dict)
    event_sets: dict[int, SimEventSet] = attrs.Factory(dict)

    def sync(self, faults: dict[int, HealthFault], gpu_count: int) -> None:
        """Take in what the faults say now: ECC counts grown or reset, XIDs added."""
        for index in range(gpu_count):
            fault = faults.get(index)
            for kind in ("ecc_corrected", "ecc_uncorrected"):
                counter = self.ecc.setdefault((index, kind), EccCounter())
                counter.update(getattr(fault, kind) if fault is not None else None)
            codes = list(fault.xid) if fault is not None else []
            seen = self.xid_seen.get(index, [])
            log_ = self.xid_log.setdefault(index, [])
            # a list that grew adds its new codes; any other list is new faults from its start
            log_ += codes[len(seen) :] if codes[: len(seen)] == seen else codes
            self.xid_seen[index] = codes

    def counter(self, index: int, kind: str) -> EccCounter:
        return self.ecc.get((index, kind), EccCounter())

    def next_xid(self, events: SimEventSet) -> tuple[int, int] | None:
        """``(GPU index, code)`` of the next XID not yet delivered to ``events``."""
        for index, cursor in sorted(events.cursors.items()):
            raised = self.xid_log.get(index, [])
            if cursor < len(raised):
                events.cursors[index] = cursor + 1
                return index, raised[cursor]
        return None
