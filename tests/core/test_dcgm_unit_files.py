"""The shipped units that keep NVIDIA's dcgm-exporter alive for ds01, checked by systemd's own
parser and against ds01's defaults: restarted always, a start that does not answer fails, a
timer restarts one that hangs, and its job-mapping directory and address are the ones the
configuration and the scrape config use.

``systemd-analyze verify`` must exist: missing, these tests are skipped locally and fail under
``CI=true`` (scripts/ci/setup-systemd.sh installs it).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import yaml

from ds01_core.domain.config import Config
from tests.core.test_systemd_unit_files import tool, unit

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "packaging" / "systemd"
NAMES = [
    "ds01-dcgm-exporter.service",
    "ds01-dcgm-exporter-check.service",
    "ds01-dcgm-exporter-check.timer",
]
SCRAPE = ROOT / "plugins/prometheus/ds01_prometheus/shipped/prometheus/prometheus.yml"


def environment(name: str) -> dict[str, str]:
    """Every ``Environment=`` line (configparser would keep only the last one)."""
    lines = (UNITS / name).read_text().splitlines()
    pairs = [line.removeprefix("Environment=") for line in lines if line.startswith("Environment=")]
    return dict(pair.split("=", 1) for pair in pairs)


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """The three units as systemd parses them, dcgm-exporter replaced by a stand-in (verify
    checks that the programs exist); a warning fails too (a misspelt key is only a warning)."""
    verify = tool("systemd-analyze")
    stub = tmp_path / "bin" / "dcgm-exporter"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    for name in NAMES:
        text = (UNITS / name).read_text().replace("/usr/bin/dcgm-exporter", str(stub))
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [verify, "verify", "--man=no", *(str(tmp_path / name) for name in NAMES)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def test_the_exporter_is_restarted_always_and_a_start_must_answer() -> None:
    service = unit(UNITS / "ds01-dcgm-exporter.service")
    assert service["Service"]["Restart"] == "always"
    assert service["Unit"]["StartLimitIntervalSec"] == "0"
    assert (
        "/metrics" in service["Service"]["ExecStartPost"]
        and "urlopen" in service["Service"]["ExecStartPost"]
    )
    assert "exit 1" in service["Service"]["ExecStartPost"]


def test_a_timer_restarts_an_exporter_that_stops_answering() -> None:
    timer = unit(UNITS / "ds01-dcgm-exporter-check.timer")
    assert timer["Timer"]["OnUnitActiveSec"] == "1min"
    check = unit(UNITS / "ds01-dcgm-exporter-check.service")
    command = check["Service"]["ExecStart"]
    assert "/metrics" in command and "systemctl restart ds01-dcgm-exporter.service" in command
    same = environment("ds01-dcgm-exporter.service")["DCGM_EXPORTER_LISTEN"]
    assert environment("ds01-dcgm-exporter-check.service")["DCGM_EXPORTER_LISTEN"] == same


def test_its_settings_are_ds01s_defaults() -> None:
    """Job mapping into the default owner map, outside Kubernetes, with a collectors file, on
    the address the shipped scrape config's job ``dcgm`` scrapes."""
    env = environment("ds01-dcgm-exporter.service")
    assert Path(env["DCGM_HPC_JOB_MAPPING_DIR"]) == Config().allocation_owner_map_dir
    args = shlex.split(unit(UNITS / "ds01-dcgm-exporter.service")["Service"]["ExecStart"])
    assert args[0] == "/usr/bin/dcgm-exporter"
    assert "--kubernetes=false" in args
    assert args[args.index("-f") + 1] == "${DCGM_EXPORTER_COLLECTORS}"
    assert args[args.index("--hpc-job-mapping-dir") + 1] == "${DCGM_HPC_JOB_MAPPING_DIR}"
    assert args[args.index("-a") + 1] == "${DCGM_EXPORTER_LISTEN}"
    scrape = yaml.safe_load(SCRAPE.read_text())
    (job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == "dcgm"]
    assert job["static_configs"][0]["targets"] == [env["DCGM_EXPORTER_LISTEN"]]
