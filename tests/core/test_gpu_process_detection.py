"""The GPU process detector when NVML cannot read: unknown is not gone, an outage is no failure.

The simulated host lists this test's own PID (a real ``/proc`` entry) on slot 6.1 through its
processes file; its GPU 6 then answers NoPermission to process queries, or every GPU is
unavailable.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pynvml
import pytest
import yaml

from ds01_core.builtin import gpu_process_detector
from ds01_core.domain.gpu.access import GpuUnavailableError
from ds01_core.framework.runtime import Runtime, load_runtime

ME = os.getpid()


@pytest.fixture
def runtime(tmp_config, tmp_path: Path):
    procs = tmp_path / "procs.yaml"
    procs.write_text(yaml.safe_dump([{"pid": ME, "slot": "6.1", "used_memory": "1g"}]))
    config = tmp_config(
        {
            "gpu": {"simulated": {"processes_file": str(procs)}},
            "detection": {"process_confirm_cycles": 2},
        }
    )
    runtime = load_runtime(str(config))
    yield runtime
    runtime.close()


def detected(runtime: Runtime) -> set[int]:
    return {pid for w in gpu_process_detector.detect_workloads(runtime) for pid in w.pids}


def test_an_unread_slot_keeps_its_last_known_processes(runtime: Runtime, tmp_path: Path) -> None:
    detected(runtime)
    assert ME in detected(runtime)  # confirmed on the second cycle
    runtime.gpu.nvml.faults.process_errors[6] = pynvml.NVMLError_NoPermission
    assert ME in detected(runtime)  # unknown is not gone
    assert ME in detected(runtime)
    runtime.gpu.nvml.faults.process_errors.clear()
    (tmp_path / "procs.yaml").write_text("[]")
    assert ME not in detected(runtime)  # read again, and gone


def test_a_process_not_yet_seen_is_not_invented_for_an_unread_slot(runtime: Runtime) -> None:
    runtime.gpu.nvml.faults.process_errors[6] = pynvml.NVMLError_NoPermission
    assert ME not in detected(runtime) and ME not in detected(runtime)


def test_unavailable_gpus_give_no_processes_and_one_warning(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unavailable() -> None:
        raise GpuUnavailableError("NVML: NVML did not load: Driver Not Loaded")

    monkeypatch.setattr(runtime.gpu_access, "provider", unavailable)
    with caplog.at_level(logging.INFO, logger=gpu_process_detector.__name__):
        assert detected(runtime) == set()
        assert detected(runtime) == set()
        assert detected(runtime) == set()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Driver Not Loaded" in warnings[0].getMessage()
    monkeypatch.undo()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=gpu_process_detector.__name__):
        detected(runtime)
    assert "detected again" in caplog.text
