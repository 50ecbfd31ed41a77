"""Detection against the real engine: containers made the ways users make them, GPU processes
started in containers and on the host, all attributed to the right person."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from ds01_core.builtin.gpu_process_detector import detector as process_detector
from ds01_core.cycle.detection.procfs import read_proc
from ds01_core.cycle.pipeline import detect
from ds01_core.domain.gpu.simulated import SimulatedProvider
from ds01_core.framework.runtime import load_runtime


def ds01(*args: str, config: Path, user: str | None = None, check: bool = True):
    command = [
        sys.executable,
        "-c",
        "from ds01_core.transports.cli import main; main()",
        "--config",
        str(config),
        *args,
    ]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def workloads_json(config: Path, *args: str) -> dict[str, dict]:
    data = json.loads(ds01("workloads", "--json", *args, config=config).stdout)
    assert data["source"] == "live"
    return {w["id"]: w for w in data["workloads"]}


@pytest.fixture
def config(tmp_config, tmp_path):
    processes = tmp_path / "gpu-processes.yaml"
    processes.write_text("[]\n")
    return tmp_config({"gpu": {"simulated": {"processes_file": str(processes)}}})


@pytest.fixture
def slots():
    return SimulatedProvider().slots()


def test_containers_made_every_way_are_attributed(
    config, container_factory, unix_users, slots, tmp_path
):
    a, b = unix_users["ds01ta"], unix_users["ds01tb"]
    project = Path(a.home) / "project"
    project.mkdir(exist_ok=True)
    os.chown(project, a.uid, a.gid)
    root_owned = Path(b.home) / "not-really-mine"
    root_owned.mkdir(exist_ok=True)
    os.chown(root_owned, 0, 0)
    b_data = Path(b.home) / "data"
    b_data.mkdir(exist_ok=True)
    os.chown(b_data, b.uid, b.gid)
    mig = next(s for s in slots if s.kind == "mig")

    made = {
        "ds01": container_factory(
            {
                "Labels": {"ds01.origin": "ds01", "ds01.user": a.name},
                "Env": [f"NVIDIA_VISIBLE_DEVICES={mig.uuid}"],
            }
        ),
        "raw": container_factory({}),
        "raw-as-user": container_factory({"User": str(b.uid)}),
        "devcontainer": container_factory(
            {
                "Labels": {
                    "devcontainer.local_folder": str(project),
                    "devcontainer.config_file": f"{project}/.devcontainer/devcontainer.json",
                }
            }
        ),
        "false-claim": container_factory(
            {"Labels": {"devcontainer.local_folder": str(root_owned)}}
        ),
        "bind-mount": container_factory(
            {"HostConfig": {"Binds": [f"{b_data}:/data"]}}, start=False
        ),
        "name-pattern": container_factory({}, name=f"pattern._.{a.uid}", raw_name=True),
        "all-gpus": container_factory({"Env": ["NVIDIA_VISIBLE_DEVICES=all"]}, start=False),
        "legacy": container_factory({"Labels": {"aime.mlc.USER": b.name}}),
    }
    seen = workloads_json(config)
    got = {key: seen[c.id] for key, c in made.items()}

    def who(key):
        w = got[key]
        return w["origin"], w["owner"], w["owner_source"]

    assert who("ds01") == ("ds01", a.name, "label:ds01.user")
    assert got["ds01"]["gpu_slots"] == [mig.uuid]
    assert who("raw") == ("docker", "unknown", "none")
    assert who("raw-as-user") == ("docker", b.name, "process_uid")
    assert who("devcontainer") == ("devcontainer", a.name, "devcontainer.local_folder")
    assert who("false-claim") == (
        "devcontainer",
        "unknown",
        "none",
    )  # a label alone is not believed
    assert who("bind-mount") == ("docker", b.name, "bind_mount")
    assert got["bind-mount"]["status"] == "created"
    assert who("name-pattern") == ("docker", a.name, "name_pattern")
    assert who("legacy") == ("ds01", b.name, "label:aime.mlc.USER")  # the legacy tooling
    assert got["all-gpus"]["unrestricted_gpu"] is True
    assert len(got["all-gpus"]["gpu_slots"]) == len(slots)
    assert "unmanaged_gpu" in got["all-gpus"]["flags"]
    assert "unmanaged_gpu" not in got["ds01"]["flags"]
    for w in got.values():
        assert w["kind"] == "container"
        assert w["image"] == "ds01-test:busybox"
        assert w["created_at"]
    assert got["raw"]["status"] == "running" and got["raw"]["pids"]
    assert got["raw"]["started_at"]

    # filters
    mine = workloads_json(config, "--user", a.name)
    assert {made["ds01"].id, made["devcontainer"].id, made["name-pattern"].id} <= set(mine)
    assert all(w["owner"] == a.name for w in mine.values())
    gpu_only = workloads_json(config, "--gpu-only")
    assert made["ds01"].id in gpu_only and made["raw"].id not in gpu_only
    devs = workloads_json(config, "--origin", "devcontainer")
    assert {w["origin"] for w in devs.values()} == {"devcontainer"}

    # stop and remove change what is listed
    container_factory.engine.stop(made["raw"].id, timeout=1)
    container_factory.engine.remove(made["legacy"].id, force=True)
    seen = workloads_json(config)
    assert seen[made["raw"].id]["status"] == "exited"
    assert seen[made["raw"].id]["pids"] == []
    assert made["legacy"].id not in seen


def test_compose_containers(config, unix_users, tmp_path, container_prefix):
    b = unix_users["ds01tb"]
    compose_dir = Path(b.home) / "composeproj"
    compose_dir.mkdir(exist_ok=True)
    os.chown(compose_dir, b.uid, b.gid)
    (compose_dir / "docker-compose.yml").write_text(
        textwrap.dedent(
            """\
            version: "3"
            services:
              worker:
                image: ds01-test:busybox
                command: ["sleep", "3600"]
                volumes: ["./:/work"]
            """
        )
    )
    project = f"{container_prefix}-compose".replace("-", "")
    base = ["docker-compose", "-p", project, "-f", str(compose_dir / "docker-compose.yml")]
    subprocess.run([*base, "up", "-d"], check=True, capture_output=True, timeout=120)
    try:
        seen = workloads_json(config)
        ours = [w for w in seen.values() if w["name"].startswith(project)]
        assert len(ours) == 1
        assert ours[0]["origin"] == "compose"
        assert (ours[0]["owner"], ours[0]["owner_source"]) == (b.name, "bind_mount")
    finally:
        subprocess.run([*base, "down", "-t", "1"], capture_output=True, timeout=120)
    seen = workloads_json(config)
    assert not [w for w in seen.values() if w["name"].startswith(project)]


def _find_pid(marker: str, container_id: str | None) -> int:
    for _ in range(50):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            info = read_proc(int(entry.name))
            if info and marker in info.cmdline and info.container_id == container_id:
                return info.pid
        time.sleep(0.1)
    raise AssertionError(f"no process {marker!r} in {container_id}")


def test_gpu_processes_in_containers_and_on_the_host(
    config, container_factory, unix_users, slots, tmp_path
):
    a, b = unix_users["ds01ta"], unix_users["ds01tb"]
    box = container_factory({"Labels": {"ds01.user": a.name, "ds01.origin": "ds01"}})
    exec_marker = "sleep 4242"
    container_factory.engine.exec_run(box.id, ["sh", "-c", f"{exec_marker} &"])
    in_container = _find_pid("4242", box.id)
    host = subprocess.Popen(["sleep", "4343"], user=b.uid)
    ignored = subprocess.Popen(["sleep", "4444"])
    try:
        whole = [s for s in slots if s.kind == "gpu"]
        mig = next(s for s in slots if s.kind == "mig")
        listing = [
            {"pid": in_container, "slot": mig.uuid, "used_memory": "2g"},
            {"pid": host.pid, "slot": whole[0].uuid, "used_memory": "1g"},
            {"pid": host.pid, "slot": whole[1].uuid},
            {"pid": 4_999_999, "slot": whole[2].uuid},  # gone before we look
        ]
        processes_file = tmp_path / "gpu-processes.yaml"
        processes_file.write_text(yaml.safe_dump(listing))

        # the live listing reports at first sight
        seen = workloads_json(config)
        assert seen[box.id]["gpu_slots"] == [mig.uuid]
        assert in_container in seen[box.id]["pids"]
        assert seen[box.id]["owner"] == a.name  # the container's owner, not the process's uid
        proc = seen[str(host.pid)]
        assert proc["kind"] == "process" and proc["origin"] == "host"
        assert (proc["owner"], proc["owner_source"]) == (b.name, "process_uid")
        assert proc["gpu_slots"] == [whole[0].uuid, whole[1].uuid]
        assert "sleep 4343" in proc["cmdline"]
        assert "4999999" not in seen

        # the daemon's detector waits for a second sighting, and ignores driver services
        runtime = load_runtime(str(config))
        runtime.config.gpu.ignored_process_names.append("sleep")
        process_detector(runtime).ignored_names = {"never-matches"}
        first = {w.id for w in detect(runtime) if w.kind == "process"}
        second = {w.id for w in detect(runtime) if w.kind == "process"}
        assert str(host.pid) not in first and str(host.pid) in second
        process_detector(runtime).ignored_names = {"sleep"}
        assert str(host.pid) not in {w.id for w in detect(runtime) if w.kind == "process"}
    finally:
        host.kill()
        ignored.kill()
        host.wait()
        ignored.wait()


class FailingGpus:
    """A GPU provider whose driver calls fail, the way NVML does when a GPU falls off the bus."""

    name = "nvml"
    description = "failing"

    def __init__(self, good: SimulatedProvider):
        self.good = good
        self.failing = False

    def slots(self):
        if self.failing:
            import pynvml

            raise pynvml.NVMLError_GpuIsLost()
        return self.good.slots()

    def processes(self):
        return self.slots() and self.good.processes()

    def gpus(self):
        return self.good.gpus()

    def close(self):
        pass


def test_an_nvml_error_does_not_hide_containers(config, container_factory, slots):
    mig = next(s for s in slots if s.kind == "mig")
    box = container_factory({"Env": [f"NVIDIA_VISIBLE_DEVICES={mig.uuid}"]})
    runtime = load_runtime(str(config))
    gpus = FailingGpus(SimulatedProvider())
    runtime.__dict__["gpu"] = gpus  # the runtime's lazily opened provider, replaced
    errors: list[str] = []
    before = {w.id: w for w in detect(runtime, errors)}
    assert before[box.id].gpu_slots == [mig.uuid] and not errors
    gpus.failing = True
    errors = []
    after = {w.id: w for w in detect(runtime, errors)}
    assert after[box.id].gpu_slots == [mig.uuid]  # the last slots read are used
    assert errors == ["detect (gpu-process-detector): GPU is lost"]
