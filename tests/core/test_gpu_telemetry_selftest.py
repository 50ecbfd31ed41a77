"""The GPU self-test shows each GPU's telemetry beside NVML's own sensors, read-only, and says
whether the provider freed its XID event set: what an admin with a GPU runs to check it."""

from __future__ import annotations

from typing import Any

from ds01_core.domain.gpu.simulated import build_host, load_topology
from ds01_core.domain.gpu.simulated.health_faults import HealthFault
from ds01_core.domain.gpu.simulated.nvml import SimulatedNvml
from ds01_core.services.gpu_selftest.checks_telemetry import check_event_sets
from ds01_core.services.gpu_selftest.readonly import ReadOnlyNvml
from ds01_core.services.gpu_selftest.report import Check, Report
from ds01_core.services.gpu_selftest.runner import run_selftest
from tests.helpers.fake_pynvml import FakeNvml, a30_topology


def run(nvml: Any) -> Report:
    events = list(run_selftest(nvml, interval=0.01, sleep=lambda _s: None, backend="simulated"))
    report = events[-1]
    assert isinstance(report, Report)
    return report


def find(report: Report, check: str, subject: str) -> Check:
    return next(c for c in report.checks if (c.check, c.subject) == (check, subject))


def test_the_selftest_shows_every_gpus_telemetry_beside_nvmls_sensors() -> None:
    nvml = SimulatedNvml(load_topology(None))
    nvml.faults.health[2] = HealthFault(temperature=93, throttle=["hw_thermal"], xid=[79])
    report = run(nvml)
    assert report.passed, [c.text for c in report.checks if not c.passed]
    checks = [c for c in report.checks if c.check == "telemetry"]
    assert [c.subject for c in checks] == [f"GPU {i}" for i in range(8)]
    healthy = find(report, "telemetry", "GPU 0")
    assert healthy.provider == (
        "40 °C (slowdown 90 °C, shutdown 95 °C); 386.2 W of 400 W; "
        f"energy {healthy.provider.split('energy ')[1].split(';')[0]}; "
        "SM 1410 MHz, memory 1593 MHz; throttle none; "
        "ECC uncorrected 0 (aggregate 0), corrected 0 (aggregate 0); "
        "retired pages n/a/n/a pending n/a; remapped rows 0/0 pending no failed no; XIDs 0"
    )
    assert healthy.nvml == "40 °C (slowdown 90 °C, shutdown 95 °C); power limit 400 W"
    hot = find(report, "telemetry", "GPU 2")
    assert "93 °C" in hot.provider and "throttle hw_thermal" in hot.provider
    assert "XIDs 1 (last XID 79)" in hot.provider
    assert hot.nvml.startswith("93 °C")
    events = find(report, "xid events", "host")
    assert (events.verdict, events.nvml) == ("ok", "1 created, 1 freed")


def test_a_telemetry_reading_that_differs_from_nvml_is_named() -> None:
    fake = FakeNvml(build_host(a30_topology(), source="a30"))
    limits = iter([165_000, 150_000])  # the provider reads first, then the self-test
    fake.answer("nvmlDeviceGetEnforcedPowerLimit", lambda _h: next(limits), gpu=0)
    report = run(fake)
    check = find(report, "telemetry", "GPU 0")
    assert check.text == "differs: power limit: the provider's 165 W, NVML's 150 W"
    assert find(report, "telemetry", "GPU 1").verdict == "ok"


def test_an_event_set_left_open_is_named() -> None:
    wrapper = ReadOnlyNvml(SimulatedNvml(load_topology(None)))
    assert check_event_sets(wrapper) is None  # none created: nothing to say
    wrapper.nvmlInit()
    events = wrapper.nvmlEventSetCreate()
    left = check_event_sets(wrapper)
    assert left is not None and left.text == "differs: 1 XID event sets still open"
    wrapper.nvmlEventSetFree(events)
    freed = check_event_sets(wrapper)
    assert freed is not None and (freed.verdict, freed.nvml) == ("ok", "1 created, 1 freed")
