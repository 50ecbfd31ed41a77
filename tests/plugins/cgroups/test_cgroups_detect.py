"""Driver and version: from docker info, pinned by the configuration, or from the file system."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ds01_cgroups.config import CgroupsConfig
from ds01_cgroups.detect import DetectionError, HostCgroups, detect_host
from ds01_core.domain.config.checks import host_cpu_count


def info(**facts: Any) -> Any:
    return lambda: facts


def failing() -> Any:
    raise ConnectionError("engine down")


def test_from_docker_info() -> None:
    host = detect_host(
        CgroupsConfig(),
        info(CgroupDriver="systemd", CgroupVersion="2", DockerRootDir="/srv/docker", NCPU=96),
    )
    assert host == HostCgroups("systemd", "v2", "/srv/docker", 96)


def test_the_configuration_wins() -> None:
    host = detect_host(
        CgroupsConfig(driver="cgroupfs", version="v1"),
        info(CgroupDriver="systemd", CgroupVersion="2"),
    )
    assert (host.driver, host.version) == ("cgroupfs", "v1")


def test_version_falls_back_to_the_file_system(tmp_path: Path) -> None:
    config = CgroupsConfig(cgroup_fs=str(tmp_path))
    assert detect_host(config, info(CgroupDriver="cgroupfs")).version == "v1"
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert detect_host(config, info(CgroupDriver="cgroupfs")).version == "v2"


def test_no_engine_and_no_configured_driver_is_an_error() -> None:
    with pytest.raises(DetectionError, match=r"set plugins\.cgroups\.driver"):
        detect_host(CgroupsConfig(), failing)


def test_no_engine_with_everything_configured_works() -> None:
    host = detect_host(CgroupsConfig(driver="systemd", version="v2"), failing)
    assert host == HostCgroups("systemd", "v2", None, host_cpu_count())


def test_the_real_engine_if_any() -> None:
    """On this machine (when an engine answers): the facts the plugin will work with."""
    from ds01_core.domain.docker_engine import DockerAdapter

    adapter = DockerAdapter.from_env()
    if not adapter.ping():
        pytest.skip("no Docker engine")
    host = detect_host(CgroupsConfig(), adapter.info)
    assert host.driver in ("cgroupfs", "systemd") and host.version in ("v1", "v2")
    assert host.docker_root and host.docker_root.startswith("/")
    assert host.cpus == adapter.info()["NCPU"]
