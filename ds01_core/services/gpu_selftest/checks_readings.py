"""Checks of what is measured: utilisation or GPM, power, energy, ECC and clocks.

Readings move, so they are compared for presence (the provider must not say "unknown" where
NVML gives a value, nor invent one where NVML has none), and energy, a counter, for order: the
provider's reading must lie between NVML's readings taken just before and just after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ds01_core.domain.model import Gpu
from ds01_core.services.gpu_selftest.answers import Answer
from ds01_core.services.gpu_selftest.checks_layout import gpu_subject, provider_gpu
from ds01_core.services.gpu_selftest.raw import RawGpu, text
from ds01_core.services.gpu_selftest.report import Check, judged

#: The clock readings of :func:`~ds01_core.services.gpu_selftest.raw.read_health`.
CLOCKS = ("SM clock", "SM max", "memory clock", "memory max")

#: Rounding slack between NVML's millijoules and the provider's joules.
ENERGY_SLACK_J = 0.002


@attrs.define
class Reading:
    """One round of readings: the provider's GPUs and NVML's answers around them."""

    gpus: Answer
    utilization: dict[int, Answer] = attrs.Factory(dict)
    power: dict[int, Answer] = attrs.Factory(dict)
    energy_before: dict[int, Answer] = attrs.Factory(dict)
    energy_after: dict[int, Answer] = attrs.Factory(dict)

    def gpu(self, index: int) -> Gpu | None:
        return provider_gpu(self.gpus, index)[0]


def _values(answers: list[Answer], show: Any) -> str:
    return " → ".join(a.describe(show) for a in answers)


def _provider(values: list[Any], show: Any) -> str:
    return " → ".join("unknown" if v is None else show(v) for v in values)


def _presence(check: str, index: int, raw: list[Answer], theirs: list[Any], show: Any) -> Check:
    """Verdict of a reading compared for presence over both rounds."""
    subject = gpu_subject(index)
    failed = [str(a.error) for a in raw if a.error and not a.unsupported][:1]
    differs = []
    unsupported = all(a.unsupported for a in raw)
    for n, (answer, value) in enumerate(zip(raw, theirs, strict=True), start=1):
        if answer.ok and value is None:
            differs.append(f"reading {n}: the provider has none, NVML gives {show(answer.value)}")
        elif answer.unsupported and value is not None:
            differs.append(f"reading {n}: the provider has {show(value)}, NVML supports none")
    return judged(
        check,
        subject,
        failed=failed,
        differs=differs,
        unsupported=unsupported,
        provider=_provider(theirs, show),
        nvml=_values(raw, show),
    )


def check_utilization(index: int, first: Reading, second: Reading) -> Check:
    """Whole-GPU utilisation (a GPU without MIG), read twice ``interval`` apart."""
    raw = [first.utilization[index], second.utilization[index]]
    theirs = [_attr(r.gpu(index), "utilization") for r in (first, second)]
    return _presence("utilisation", index, raw, theirs, _percent_of)


def check_power(index: int, first: Reading, second: Reading) -> Check:
    raw = [first.power[index], second.power[index]]
    theirs = [_attr(r.gpu(index), "power_watts") for r in (first, second)]
    return _presence("power", index, raw, [None if v is None else v * 1000 for v in theirs], _watts)


def check_energy(index: int, first: Reading, second: Reading) -> Check:
    """Total energy: NVML's counter never goes back, and the provider's reading of it lies
    between NVML's answers just before and just after."""
    raw = [
        first.energy_before[index],
        first.energy_after[index],
        second.energy_before[index],
        second.energy_after[index],
    ]
    theirs = [_attr(r.gpu(index), "energy_joules") for r in (first, second)]
    presence = _presence(
        "energy",
        index,
        [raw[0], raw[2]],
        [None if v is None else v * 1000 for v in theirs],
        _joules,
    )
    if presence.verdict != "ok":
        return presence
    counter = [int(a.value) for a in raw if a.ok]
    differs = []
    if len(counter) == len(raw) and counter != sorted(counter):
        differs.append(f"NVML's energy counter went back ({', '.join(map(str, counter))} mJ)")
    for n, (value, low, high) in enumerate(zip(theirs, raw[0::2], raw[1::2], strict=True), start=1):
        if value is None or not (low.ok and high.ok):
            continue
        lo, hi = int(low.value) / 1000, int(high.value) / 1000
        if not lo - ENERGY_SLACK_J <= value <= hi + ENERGY_SLACK_J:
            differs.append(
                f"reading {n}: the provider's {value:.3f} J is outside NVML's "
                f"{lo:.3f}..{hi:.3f} J read around it"
            )
    gained = f" (+{(counter[-1] - counter[0]) / 1000:.1f} J)" if len(counter) == len(raw) else ""
    return judged(
        "energy",
        gpu_subject(index),
        differs=differs,
        provider=presence.provider,
        nvml=_values([raw[0], raw[2]], _joules) + gained,
    )


