"""``ds01 gpu status``: the simulated host as a table and as JSON, through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pynvml
import pytest
import yaml
from click.testing import CliRunner

from ds01_core.transports.cli import CliState, cli
from ds01_core.transports.cli.gpu_cmd import gpu
from tests.helpers.fake_pynvml import a30_fake

GIB = 1024**3


def write_config(tmp_path: Path, **gpu_section: object) -> Path:
    config = {
        "paths": {
            "state_dir": str(tmp_path / "state"),
            "log_dir": str(tmp_path / "log"),
            "runtime_dir": str(tmp_path / "run"),
        },
        "gpu": {"backend": "simulated", **gpu_section},
    }
    path = tmp_path / "ds01.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_status(config: Path, *args: str) -> str:
    result = CliRunner().invoke(
        cli, ["--config", str(config), "--no-plugins", "gpu", "status", *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_json_shows_the_simulated_host_with_mig_slots_and_weights(tmp_path: Path) -> None:
    data = json.loads(run_status(write_config(tmp_path), "--json"))
    assert data["provider"] == "simulated"
    assert "DGX-A100" in data["description"]
    gpus = data["gpus"]
    assert len(gpus) == 8
    assert [g["mig_enabled"] for g in gpus] == [False] * 4 + [True] * 4
    gpu5 = gpus[5]
    assert gpu5["total_slices"] == 7
    assert [(s["slot_id"], s["profile"], s["weight"]) for s in gpu5["slots"]] == [
        ("5.2", "3g.40gb", 3 / 7),
        ("5.3", "2g.20gb", 2 / 7),
        ("5.4", "2g.20gb", 2 / 7),
    ]
    mig = gpu5["slots"][1]
    assert mig["kind"] == "mig"
    assert mig["compute_slices"] == 2
    assert mig["legacy_uuid"] == f"MIG-{gpu5['uuid']}/3/0"
    assert mig["utilization"] is None
    assert mig["processes"] == [{"pid": 4200022, "used_memory": 15 * GIB}]
    whole = gpus[0]["slots"][0]
    assert (whole["kind"], whole["weight"], whole["uuid"]) == ("gpu", 1.0, gpus[0]["uuid"])
    assert gpus[0]["power_watts"] == pytest.approx(386.2)


def test_json_includes_processes_from_the_processes_file(tmp_path: Path) -> None:
    procs = tmp_path / "procs.yaml"
    procs.write_text(yaml.safe_dump([{"pid": os.getpid(), "slot": "6.1", "used_memory": "2g"}]))
    config = write_config(tmp_path, simulated={"processes_file": str(procs)})
    data = json.loads(run_status(config, "--json"))
    slot = next(s for s in data["gpus"][6]["slots"] if s["slot_id"] == "6.1")
    assert slot["processes"] == [{"pid": os.getpid(), "used_memory": 2 * GIB}]
    assert slot["memory_used"] == 2 * GIB


def test_table_names_the_provider_and_lists_every_slot(tmp_path: Path) -> None:
    lines = run_status(write_config(tmp_path)).splitlines()
    assert lines[0].startswith("GPU provider: simulated host (DGX-A100 topology from ")
    assert lines[1].split() == [
        "SLOT",
        "GPU",
        "PROFILE",
        "WEIGHT",
        "MEMORY",
        "UTIL",
        "PROCS",
        "OWNER",
        "CONTAINER",
        "SINCE",
    ]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert len(rows) == 19
    free = ["-", "-", "-"]  # nobody holds a slot: no owner, container, since
    assert rows["0"] == ["0", "A100-SXM4-80GB", "full", "1.00", "71/80G", "97%", "1", *free]
    assert rows["5.3"] == ["5.3", "A100-SXM4-80GB", "2g.20gb", "0.29", "15/20G", "-", "1", *free]
    assert rows["4.8"][3] == "0.14" and rows["4.8"][6] == "0"


def test_table_fits_a_narrow_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    lines = run_status(write_config(tmp_path)).splitlines()
    assert all(len(line) <= 80 for line in lines[1:])
    assert "…" in lines[2]  # the model column gave way
    assert lines[2].split()[6] == "1"


def test_status_works_on_the_command_group_alone(tmp_path: Path) -> None:
    state = CliState(str(write_config(tmp_path)), True)
    result = CliRunner().invoke(gpu, ["status", "--json"], obj=state)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["gpus"]) == 8


def test_backend_nvml_without_a_driver_says_unavailable_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = a30_fake()
    fake.fail("nvmlInit", pynvml.NVMLError_DriverNotLoaded)
    monkeypatch.setitem(sys.modules, "pynvml", fake.as_module())
    config = write_config(tmp_path, backend="nvml")
    result = CliRunner().invoke(cli, ["--config", str(config), "--no-plugins", "gpu", "status"])
    assert result.exit_code == 0, result.output
    assert "GPUs UNAVAILABLE" in result.output
    assert "NVML: NVML did not load: Driver Not Loaded" in result.output
    assert "Traceback" not in result.output


def test_ds01_gpu_status_json_as_a_command(tmp_path: Path) -> None:
    """The issue's "done when": the installed ``ds01`` shows the simulated host without GPUs."""
    ds01 = shutil.which("ds01") or pytest.fail("the ds01 command is not installed")
    env = {**os.environ, "DS01_CONFIG": str(write_config(tmp_path))}
    done = subprocess.run(
        [ds01, "--no-plugins", "gpu", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["provider"] == "simulated"
    weights = [s["weight"] for g in data["gpus"] for s in g["slots"] if s["kind"] == "mig"]
    assert len(weights) == 15
    assert sorted(set(weights)) == [1 / 7, 2 / 7, 3 / 7, 4 / 7]
