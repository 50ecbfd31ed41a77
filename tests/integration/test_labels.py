"""Legacy aime.mlc.* containers on the real engine: seen, attributed and allocated the same
before and after migration; recreation keeps image, mounts, environment and GPU request."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner

from ds01_core.cycle.pipeline import detect, run_cycle
from ds01_core.domain.gpu.simulated import SimulatedProvider
from ds01_core.domain.state.allocations import Allocations
from ds01_core.framework.runtime import load_runtime
from ds01_core.transports.cli import cli


def run(config, *args):
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_legacy_containers_before_and_after_migration(
    tmp_config, container_factory, docker_engine, unix_users
):
    a = unix_users["ds01ta"]
    data = Path(a.home) / "legacy-data"
    data.mkdir(exist_ok=True)
    os.chown(data, a.uid, a.gid)
    slots = SimulatedProvider().slots()
    mig = [s for s in slots if s.kind == "mig"]
    legacy = {"aime.mlc.USER": a.name, "aime.mlc.NAME": "old", "aime.mlc.FRAMEWORK": "pytorch"}
    running = container_factory(
        {"Labels": legacy, "Env": [f"NVIDIA_VISIBLE_DEVICES={mig[0].uuid}", "PROJECT=x"]}
    )
    gpu_request = {"Driver": "nvidia", "DeviceIDs": [mig[1].uuid], "Capabilities": [["gpu"]]}
    stopped = container_factory(
        {
            "Labels": legacy,
            "Env": ["PROJECT=y"],
            "HostConfig": {"Binds": [f"{data}:/data"], "DeviceRequests": [gpu_request]},
        },
        start=False,
    )
    config = tmp_config({"plugins": {"disabled": ["mig"]}})
    runtime = load_runtime(str(config))

    def seen():
        return {w.id: w for w in detect(load_runtime(str(config)))}

    before = seen()
    for c in (running, stopped):
        w = before[c.id]
        assert (w.owner, w.owner_source, w.origin) == (a.name, "label:aime.mlc.USER", "ds01")
        assert w.labels["ds01.user"] == a.name and w.labels["ds01.framework"] == "pytorch"
    assert before[stopped.id].gpu_slots == [mig[1].uuid]  # the device request is read

    run_cycle(runtime)  # the pipeline step records; allocation adopts the running one
    adopted = [x for x in Allocations(runtime).live() if x.container == running.id]
    assert adopted and adopted[0].user == a.name and adopted[0].slot_uuids == [mig[0].uuid]

    report = json.loads(run(config, "admin", "labels", "migrate", "--dry-run", "--json"))
    ours = {c["id"]: c for c in report["containers"] if c["id"] in (running.id, stopped.id)}
    assert ours[running.id]["mapping"] == {
        "ds01.user": a.name,
        "ds01.name": "old",
        "ds01.framework": "pytorch",
    }
    assert not any(c["recorded_now"] for c in ours.values())  # recorded by the pipeline already

    report = json.loads(run(config, "admin", "labels", "migrate", "--recreate-stopped", "--json"))
    ours = {c["id"]: c for c in report["containers"] if c["id"] in (running.id, stopped.id)}
    assert ours[running.id]["recreated_as"] is None  # running: left alone
    new_id = ours[stopped.id]["recreated_as"]
    assert new_id and docker_engine.inspect_container(stopped.id) is None
    container_factory.created.append(type(stopped)(new_id, stopped.name))  # cleaned up later

    new = docker_engine.inspect_container(new_id)
    assert new["Name"].lstrip("/") == stopped.name
    labels = new["Config"]["Labels"]
    assert labels["ds01.user"] == a.name and labels["aime.mlc.USER"] == a.name
    assert labels["ds01.migrated_from"] == stopped.id
    assert new["Config"]["Image"] == "ds01-test:busybox"
    assert "PROJECT=y" in new["Config"]["Env"]
    assert new["HostConfig"]["Binds"] == [f"{data}:/data"]
    assert new["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == [mig[1].uuid]

    after = seen()
    assert (after[new_id].owner, after[new_id].owner_source) == (a.name, "label:ds01.user")
    assert after[new_id].gpu_slots == [mig[1].uuid]
    assert (after[running.id].owner, after[running.id].origin) == (a.name, "ds01")
    rows = runtime.state.db.execute(
        "SELECT container_id, recreated_as FROM label_migrations"
    ).fetchall()
    assert (stopped.id, new_id) in [tuple(r) for r in rows]
