"""No invented GPUs on a GPU server: an NVML that does not start makes the GPUs *unavailable*.

The simulated host answers only where there is no NVIDIA driver or device at all; elsewhere a
start-up failure is retried with backoff, reported once per outage, shown by ``ds01 gpu status``
and the doctor, and refuses every allocation. The machine's "evidence" (device nodes, the
library) is a directory of the test's own; NVML is the fake over the simulated host.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pynvml
import pytest
from click.testing import CliRunner

import ds01_core.domain.gpu as gpu_module
from ds01_core.domain.config import GpuConfig
from ds01_core.domain.gpu import NvidiaEvidence, open_provider
from ds01_core.domain.gpu import access as access_module
from ds01_core.domain.gpu.access import GpuAccess, GpuUnavailableError
from ds01_core.domain.gpu.simulated import load_topology
from ds01_core.domain.model import GpuRequest
from ds01_core.domain.state.allocations import AllocationRefused, Allocations
from ds01_core.framework.runtime import Runtime, load_runtime
from ds01_core.services.doctor.gpu_provider import check_gpu_provider
from ds01_core.transports.cli import cli
from tests.helpers.config import write_config
from tests.helpers.fake_pynvml import FakeNvml
from tests.helpers.waiting import wait_until


def gpu_server(root: Path, *nodes: str) -> NvidiaEvidence:
    """A machine whose ``/dev`` has ``nodes`` (and no library that loads)."""
    (root / "dev").mkdir(parents=True, exist_ok=True)
    for node in nodes:
        (root / "dev" / node).touch()
    return NvidiaEvidence(root=str(root), load_library=lambda: False)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """NVML over the simulated DGX-A100, as ``pynvml``; its start fails until healed."""
    nvml = FakeNvml(load_topology())
    nvml.fail("nvmlInit", pynvml.NVMLError_NoPermission)
    monkeypatch.setitem(sys.modules, "pynvml", nvml.as_module())
    return nvml


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NvidiaEvidence:
    """This test's machine has NVIDIA devices (``/dev/nvidiactl``, ``/dev/nvidia0``)."""
    evidence = gpu_server(tmp_path / "host", "nvidiactl", "nvidia0")
    monkeypatch.setattr(gpu_module, "DEFAULT_EVIDENCE", evidence)
    return evidence


@pytest.fixture
def auto_runtime() -> Iterator[Callable[[Path], Runtime]]:
    """Runtimes on ``gpu.backend: auto`` in a directory, closed at the end."""
    made: list[Runtime] = []

    def make(tmp_path: Path) -> Runtime:
        config = write_config(tmp_path, {"gpu": {"backend": "auto"}})
        made.append(load_runtime(str(config), no_plugins=True))
        return made[-1]

    yield make
    for runtime in made:
        runtime.close()


def events_of(runtime: Runtime, kind: str) -> list[dict]:
    return [e for e in runtime.events.read() if e["event_type"] == kind]


# -- which provider ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout",
    [("dev/nvidiactl",), ("dev/nvidia3",), ("usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",)],
)
def test_auto_never_uses_the_simulated_host_where_the_driver_or_devices_are(
    tmp_path: Path, fake: FakeNvml, layout: tuple[str, ...]
) -> None:
    for path in layout:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    evidence = NvidiaEvidence(root=str(tmp_path), load_library=lambda: False)
    with pytest.raises(GpuUnavailableError) as info:
        open_provider(GpuConfig(backend="auto"), evidence)
    message = str(info.value)
    assert message.startswith("NVML: NVML did not load: Insufficient Permissions")
    assert str(tmp_path / layout[0]) in message


def test_auto_uses_the_simulated_host_only_without_any_trace_of_a_driver(
    tmp_path: Path, fake: FakeNvml
) -> None:
    (tmp_path / "dev" / "nvidia-caps").mkdir(parents=True)  # not a GPU: no evidence
    evidence = NvidiaEvidence(root=str(tmp_path), load_library=lambda: False)
    assert evidence.found() == []
    provider = open_provider(GpuConfig(backend="auto"), evidence)
    assert provider.name == "simulated"
    assert "no NVIDIA driver or device" in provider.description


def test_the_library_is_tried_only_on_the_real_root(tmp_path: Path) -> None:
    assert NvidiaEvidence(root="/", load_library=lambda: True).found() != []
    assert NvidiaEvidence(root=str(tmp_path), load_library=lambda: True).found() == []


# -- unavailable: retried, reported, nothing allocated ---------------------------------------


