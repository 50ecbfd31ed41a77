"""Energy and CO₂ per user and the carbon intensity, from a real ``accounting.json`` (written by
the accounting plugin's :func:`ds01_accounting.metrics_file.publish`) to a scrape of the real
exporter over HTTP: the three metrics carry the file's figures, a user whose CO₂ is unknown
has energy but no CO₂, a newer file shows at the next scrape, and ``promtool check metrics``
accepts the page."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from ds01_accounting.metrics_file import publish
from ds01_core.cycle.pipeline import run_cycle
from ds01_core.framework.telemetry import telemetry_path
from ds01_prometheus.server import ExporterService
from tests.conftest import in_ci
from tests.plugins.prometheus.exporter_helpers import (
    QUIET,
    find,
    make_runtime,
    parse,
    running,
    scrape,
    value,
)

ENERGY, CO2 = "ds01_user_energy_joules_total", "ds01_user_co2_grams_total"
INTENSITY = "ds01_carbon_intensity_grams_per_kwh"


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        reason = "promtool is missing: bash scripts/ci/setup-monitoring.sh"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: this test must not be skipped)", pytrace=False)
        pytest.skip(reason)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def page(service: ExporterService) -> str:
    host, port = service.address
    status, _, body = scrape(f"http://{host}:{port}/metrics")
    assert status == 200
    return body.decode()


def test_the_accounting_figures_reach_a_scrape(tmp_path: Path) -> None:
    # the accounting plugin itself is off: only this test writes the file
    runtime = make_runtime(tmp_path, {"plugins": {"disabled": [*QUIET, "accounting"]}})
    publish(runtime, {"ds01ta": (7.2e6, 1440.0), "ds01tb": (3.6e6, None)}, intensity=212.5)
    path = telemetry_path(runtime.config.paths.runtime_dir, "accounting")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it names users
    run_cycle(runtime, workloads=[])
    with running(ExporterService(runtime, runtime.plugin_config("prometheus"))) as service:
        text = page(service)
        promtool_check(text)
        samples = parse(text)
        assert value(samples, ENERGY, user="ds01ta") == 7.2e6
        assert value(samples, ENERGY, user="ds01tb") == 3.6e6
        assert find(samples, CO2) == {frozenset({("user", "ds01ta")}): 1440.0}
        assert value(samples, INTENSITY) == 212.5
        assert f"# TYPE {ENERGY} counter" in text
        assert f"# TYPE {INTENSITY} gauge" in text
        # read at scrape time: the next cycle's file shows without another cycle here
        publish(runtime, {"ds01ta": (9.0e6, 1800.0), "ds01tb": (3.6e6, 720.0)}, intensity=190.0)
        samples = parse(page(service))
        assert value(samples, ENERGY, user="ds01ta") == 9.0e6
        assert value(samples, CO2, user="ds01tb") == 720.0
        assert value(samples, INTENSITY) == 190.0


def test_without_the_file_there_are_no_green_series(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, {"plugins": {"disabled": [*QUIET, "accounting"]}})
    run_cycle(runtime, workloads=[])
    with running(ExporterService(runtime, runtime.plugin_config("prometheus"))) as service:
        text = page(service)
    promtool_check(text)
    for name in (ENERGY, CO2, INTENSITY):
        assert name.removesuffix("_total") not in text


def test_the_accounting_plugin_writes_the_file_after_each_cycle(tmp_path: Path) -> None:
    """The accounting plugin's own ``cycle_finished`` publishes (no users yet: the families
    without samples), and the exporter serves them."""
    runtime = make_runtime(tmp_path)
    path = telemetry_path(runtime.config.paths.runtime_dir, "accounting")
    assert not path.exists()
    run_cycle(runtime, workloads=[])
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
    with running(ExporterService(runtime, runtime.plugin_config("prometheus"))) as service:
        text = page(service)
    promtool_check(text)
    assert f"# TYPE {ENERGY} counter" in text and f"# TYPE {CO2} counter" in text
