"""The faults file (``gpu.simulated.faults_file``): GPU faults for a running ds01, re-read when
the file changes; a bad one refused with its path and key while the last good faults stay."""

from __future__ import annotations

import ctypes
import json
import logging
import os
from pathlib import Path
from typing import Any

import pynvml
import pytest
import yaml

from ds01_core.domain.config import ConfigError, load_config
from ds01_core.domain.gpu import open_provider
from ds01_core.domain.gpu.nvml import NvmlProvider
from ds01_core.domain.gpu.nvml.xid import handle_key
from ds01_core.domain.gpu.simulated import FaultsFile, SimulatedProvider
from ds01_core.domain.gpu.simulated.health_faults import HealthFault
from ds01_core.domain.gpu.simulated.values import SimHandle
from ds01_core.services.gpu_selftest.runner import open_nvml


class Writer:
    """Writes a faults file, each version with a later modification time (as an admin's edits
    would have; two writes within one clock tick would otherwise look unchanged)."""

    def __init__(self, path: Path):
        self.path = path
        self.version = 0

    def __call__(self, data: Any, raw: str | None = None) -> None:
        text = raw if raw is not None else yaml.safe_dump(data)
        if self.path.suffix == ".json" and raw is None:
            text = json.dumps(data)
        self.path.write_text(text)
        self.version += 1
        stamp = 1_700_000_000_000_000_000 + self.version * 1_000_000_000
        os.utime(self.path, ns=(stamp, stamp))


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    return Writer(tmp_path / "faults.yaml")


@pytest.fixture
def provider(write: Writer) -> Any:
    provider = SimulatedProvider(faults_file=write.path)
    yield provider
    provider.close()


def test_the_faults_file_is_read_and_read_again_when_it_changes(
    write: Writer, provider: SimulatedProvider
) -> None:
    assert provider.telemetry()[0].temperature_c == 40.0  # no file yet: no fault
    write({"gpus": {0: {"temperature": 93, "throttle": ["hw_thermal"]}, 2: {"xid": [79]}}})
    got = provider.telemetry()
    assert (got[0].temperature_c, got[0].throttle_reasons) == (93.0, ("hw_thermal",))
    assert (got[2].xid_errors, got[2].last_xid) == (1, 79)
    write({"gpus": {1: {"ecc_uncorrected": 2}, 2: {"xid": [79, 48]}, 3: {"fell_off_bus": True}}})
    got = provider.telemetry()
    assert got[0].temperature_c == 40.0  # a fault removed is cleared
    assert got[1].ecc_volatile_uncorrected == 2
    assert (got[2].xid_errors, got[2].last_xid) == (2, 48)  # only the new XID
    assert got[3].fell_off_bus
    assert [g.index for g in provider.gpus()] == [0, 1, 2, 4, 5, 6, 7]  # lost: left out
    write.path.unlink()  # no file: no fault; counters that only grow stay
    got = provider.telemetry()
    assert not got[3].fell_off_bus and got[3].temperature_c == 40.0
    assert got[1].ecc_volatile_uncorrected == 2 and got[2].xid_errors == 2
    write({"gpus": {1: {"ecc_uncorrected": 0}}})  # a driver reload
    got = provider.telemetry()[1]
    assert (got.ecc_volatile_uncorrected, got.ecc_aggregate_uncorrected) == (0, 2)


def test_an_unchanged_file_is_not_parsed_again(write: Writer, provider: SimulatedProvider) -> None:
    write({"gpus": {4: {"remap_failure": True}}})
    assert provider.telemetry()[4].remapped_rows_failed is True
    assert provider.faults_file is not None
    parsed = provider.faults_file.poll  # every NVML call asks it; only a change parses
    assert parsed() is None
    provider.nvml.faults.health[4] = HealthFault()  # in-process changes stand until the file does
    assert provider.telemetry()[4].remapped_rows_failed is False


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"gpus": {0: {"temprature": 93}}}, "gpus[0].temprature: unknown key"),
        ({"gpus": {0: {"throttle": ["too_hot"]}}}, "gpus[0].throttle[0]: unknown reason 'too_hot'"),
        ({"gpus": {9: {"xid": [79]}}}, "gpus[9]: no GPU 9 on the simulated host (GPUs 0 to 7)"),
        ({"gpus": {1: {"xid": [0]}}}, "gpus[1].xid[0]: must be positive"),
        ({"gpus": {1: {"ecc_corrected": -1}}}, "gpus[1].ecc_corrected: cannot be negative"),
        ({"gpus": {1: {"temperature": "hot"}}}, "gpus[1].temperature: expected a number"),
        ({"gpu": {}}, "gpu: unknown key"),
        ("gpus: {0: [", "not valid YAML at line 1"),
    ],
)
def test_a_bad_faults_file_is_refused_with_its_path_and_key_and_the_last_good_faults_stay(
    write: Writer, provider: SimulatedProvider, caplog: pytest.LogCaptureFixture, content, problem
) -> None:
    write({"gpus": {0: {"temperature": 93}}})
    assert provider.telemetry()[0].temperature_c == 93.0
    caplog.set_level(logging.ERROR)
    if isinstance(content, str):
        write(None, raw=content)
    else:
        write(content)
    assert provider.telemetry()[0].temperature_c == 93.0  # the last good faults
    assert provider.faults_file is not None and provider.faults_file.error is not None
    assert f"{write.path}: " in provider.faults_file.error
    assert problem in provider.faults_file.error
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1  # once per version of the file, not on every call
    assert str(write.path) in logged[0] and problem in logged[0]
    write({"gpus": {0: {"temperature": 85}}})  # mended
    assert provider.telemetry()[0].temperature_c == 85.0
    assert provider.faults_file.error is None


