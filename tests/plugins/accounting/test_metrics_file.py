"""``ds01_accounting.metrics_file.publish``: the totals the exporter reads, in the core's telemetry
format (read back with ``read_process_telemetry``), 0600, atomically replaced, unknown CO₂ and
nonsense values left out, the carbon intensity asked lazily from ``ds01_accounting.carbon``
when not given, and an unwritable directory a warning, never an exception in the cycle."""

from __future__ import annotations

import json
import logging
import math
import stat
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from ds01_accounting.metrics_file import CO2, ENERGY, INTENSITY, PROCESS, publish
from ds01_core.api import read_process_telemetry
from ds01_core.framework.runtime import load_runtime
from tests.helpers.config import write_config


@pytest.fixture
def runtime(tmp_path: Path) -> Any:
    return load_runtime(str(write_config(tmp_path, {})))


def snapshot(runtime: Any) -> Any:
    (found,) = [s for s in read_process_telemetry(runtime.config.paths.runtime_dir)
                if s.process == PROCESS]  # fmt: skip
    return found


def test_the_totals_are_written_for_the_exporter(runtime: Any) -> None:
    totals = {"ds01ta": (3.6e6, 400.0), "ds01tb": (1.0e6, None), "bad": (math.nan, -1.0)}
    publish(runtime, totals, intensity=250.0)
    snap = snapshot(runtime)
    assert snap.counters[ENERGY].labels == ("user",)
    assert snap.counters[ENERGY].values == {("ds01ta",): 3.6e6, ("ds01tb",): 1.0e6}
    assert snap.counters[CO2].values == {("ds01ta",): 400.0}  # unknown and negative: left out
    assert snap.gauges[INTENSITY].values == {(): 250.0}
    path = Path(runtime.config.paths.runtime_dir) / "telemetry" / "accounting.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    publish(runtime, {"ds01ta": (7.2e6, 800.0)}, intensity=240.0)  # replaced, not merged
    snap = snapshot(runtime)
    assert snap.counters[ENERGY].values == {("ds01ta",): 7.2e6}
    assert snap.gauges[INTENSITY].values == {(): 240.0}


def test_the_intensity_is_asked_from_the_carbon_module_when_not_given(
    runtime: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The contract with the carbon worker's ``ds01_accounting.carbon.intensity_now(runtime)``
    (an object with ``grams_per_kwh``); stood in for here so that this test does not depend on
    a provider; a provider that raises costs the gauge, nothing else."""
    carbon = types.ModuleType("ds01_accounting.carbon")
    asked: list[Any] = []

    def intensity_now(rt: Any) -> Any:
        asked.append(rt)
        return types.SimpleNamespace(grams_per_kwh=180.5)

    carbon.intensity_now = intensity_now  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ds01_accounting.carbon", carbon)
    publish(runtime, {"ds01ta": (1.0, 2.0)})
    assert asked == [runtime]
    assert snapshot(runtime).gauges[INTENSITY].values == {(): 180.5}

    def failing(rt: Any) -> Any:
        raise RuntimeError("provider down")

    carbon.intensity_now = failing  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING):
        publish(runtime, {"ds01ta": (1.0, 2.0)})
    assert "provider down" in caplog.text
    snap = snapshot(runtime)
    assert snap.gauges[INTENSITY].values == {} and snap.counters[ENERGY].values


def test_an_unwritable_directory_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    runtime = types.SimpleNamespace(
        config=types.SimpleNamespace(paths=types.SimpleNamespace(runtime_dir=str(blocker)))
    )
    with caplog.at_level(logging.WARNING):
        publish(runtime, {"ds01ta": (1.0, 1.0)}, intensity=100.0)
    assert "could not write the accounting metrics" in caplog.text


def test_the_file_is_the_core_telemetry_format(runtime: Any) -> None:
    publish(runtime, {"ds01ta": (5.0, 1.0)}, intensity=100.0)
    path = Path(runtime.config.paths.runtime_dir) / "telemetry" / "accounting.json"
    data = json.loads(path.read_text())
    assert data["process"] == "accounting" and data["schema_version"] == 1
    assert data["gauges"][INTENSITY]["values"] == [[[], 100.0]]