def check_gpm(raw: RawGpu, support: Answer, sm: Mapping[int, Answer], provider: Answer) -> Check:
    """MIG utilisation from GPM: per GPU instance, NVML's SM utilisation between two samples
    beside the provider's (its second call; the first only takes a sample)."""
    subject = gpu_subject(raw.index)
    theirs: dict[int, Any] = {}
    if provider.ok:
        for mig in raw.migs:
            uuid = text(mig.uuid.value) if mig.uuid.ok else None
            if uuid in provider.value and mig.gpu_instance_id.ok:
                theirs[int(mig.gpu_instance_id.value)] = provider.value[uuid]
    shown = (
        ", ".join(f"GI {gi} {_percent(v)}" for gi, v in sorted(theirs.items()))
        if provider.ok
        else provider.describe()
    )
    supported = support.ok and bool(getattr(support.value, "isSupportedDevice", 0))
    if not supported:
        differs = [
            f"GI {gi}: the provider has {_percent(v)}, NVML has no GPM here"
            for gi, v in sorted(theirs.items())
            if v is not None
        ]
        failed = [] if support.ok or support.unsupported else [f"GPM support: {support.error}"]
        return judged(
            "gpm",
            subject,
            failed=failed,
            differs=differs,
            unsupported=True,
            note="no GPM on this GPU: MIG activity is judged by processes",
            provider=shown or "-",
            nvml=support.describe(lambda _v: "not supported"),
        )
    failed = [f"GI {gi}: {a.error}" for gi, a in sorted(sm.items()) if a.error]
    if not provider.ok:
        failed.append(f"the provider: {provider.error}")
    differs = [
        f"GI {gi}: the provider has none, NVML gives {_percent(a.value)}"
        for gi, a in sorted(sm.items())
        if a.ok and theirs.get(gi) is None
    ]
    nvml = ", ".join(f"GI {gi} {a.describe(_percent)}" for gi, a in sorted(sm.items()))
    return judged(
        "gpm",
        subject,
        failed=failed,
        differs=differs,
        provider=shown or "-",
        nvml=nvml or "no GPU instances",
    )


def check_ecc(index: int, health: Mapping[str, Answer]) -> Check:
    """ECC mode and the error counts (the provider does not read them: NVML's side only)."""
    mode = health["ecc mode"]
    if not mode.ok:
        return judged(
            "ecc",
            gpu_subject(index),
            unsupported=mode.unsupported,
            failed=[] if mode.unsupported else [str(mode.error)],
            provider="-",
            nvml=mode.describe(),
        )
    current, pending = (int(v) for v in mode.value)
    counts = {k: a for k, a in health.items() if "corrected" in k}
    failed = [f"{k}: {a.error}" for k, a in counts.items() if a.error and not a.unsupported]

    def count(key: str) -> str:
        return _number(counts[key]) if key in counts else "-"

    nvml = (
        f"{'on' if current else 'off'}; uncorrected {count('uncorrected volatile')} "
        f"(aggregate {count('uncorrected aggregate')}), corrected "
        f"{count('corrected volatile')} (aggregate {count('corrected aggregate')})"
    )
    note = "" if current == pending else "an ECC mode change is pending (needs a reboot)"
    return judged("ecc", gpu_subject(index), failed=failed, note=note, provider="-", nvml=nvml)


def check_clocks(index: int, health: Mapping[str, Answer]) -> Check:
    """SM and memory clocks, now and at most (NVML's side only)."""
    clocks = {k: a for k, a in health.items() if k in CLOCKS}
    failed = [f"{k}: {a.error}" for k, a in clocks.items() if a.error and not a.unsupported]
    unsupported = all(a.unsupported for a in clocks.values())
    nvml = (
        "not supported"
        if unsupported
        else f"SM {_number(clocks['SM clock'])}/{_number(clocks['SM max'])} MHz, memory "
        f"{_number(clocks['memory clock'])}/{_number(clocks['memory max'])} MHz (now/max)"
    )
    return judged(
        "clocks",
        gpu_subject(index),
        failed=failed,
        unsupported=unsupported,
        provider="-",
        nvml=nvml,
    )


def _number(answer: Answer) -> str:
    """A count or clock in a short cell: the number, ``n/a`` (not supported) or ``error``."""
    if answer.ok:
        return str(int(answer.value))
    return "n/a" if answer.unsupported else "error"


def _attr(gpu: Gpu | None, name: str) -> Any:
    return None if gpu is None else getattr(gpu, name, None)


def _percent(value: Any) -> str:
    return "unknown" if value is None else f"{float(value):.0f}%"


def _percent_of(value: Any) -> str:
    """A utilisation: NVML's structure (``.gpu``) or the provider's number."""
    return _percent(getattr(value, "gpu", value))


def _watts(milliwatts: Any) -> str:
    return f"{float(milliwatts) / 1000:.1f} W"


def _joules(millijoules: Any) -> str:
    return f"{float(millijoules) / 1000:.0f} J"
