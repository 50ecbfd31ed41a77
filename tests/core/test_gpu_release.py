"""``ds01 admin gpu release``: every ds01 process lets go of NVML for a MIG switch or a GPU reset,
allocates nothing meanwhile, and opens a fresh session afterwards; a session whose GPUs were all
lost under it (a reset, a driver reload) is reopened; a user's CLI never opens NVML itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pynvml
import pytest
from click.testing import CliRunner

from ds01_core.domain.gpu import access as access_module
from ds01_core.domain.gpu.access import GpuUnavailableError
from ds01_core.domain.gpu.simulated import load_topology
from ds01_core.domain.gpu.simulated.nvml import SimulatedNvml
from ds01_core.domain.model import GpuRequest
from ds01_core.domain.state.allocations import AllocationRefused, Allocations
from ds01_core.framework.runtime import Runtime, load_runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.errors import Forbidden, Invalid
from ds01_core.services.operations import ServiceContext
from ds01_core.transports.cli import cli
from tests.helpers.config import write_config
from tests.helpers.fake_pynvml import FakeNvml
from tests.helpers.servers import running_api
from tests.helpers.waiting import wait_until

ADMIN = Caller("root", 0, True)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """NVML over the simulated DGX-A100, as ``pynvml`` (the provider is named ``nvml``)."""
    nvml = FakeNvml(load_topology())
    monkeypatch.setitem(sys.modules, "pynvml", nvml.as_module())
    monkeypatch.setattr(access_module, "RELEASE_POLL", 0.05)
    return nvml


@pytest.fixture
def config(tmp_path: Path) -> str:
    return str(write_config(tmp_path, {"gpu": {"backend": "nvml"}}))


@pytest.fixture
def runtime_of() -> Iterator[Callable[[str], Runtime]]:
    """Runtimes ("processes") on one configuration, closed at the end (their watchers stop)."""
    made: list[Runtime] = []

    def make(config: str) -> Runtime:
        made.append(load_runtime(config, no_plugins=True))
        return made[-1]

    yield make
    for runtime in made:
        runtime.close()


def test_release_closes_every_session_refuses_allocation_and_resume_reopens(
    config: str, fake: FakeNvml, runtime_of: Callable[[str], Runtime]
) -> None:
    admin_side, daemon = runtime_of(config), runtime_of(config)
    assert len(daemon.gpu.slots()) > 0  # the daemon holds NVML, as it does all its life
    done = call(ServiceContext(admin_side, ADMIN), "admin.gpu.release", minutes=5, wait=0)
    assert done["by"] == "root" and done["released_until"].endswith("Z")
    # the daemon lets go without being asked anything (its watcher reads the release file)
    wait_until(lambda: fake.calls["nvmlShutdown"] == 1, 5, "the daemon's NVML session closed")
    with pytest.raises(AllocationRefused, match="GPUs unavailable: released by root"):
        Allocations(daemon).allocate(GpuRequest(user="alice", container="c1"))
    assert daemon.gpu_state()["state"] == "released"
    call(ServiceContext(admin_side, ADMIN), "admin.gpu.resume")
    assert len(daemon.gpu.slots()) > 0
    assert fake.calls["nvmlInit"] == 2  # a fresh session: new handles after the reset
    types = [e["event_type"] for e in daemon.events.read()]
    assert types.count("gpu.nvml_released") == 1 and types.count("gpu.nvml_resumed") == 1


def test_a_release_ends_by_itself_when_its_time_is_up(
    config: str, fake: FakeNvml, runtime_of: Callable[[str], Runtime]
) -> None:
    runtime = runtime_of(config)
    call(ServiceContext(runtime, ADMIN), "admin.gpu.release", minutes=0.05, wait=0)  # 3 s
    with pytest.raises(GpuUnavailableError, match="released by root"):
        runtime.gpu  # noqa: B018
    wait_until(lambda: runtime.gpu_state()["state"] != "released", 10, "the release ran out")
    assert len(runtime.gpu.gpus()) == 8


def test_release_is_for_admins_and_checks_its_duration(
    config: str, fake: FakeNvml, runtime_of: Callable[[str], Runtime]
) -> None:
    runtime = runtime_of(config)
    with pytest.raises(Forbidden):
        call(ServiceContext(runtime, Caller("alice", 1000, False)), "admin.gpu.release")
    with pytest.raises(Invalid, match="minutes must be between"):
        call(ServiceContext(runtime, ADMIN), "admin.gpu.release", minutes=0)
    assert not (Path(runtime.config.paths.runtime_dir) / access_module.RELEASE_FILE).exists()


def test_admin_gpu_commands_release_show_and_resume(config: str, fake: FakeNvml) -> None:
    base = ["--config", config, "--no-plugins", "admin", "gpu"]
    done = CliRunner().invoke(cli, [*base, "release", "--minutes", "5", "--wait", "0"])
    assert done.exit_code == 0, done.output
    assert "GPUs released until" in done.output
    shown = CliRunner().invoke(cli, [*base, "holders", "--json"])
    assert json.loads(shown.stdout)["access"]["state"] == "released"
    status = CliRunner().invoke(cli, ["--config", config, "--no-plugins", "gpu", "status"])
    assert "GPUs RELEASED" in status.output
    resumed = CliRunner().invoke(cli, [*base, "resume"])
    assert resumed.output.strip() == "GPUs resumed"


def test_a_session_whose_gpus_were_all_lost_is_reopened(
    config: str, fake: FakeNvml, runtime_of: Callable[[str], Runtime]
) -> None:
    """A GPU reset or driver reload under an open session: every handle answers GPU_IS_LOST;
    a new session (``nvmlInit`` again) gets handles that work."""
    runtime = runtime_of(config)
    assert len(runtime.gpu.gpus()) == 8
    fake.fail("*", pynvml.NVMLError_GpuIsLost)

    def init_after_reset() -> None:
        fake.heal()
        SimulatedNvml.nvmlInit(fake)

    fake.answer("nvmlInit", init_after_reset)
    assert runtime.gpu.gpus() == []  # the old session's handles are all lost
    assert len(runtime.gpu.gpus()) == 8  # reopened on the next use
    assert fake.calls["nvmlInit"] == 2


def test_the_cli_over_the_api_socket_never_loads_nvml(tmp_path: Path) -> None:
    """A user's ``ds01 gpu status`` asks ``ds01-api``; its own process imports no ``pynvml``."""
    ds01 = shutil.which("ds01") or pytest.fail("the ds01 command is not installed")
    trap = tmp_path / "trap"
    trap.mkdir()
    marker = tmp_path / "pynvml-imported"
    (trap / "pynvml.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\nraise ImportError('not here')\n"
    )
    config = write_config(tmp_path)
    with running_api(config) as sock:
        env = {**os.environ, "DS01_API_SOCKET": sock, "PYTHONPATH": str(trap)}
        done = subprocess.run(
            [ds01, "gpu", "status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["gpus"]) == 8
    assert not marker.exists()