def test_nvml_start_failure_is_unavailable_and_retried_after_a_backoff(
    tmp_path: Path,
    fake: FakeNvml,
    server: NvidiaEvidence,
    monkeypatch: pytest.MonkeyPatch,
    auto_runtime: Callable[[Path], Runtime],
) -> None:
    monkeypatch.setattr(access_module, "FIRST_RETRY", 1.0)
    runtime = auto_runtime(tmp_path)
    with pytest.raises(GpuUnavailableError, match=r"GPUs unavailable: NVML: .*Insufficient"):
        runtime.gpu  # noqa: B018
    with pytest.raises(GpuUnavailableError, match="ds01 retries in"):
        runtime.gpu  # noqa: B018
    assert fake.calls["nvmlInit"] == 1  # the second access waited for the backoff
    assert runtime.gpu_state()["state"] == "unavailable"
    fake.heal()

    def opens() -> bool:
        try:
            return runtime.gpu.name == "nvml"
        except GpuUnavailableError:
            return False

    wait_until(opens, 10, "NVML tried again after the backoff")
    assert fake.calls["nvmlInit"] == 2  # the accesses while waiting did not retry
    assert len(runtime.gpu.gpus()) == 8
    assert runtime.gpu_state()["state"] == "available"
    assert [e["details"]["error"] for e in events_of(runtime, "gpu.unavailable")] == [
        "NVML: NVML did not load: Insufficient Permissions (this machine has an NVIDIA driver "
        f"or devices: {server.root}/dev/nvidiactl, {server.root}/dev/nvidia0; ds01 never uses "
        "its simulated host here)"
    ]
    assert len(events_of(runtime, "gpu.available")) == 1


def test_the_backoff_doubles_up_to_five_minutes() -> None:
    now = [0.0]
    tries: list[float] = []

    def opener():
        tries.append(now[0])
        raise GpuUnavailableError("NVML: Driver Not Loaded")

    access = GpuAccess(opener, "/nonexistent", clock=lambda: now[0])
    for _ in range(3000):
        with pytest.raises(GpuUnavailableError):
            access.provider()
        now[0] += 1.0
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert gaps[:7] == [5, 10, 20, 40, 80, 160, 300] and set(gaps[7:]) == {300}


def test_one_event_per_outage_across_runtimes_sharing_a_runtime_dir(
    tmp_path: Path,
    fake: FakeNvml,
    server: NvidiaEvidence,
    monkeypatch: pytest.MonkeyPatch,
    auto_runtime: Callable[[Path], Runtime],
) -> None:
    monkeypatch.setattr(access_module, "FIRST_RETRY", 0.0)
    daemon, api = auto_runtime(tmp_path), auto_runtime(tmp_path)
    for runtime in (daemon, api):
        with pytest.raises(GpuUnavailableError):
            runtime.gpu  # noqa: B018
    assert len(events_of(daemon, "gpu.unavailable")) == 1
    fake.heal()
    for runtime in (api, daemon):
        assert len(runtime.gpu.slots()) > 0
    assert len(events_of(daemon, "gpu.available")) == 1


def test_a_process_retries_at_once_when_another_saw_nvml_come_back(
    tmp_path: Path, fake: FakeNvml
) -> None:
    """The API server need not wait out its backoff (up to 5 min) once the daemon has NVML."""
    clocks = {"daemon": 0.0, "api": 0.0}

    def access(name: str) -> GpuAccess:
        opener = lambda: open_provider(GpuConfig(backend="nvml"))  # noqa: E731
        return GpuAccess(opener, tmp_path, clock=lambda: clocks[name])

    daemon, api = access("daemon"), access("api")
    for each in (daemon, api):
        with pytest.raises(GpuUnavailableError):
            each.provider()
    fake.heal()
    with pytest.raises(GpuUnavailableError, match="retries in 5 s"):
        api.provider()  # its backoff holds while the outage is on record
    clocks["daemon"] = 6.0
    assert daemon.provider().name == "nvml"
    assert api.provider().name == "nvml"  # the daemon's recovery ended the api's wait
    assert fake.calls["nvmlInit"] == 4
    fake.fail("nvmlInit", pynvml.NVMLError_DriverNotLoaded)
    daemon.close()
    api.close()
    for each in (daemon, api):
        with pytest.raises(GpuUnavailableError):
            each.provider()
    with pytest.raises(GpuUnavailableError, match="retries in 5 s"):
        api.provider()  # a new outage on record: the backoff holds again
    assert fake.calls["nvmlInit"] == 6