def test_a_json_faults_file_names_gpus_by_string_keys(tmp_path: Path) -> None:
    write = Writer(tmp_path / "faults.json")
    write({"gpus": {"6": {"pending_retirement": True}}})
    with SimulatedProvider(faults_file=write.path) as provider:
        assert provider.telemetry()[6].remapped_rows_pending is True


def test_faults_file_alone_parses_what_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    faults = FaultsFile(path, gpu_count=2)
    assert faults.poll() is None  # missing from the start: nothing to change
    path.write_text("gpus: {1: {xid: [79, 48], fell_off_bus: true}}\n")
    assert faults.poll() == {1: HealthFault(xid=[79, 48], fell_off_bus=True)}
    path.unlink()
    assert faults.poll() == {}  # removed: no fault any more
    assert faults.poll() is None


def test_the_configured_faults_file_reaches_the_daemons_provider(tmp_config, tmp_path) -> None:
    write = Writer(tmp_path / "faults.yaml")
    write({"gpus": {5: {"temperature": 91, "xid": [31]}}})
    config = load_config(str(tmp_config({"gpu": {"simulated": {"faults_file": str(write.path)}}})))
    assert config.gpu.simulated.faults_file == str(write.path)
    provider = open_provider(config.gpu)
    try:
        got = provider.telemetry()[5]  # type: ignore[attr-defined]
    finally:
        provider.close()
    assert (got.temperature_c, got.last_xid) == (91.0, 31)


def test_a_relative_faults_file_is_refused_in_the_configuration(tmp_config) -> None:
    with pytest.raises(ConfigError, match=r"gpu\.simulated\.faults_file"):
        load_config(str(tmp_config({"gpu": {"simulated": {"faults_file": "faults.yaml"}}})))


def test_the_selftest_reads_the_configured_faults(tmp_config, tmp_path) -> None:
    write = Writer(tmp_path / "faults.yaml")
    write({"gpus": {0: {"fell_off_bus": True}}})
    config = load_config(str(tmp_config({"gpu": {"simulated": {"faults_file": str(write.path)}}})))
    nvml, backend, _dev = open_nvml(config.gpu)
    assert backend == "simulated"
    nvml.nvmlInit()
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.nvmlDeviceGetHandleByIndex(0)
    provider = NvmlProvider(nvml)
    try:
        assert provider.telemetry()[0].fell_off_bus
    finally:
        provider.close()
        nvml.nvmlShutdown()


def test_event_devices_match_by_address_not_by_pointer_object() -> None:
    first = ctypes.cast(0x1234, pynvml.c_nvmlDevice_t)
    second = ctypes.cast(0x1234, pynvml.c_nvmlDevice_t)
    assert first != second  # ctypes pointers compare by identity
    assert handle_key(first) == handle_key(second) == 0x1234
    assert handle_key(SimHandle(3)) == SimHandle(3)


def test_a_faults_file_that_cannot_be_looked_at_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "not-a-dir").write_text("")
    path = tmp_path / "not-a-dir" / "faults.yaml"  # stat: NotADirectoryError, on every call
    caplog.set_level(logging.ERROR)
    with SimulatedProvider(faults_file=path) as provider:
        provider.telemetry()
        assert provider.telemetry()[0].temperature_c == 40.0
        assert provider.faults_file is not None and provider.faults_file.error is not None
        assert provider.faults_file.error.startswith(f"{path}: cannot read: ")
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1 and str(path) in logged[0]


def test_a_gpu_back_between_the_listing_and_the_sensors_is_back_not_failing(
    write: Writer, provider: SimulatedProvider
) -> None:
    """One daemon cycle lists the GPUs, then reads their sensors: a GPU that was lost for the
    listing and answers the sensors is back, not "reads failing" for a cycle (a spurious
    ``degraded`` between ``unhealthy`` and ``ok``). A read failing for another reason stays."""
    write({"gpus": {3: {"fell_off_bus": True}}})
    provider.processes()  # the listing: GPU 3's reads fail, it is lost
    assert provider.health()[3].startswith("degraded: ") and "lost" in provider.health()[3]
    write({})
    assert not provider.telemetry()[3].fell_off_bus
    assert provider.health()[3] == "ok"
    assert set(provider.health().values()) == {"ok"}
