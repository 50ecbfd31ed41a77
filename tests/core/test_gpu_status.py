"""``ds01 gpu status`` when NVML cannot read everything: each GPU's health, unknown processes."""

from __future__ import annotations

import json
from pathlib import Path

import pynvml
from click.testing import CliRunner

from ds01_core.transports.cli import CliState
from ds01_core.transports.cli.gpu_cmd import gpu
from tests.core.test_cli_gpu import write_config


def degraded_state(tmp_path: Path) -> CliState:
    """A CLI whose simulated GPU 5 answers NoPermission to every process query."""
    state = CliState(str(write_config(tmp_path)), True)
    state.runtime.gpu.nvml.faults.process_errors[5] = pynvml.NVMLError_NoPermission
    return state


def test_json_shows_each_gpus_health_and_unknown_processes(tmp_path: Path) -> None:
    result = CliRunner().invoke(gpu, ["status", "--json"], obj=degraded_state(tmp_path))
    assert result.exit_code == 0, result.output
    gpus = json.loads(result.output)["gpus"]
    assert gpus[4]["health"] == "ok"
    assert gpus[5]["health"].startswith("degraded: nvmlDeviceGetComputeRunningProcesses: MIG-")
    assert "Insufficient Permissions" in gpus[5]["health"]
    assert [s["processes"] for s in gpus[5]["slots"]] == [None, None, None]  # unknown, not []
    assert gpus[4]["slots"][0]["processes"] is not None


def test_table_marks_a_degraded_gpu_and_its_unknown_process_counts(tmp_path: Path) -> None:
    result = CliRunner().invoke(gpu, ["status"], obj=degraded_state(tmp_path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].startswith("GPU 5 degraded: nvmlDeviceGetComputeRunningProcesses: MIG-")
    assert not any(line.startswith("GPU 4 ") for line in lines)
    rows = {line.split()[0]: line.split() for line in lines[3:]}
    assert rows["5.3"][6] == "?" and rows["0"][6] == "1"


def test_a_healthy_host_has_no_degraded_line(tmp_path: Path) -> None:
    state = CliState(str(write_config(tmp_path)), True)
    result = CliRunner().invoke(gpu, ["status", "--json"], obj=state)
    assert {g["health"] for g in json.loads(result.output)["gpus"]} == {"ok"}