def test_a_process_that_still_fails_after_another_recovered_backs_off_again(
    tmp_path: Path, fake: FakeNvml
) -> None:
    """Its own outage is put on record (one new event) and its backoff holds again, rather than
    a retry on every access."""
    clocks = {"daemon": 0.0, "api": 0.0}
    opener = lambda: open_provider(GpuConfig(backend="nvml"))  # noqa: E731
    daemon = GpuAccess(opener, tmp_path, clock=lambda: clocks["daemon"])
    api = GpuAccess(opener, tmp_path, clock=lambda: clocks["api"])
    for each in (daemon, api):
        with pytest.raises(GpuUnavailableError):
            each.provider()
    fake.heal()
    clocks["daemon"] = 6.0
    assert daemon.provider().name == "nvml"  # the outage marker is removed
    fake.fail("nvmlInit", pynvml.NVMLError_NoPermission, gpu=None)  # the api's own problem
    calls = fake.calls["nvmlInit"]
    for _ in range(3):
        with pytest.raises(GpuUnavailableError):
            api.provider()
    assert fake.calls["nvmlInit"] == calls + 1
    assert (tmp_path / access_module.OUTAGE_FILE).exists()
    daemon.close()


def test_allocation_is_refused_while_nvml_does_not_answer(
    tmp_path: Path, fake: FakeNvml, server: NvidiaEvidence, auto_runtime: Callable[[Path], Runtime]
) -> None:
    runtime = auto_runtime(tmp_path)
    with pytest.raises(AllocationRefused) as info:
        Allocations(runtime).allocate(GpuRequest(user="alice", container="c1"))
    assert str(info.value).startswith("GPUs unavailable: NVML: NVML did not load")
    assert "ds01 retries in" in str(info.value)
    assert Allocations(runtime).live() == []


def test_gpu_status_says_unavailable_instead_of_showing_invented_gpus(
    tmp_path: Path, fake: FakeNvml, server: NvidiaEvidence
) -> None:
    config = str(write_config(tmp_path, {"gpu": {"backend": "auto"}}))
    text = CliRunner().invoke(cli, ["--config", config, "--no-plugins", "gpu", "status"])
    assert text.exit_code == 0, text.output
    assert "GPUs UNAVAILABLE" in text.output and "Insufficient Permissions" in text.output
    assert "A100" not in text.output
    data = json.loads(
        CliRunner()
        .invoke(cli, ["--config", config, "--no-plugins", "gpu", "status", "--json"])
        .stdout
    )
    assert (data["access"]["state"], data["gpus"]) == ("unavailable", [])


def test_doctor_fails_while_nvml_does_not_answer_and_passes_once_it_does(
    tmp_path: Path,
    fake: FakeNvml,
    server: NvidiaEvidence,
    monkeypatch: pytest.MonkeyPatch,
    auto_runtime: Callable[[Path], Runtime],
) -> None:
    monkeypatch.setattr(access_module, "FIRST_RETRY", 0.0)
    runtime = auto_runtime(tmp_path)
    (finding,) = check_gpu_provider(runtime)
    assert (finding.check, finding.ok) == ("gpu-provider", False)
    assert "Insufficient Permissions" in finding.message and "nvidia-smi" in (finding.fix or "")
    fake.heal()
    (finding,) = check_gpu_provider(runtime)
    assert finding.ok and "8 GPU(s) read" in finding.message


def test_doctor_says_when_the_simulated_host_is_in_use(tmp_path: Path) -> None:
    runtime = load_runtime(str(write_config(tmp_path)), no_plugins=True)
    (finding,) = check_gpu_provider(runtime)
    assert finding.ok and finding.subject == "simulated"


def test_starting_a_stopped_gpu_container_waits_with_a_clear_refusal(
    tmp_path: Path, fake: FakeNvml, server: NvidiaEvidence, auto_runtime: Callable[[Path], Runtime]
) -> None:
    """Re-admission (``ds01 container start`` after the hold ran out) refuses like a new
    allocation while NVML does not answer, instead of failing as an internal error."""
    from ds01_core.services.admission import AdmissionRefused, readmit

    runtime = auto_runtime(tmp_path)
    inspect = {
        "Id": "c" * 64,
        "Name": "/train",
        "Config": {"Labels": {"ds01.user": "alice", "ds01.gpu.uuids": "GPU-x"}},
        "HostConfig": {},
    }
    with pytest.raises(AdmissionRefused) as info:
        readmit(runtime, "alice", inspect)
    assert str(info.value).startswith("GPUs unavailable: NVML: NVML did not load")


def test_an_outage_is_not_logged_as_an_error_every_cycle(
    tmp_path: Path,
    fake: FakeNvml,
    server: NvidiaEvidence,
    auto_runtime: Callable[[Path], Runtime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The outage is an ERROR once (the GPU access) and an event; the steps that read the GPUs
    every cycle (the docker detector's inventory, the idle step's signals) do not repeat it."""
    from ds01_core.builtin.docker_detector import current_slots
    from ds01_core.cycle.idle import gpu_view

    runtime = auto_runtime(tmp_path)
    with caplog.at_level(logging.DEBUG):
        for _cycle in range(3):
            assert current_slots(runtime) == []
            assert gpu_view(runtime, []).complete is False
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["ds01_core.domain.gpu.access"]
    assert "GPUs unavailable" in caplog.text  # still there for --debug
