"""Fixtures for ds01-cgroups: fake cgroup trees (v1 and v2), a fake sysfs, a fake engine, a
recording writer and command runner, and runtimes with the plugin registered."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cgroups_helpers import FakeDocker, Recorder, make_sysfs

import ds01_cgroups
from ds01_cgroups.enforcer import Enforcer, install
from ds01_core.framework.runtime import Runtime, load_runtime


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def fake_docker() -> FakeDocker:
    return FakeDocker()


V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "blkio")


@pytest.fixture
def v1_root(tmp_path: Path) -> Path:
    """A fake v1 hierarchy: one directory per controller, with the root's files."""
    root = tmp_path / "cgroup-v1"
    for controller in V1_CONTROLLERS:
        (root / controller).mkdir(parents=True)
    (root / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (root / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    return root


@pytest.fixture
def v2_root(tmp_path: Path) -> Path:
    """A fake v2 root: controllers offered, only cpuset and cpu enabled for children."""
    root = tmp_path / "cgroup-v2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.subtree_control").write_text("cpuset cpu\n")
    return root


@pytest.fixture
def fake_sys(tmp_path: Path) -> Path:
    return make_sysfs(tmp_path)


@pytest.fixture
def plugin_runtime(
    tmp_config: Callable[..., Path], fake_docker: FakeDocker, recorder: Recorder
) -> Iterator[Callable[..., tuple[Runtime, Enforcer]]]:
    """``plugin_runtime(extra_config, **enforcer_kwargs) -> (runtime, enforcer)``: a runtime
    with only the built-ins and ds01-cgroups, its enforcer on the fake engine and the
    recorder."""
    made: list[Runtime] = []

    def make(extra: Mapping[str, Any] | None = None, **kwargs: Any) -> tuple[Runtime, Enforcer]:
        config = tmp_config(extra or {})
        runtime = load_runtime(
            str(config), no_plugins=True, extra_plugins=(("cgroups", ds01_cgroups),)
        )
        made.append(runtime)
        runtime.__dict__["docker"] = fake_docker  # the built-in detector reads it too
        kwargs.setdefault("docker", fake_docker)
        kwargs.setdefault("runner", recorder.run)
        kwargs.setdefault("write", recorder.write)
        return runtime, install(runtime, **kwargs)

    yield make
    for runtime in made:
        runtime.close()
