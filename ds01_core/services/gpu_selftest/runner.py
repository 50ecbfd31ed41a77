"""One self-test run: open NVML read-only, read twice ``interval`` apart, compare, report.

:func:`run_selftest` is a generator: it yields progress lines while it reads (the wait between
the two readings is the long part) and the :class:`~.report.Report` last, so the service can
stream progress to the caller. Whatever happens, NVML is shut down again and every GPM sample
taken is freed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from ds01_core.domain.config import GpuConfig
from ds01_core.domain.gpu.nvml import NvmlProvider
from ds01_core.services.gpu_selftest import checks_layout as layout
from ds01_core.services.gpu_selftest import checks_readings as readings
from ds01_core.services.gpu_selftest import raw as rawmod
from ds01_core.services.gpu_selftest.answers import Answer, ask, call
from ds01_core.services.gpu_selftest.checks_telemetry import (
    check_event_sets,
    check_telemetry,
    read_sensors,
)
from ds01_core.services.gpu_selftest.raw import RawGpu
from ds01_core.services.gpu_selftest.readonly import ReadOnlyNvml
from ds01_core.services.gpu_selftest.report import Check, Report, judged
from ds01_core.services.gpu_selftest.smi import check_smi, run_smi

Smi = Callable[[], tuple[list[str] | None, str | None]]


#: where the device nodes (``/dev/nvidia<minor>``) of a real host are
DEV_DIR = "/dev"


def open_nvml(gpu: GpuConfig) -> tuple[Any, str, str | None]:
    """(the NVML to test, the backend's name, the device directory to check minor numbers in).

    ``gpu.backend: simulated`` tests a fresh simulated host of the configured topology; any
    other backend tests the real library (the self-test exists to look at the real thing, so
    ``auto`` never falls back to the simulated host here). None when pynvml is missing.
    """
    if gpu.backend == "simulated":
        # lazy: only a simulated configuration loads the simulated host and its YAML reader
        from ds01_core.domain.gpu.simulated import (
            FaultsFile,
            ProcessesFile,
            SimulatedNvml,
            load_topology,
        )

        host = load_topology(gpu.simulated.topology)
        files = gpu.simulated.processes_file
        extra = ProcessesFile(files, host) if files is not None else None
        faults = gpu.simulated.faults_file
        source = FaultsFile(faults, len(host.gpus)).poll if faults is not None else None
        nvml = SimulatedNvml(host, extra_processes=extra, faults_source=source)
        return nvml, "simulated", None
    try:
        import pynvml
    except ImportError:  # pragma: no cover - nvidia-ml-py is a dependency
        return None, gpu.backend, DEV_DIR
    return pynvml, gpu.backend, DEV_DIR


def run_selftest(
    nvml: Any,
    *,
    interval: float,
    backend: str,
    dev_dir: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    smi: Smi | None = None,
) -> Iterator[str | Report]:
    """Progress lines, then the report. ``nvml`` is wrapped read-only unless it already is a
    :class:`ReadOnlyNvml`; ``smi`` gives ``nvidia-smi -L`` (default: run it, except on the
    simulated host, whose GPUs no nvidia-smi knows)."""
    if nvml is None:
        failed = judged(
            "nvml", "host", failed=["the pynvml module is missing: install nvidia-ml-py"]
        )
        yield Report(backend, interval, (failed,))
        return
    nv = nvml if isinstance(nvml, ReadOnlyNvml) else ReadOnlyNvml(nvml)
    run = _Run(nv, interval, dev_dir)
    try:
        yield from run.read(sleep)
    finally:
        run.close()
    for leak in (check_gpm_samples(nv), check_event_sets(nv)):
        if leak is not None:
            run.checks.append(leak)
    if smi is None and backend == "simulated":
        smi_check = judged(
            "nvidia-smi -L",
            "host",
            unsupported=True,
            provider="-",
            note="not compared: the simulated host",
            nvml="-",
        )
        lines: list[str] = []
    else:
        yield "nvidia-smi -L"
        lines_or_none, problem = (smi or run_smi)()
        smi_check = check_smi(run.raw, lines_or_none, problem)
        lines = lines_or_none or []
    yield Report(
        backend,
        interval,
        (*run.checks, smi_check),
        unsupported_calls=nv.unsupported(),
        calls=len(nv.calls),
        nvidia_smi=tuple(lines),
        mig_layout=tuple(layout.mig_layout(run.raw)),
    )


def check_gpm_samples(nv: ReadOnlyNvml) -> Check | None:
    """Every GPM sample taken (the provider's and the self-test's) is freed once both are done:
    counted from the calls made. None when no sample was taken."""
    taken = sum(1 for c in nv.calls if (c.name, c.outcome) == ("nvmlGpmSampleAlloc", "ok"))
    freed = sum(1 for c in nv.calls if (c.name, c.outcome) == ("nvmlGpmSampleFree", "ok"))
    if not taken:
        return None
    counts = f"{taken} taken, {freed} freed"
    differs = []
    if freed < taken:
        differs.append(f"{taken - freed} GPM samples still allocated after the provider closed")
    return judged("gpm samples", "host", differs=differs, provider="-", nvml=counts)


class _Run:
    """The state of one run: NVML's raw answers, the provider, GPM samples to free."""

    def __init__(self, nv: ReadOnlyNvml, interval: float, dev_dir: str | None):
        self.nv = nv
        self.interval = interval
        self.dev_dir = dev_dir
        self.raw: list[RawGpu] = []
        self.checks: list[Check] = []
        self.provider: Answer = Answer(error="not opened")
        self.telemetry: Answer = Answer(error="not read")
        self.samples: dict[tuple[int, int], Any] = {}
        self.initialised = False

    def read(self, sleep: Callable[[float], None]) -> Iterator[str]:
        nv = self.nv
        yield "opening NVML read-only"
        init = ask(nv, "nvmlInit")
        if not init.ok:
            self.checks.append(judged("nvml", "host", failed=[f"NVML did not load: {init.error}"]))
            return
        self.initialised = True
        system = rawmod.read_system(nv)
        count = int(system["count"].value) if system["count"].ok else 0
        self.raw = [rawmod.read_gpu(nv, index) for index in range(count)]
        self.provider = call(NvmlProvider, nv)
        self.checks.append(layout.check_system(system, self.provider))
        provider = self.provider.value if self.provider.ok else None
        yield f"first reading of {count} GPUs"
        first = self._round(provider)
        processes = self._processes(provider)
        support = self._gpm_first()
        mig_util = self._mig_utilization(provider)
        yield f"waiting {self.interval:g} s"
        sleep(self.interval)
        yield "second reading"
        second = self._round(provider)
        sm = self._gpm_second()
        mig_util = self._mig_utilization(provider)
        yield "telemetry, ECC and clocks"
        self.telemetry = call(provider.telemetry) if provider is not None else self.provider
        self._compare(first, second, processes, support, sm, mig_util)

    def _round(self, provider: NvmlProvider | None) -> readings.Reading:
        nv, handles = self.nv, self._handles()
        energy = "nvmlDeviceGetTotalEnergyConsumption"
        before = {i: ask(nv, energy, h) for i, h in handles.items()}
        gpus = call(provider.gpus) if provider is not None else self.provider
        return readings.Reading(
            gpus=gpus,
            energy_before=before,
            energy_after={i: ask(nv, energy, h) for i, h in handles.items()},
            utilization={
                i: ask(nv, "nvmlDeviceGetUtilizationRates", h) for i, h in handles.items()
            },
            power={i: ask(nv, "nvmlDeviceGetPowerUsage", h) for i, h in handles.items()},
        )

    def _mig_utilization(self, provider: NvmlProvider | None) -> Answer:
        """The provider's MIG utilisation (GPM); its first call only takes samples."""
        reader = getattr(provider, "mig_utilization", None)
        if reader is None:
            return self.provider if provider is None else Answer(unsupported=True)
        return call(reader)

    def _processes(self, provider: NvmlProvider | None) -> dict[str, Any]:
        """Each leaf's processes from NVML before and after the provider's listing."""
        leaves = [(g, uuid, h) for g in self.raw for uuid, h in g.leaves()]
        before = {uuid: rawmod.read_processes(self.nv, h) for _g, uuid, h in leaves}
        listing = call(provider.processes) if provider is not None else self.provider
        after = {uuid: rawmod.read_processes(self.nv, h) for _g, uuid, h in leaves}
        return {"leaves": leaves, "before": before, "after": after, "listing": listing}

    def _gpm_first(self) -> dict[int, Answer]:
        support = {}
        for g in self.raw:
            if not g.mig_enabled:
                continue
            support[g.index] = ask(self.nv, "nvmlGpmQueryDeviceSupport", g.handle.value)
            if not (support[g.index].ok and support[g.index].value.isSupportedDevice):
                continue
            for gi in self._instances(g):
                taken = rawmod.gpm_sample(self.nv, g.handle.value, gi)
                self.samples[(g.index, gi)] = taken
        return support

    def _gpm_second(self) -> dict[int, dict[int, Answer]]:
        found: dict[int, dict[int, Answer]] = {}
        for (index, gi), first in list(self.samples.items()):
            g = self.raw[index]
            second = rawmod.gpm_sample(self.nv, g.handle.value, gi)
            if first.ok and second.ok:
                found.setdefault(index, {})[gi] = rawmod.gpm_sm_utilization(
                    self.nv, first.value, second.value
                )
                rawmod.free_sample(self.nv, second.value)
            else:
                found.setdefault(index, {})[gi] = first if not first.ok else second
                if second.ok:
                    rawmod.free_sample(self.nv, second.value)
            if first.ok:
                rawmod.free_sample(self.nv, first.value)
            del self.samples[(index, gi)]
        return found

    def _compare(
        self,
        first: readings.Reading,
        second: readings.Reading,
        processes: dict[str, Any],
        support: dict[int, Answer],
        sm: dict[int, dict[int, Answer]],
        mig_util: Answer,
    ) -> None:
        add = self.checks.append
        add(layout.check_gpus(self.raw, first.gpus))
        for g in self.raw:
            add(layout.check_identity(g, first.gpus))
            if not g.handle.ok:
                continue
            add(layout.check_minor(g, first.gpus, self.dev_dir))
            if first.gpu(g.index) is not None:  # a GPU left out is named once, by identity
                add(layout.check_memory(g, first.gpus))
                add(layout.check_mig(g, first.gpus))
                if g.mig_enabled:
                    add(readings.check_gpm(g, support[g.index], sm.get(g.index, {}), mig_util))
                else:
                    add(readings.check_utilization(g.index, first, second))
                add(readings.check_power(g.index, first, second))
                add(readings.check_energy(g.index, first, second))
            health = rawmod.read_health(self.nv, g.handle.value)
            add(readings.check_ecc(g.index, health))
            add(readings.check_clocks(g.index, health))
            add(check_telemetry(g.index, self.telemetry, read_sensors(self.nv, g.handle.value)))
        for g, uuid, _h in processes["leaves"]:
            subject = layout.gpu_subject(g.index)
            mig = next((m for m in g.migs if m.uuid.ok and rawmod.text(m.uuid.value) == uuid), None)
            if mig is not None:
                subject = layout.mig_subject(g.index, mig)
            add(
                layout.check_processes(
                    subject,
                    uuid,
                    processes["before"][uuid],
                    processes["after"][uuid],
                    processes["listing"],
                )
            )

    def _handles(self) -> dict[int, Any]:
        return {g.index: g.handle.value for g in self.raw if g.handle.ok}

    @staticmethod
    def _instances(g: RawGpu) -> list[int]:
        return sorted({int(m.gpu_instance_id.value) for m in g.migs if m.gpu_instance_id.ok})

    def close(self) -> None:
        """Free what is still held, close the provider's session, shut NVML down."""
        for sample in self.samples.values():
            if sample.ok:
                rawmod.free_sample(self.nv, sample.value)
        self.samples.clear()
        if self.provider.ok:
            call(self.provider.value.close)
        if self.initialised:
            ask(self.nv, "nvmlShutdown")
            self.initialised = False
