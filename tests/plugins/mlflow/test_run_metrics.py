"""The ``mlflow-gpu-metrics`` cycle step against a real MLflow server: what it attributes (a run
tagged with its container, the only container of an experiment), what it leaves alone (two
containers and an untagged run, a run older than its container, another user's experiment),
and ``gpu_metrics: false``."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Any

import pytest

from ds01_core.cycle.pipeline import run_cycle
from ds01_core.domain.model import Workload
from ds01_core.framework.runtime import load_runtime
from ds01_mlflow.client import MlflowClient
from ds01_mlflow.provision import ensure_experiment, ensure_user, mlflow_config
from tests.helpers.config import write_config
from tests.plugins.mlflow.mlflow_env import MlflowServer

pytestmark = pytest.mark.integration

UTIL = "ds01.gpu.utilization"


def new_run(
    client: MlflowClient,
    experiment_id: str,
    tags: dict[str, str] | None = None,
    start_ms: int | None = None,
) -> str:
    body: dict[str, Any] = {
        "experiment_id": experiment_id,
        "start_time": start_ms or int(time.time() * 1000),
        "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
    }
    return str(
        client._call("POST", "/api/2.0/mlflow/runs/create", json=body)["run"]["info"]["run_id"]
    )


def container(name: str, owner: str, experiment: str, slot: str, started: dt.datetime) -> Workload:
    return Workload(
        kind="container",
        id=secrets.token_hex(32),
        name=name,
        origin="ds01",
        owner=owner,
        owner_source="label:ds01.user",
        status="running",
        gpu_slots=[slot],
        started_at=started,
        labels={"ds01.user": owner, "ds01.mlflow.experiment": experiment},
    )


@pytest.fixture
def setup(tmp_path, mlflow_server: MlflowServer, unix_users) -> dict[str, Any]:
    def config(**extra: Any) -> Any:
        path = write_config(
            tmp_path,
            {"plugins": {"mlflow": {**mlflow_server.section, **extra}}},
            name=f"ds01-{secrets.token_hex(3)}.yaml",
        )
        return load_runtime(str(path))

    runtime = config()
    section = mlflow_config(runtime)
    alice, bob = unix_users["ds01ta"].name, unix_users["ds01tb"].name
    name = f"{alice}/metrics-{secrets.token_hex(3)}"
    with mlflow_server.admin() as admin:
        creds = ensure_user(section, admin, alice)
        ensure_user(section, admin, bob)
        experiment_id = ensure_experiment(section, admin, alice, name)
    slots = [s for g in runtime.gpu.gpus() for s in g.slots]
    return {
        "config": config,
        "runtime": runtime,
        "experiment": name,
        "experiment_id": experiment_id,
        "alice": mlflow_server.as_user(alice, creds.password),
        "slots": slots,
        "users": (alice, bob),
    }


def history(server: MlflowServer, run_id: str, key: str = UTIL) -> list[float]:
    with server.admin() as admin:
        return [m["value"] for m in admin.metric_history(run_id, key)]


def tags(server: MlflowServer, run_id: str) -> dict[str, str]:
    with server.admin() as admin:
        return dict(admin.get_run(run_id).tags)


def test_a_tagged_run_gets_its_containers_metrics_and_an_untagged_one_of_two_none(
    setup, mlflow_server: MlflowServer
) -> None:
    alice, _ = setup["users"]
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    first, second = setup["slots"][0], setup["slots"][1]
    one = container("m-one", alice, setup["experiment"], first.uuid, before)
    two = container("m-two", alice, setup["experiment"], second.uuid, before)
    tagged = new_run(setup["alice"], setup["experiment_id"], {"ds01.container": "m-two"})
    untagged = new_run(setup["alice"], setup["experiment_id"])
    report = run_cycle(setup["runtime"], workloads=[one, two])
    assert "mlflow-gpu-metrics" in report.steps, report.errors
    assert not [e for e in report.errors if "mlflow" in e], report.errors
    gpu = next(g for g in report.gpus if second in g.slots)
    assert history(mlflow_server, tagged) == [float(gpu.utilization or 0)]
    assert tags(mlflow_server, tagged)["ds01.gpu.slots"] == second.slot_id
    assert tags(mlflow_server, tagged)["ds01.user"] == alice
    assert history(mlflow_server, untagged) == []  # two containers: whose is it?
    assert "ds01.container" not in tags(mlflow_server, untagged)


def test_the_only_container_gets_runs_started_after_it_not_before(
    setup, mlflow_server: MlflowServer
) -> None:
    alice, _ = setup["users"]
    old = new_run(setup["alice"], setup["experiment_id"])
    time.sleep(0.1)
    started = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)  # clearly after "old"
    only = container("m-only", alice, setup["experiment"], setup["slots"][0].uuid, started)
    fresh = new_run(
        setup["alice"], setup["experiment_id"], start_ms=int(started.timestamp() * 1000) + 1000
    )
    run_cycle(setup["runtime"], workloads=[only])
    assert tags(mlflow_server, fresh)["ds01.container"] == "m-only"
    assert len(history(mlflow_server, fresh)) == 1
    assert history(mlflow_server, old) == []


def test_another_users_container_naming_the_experiment_logs_nothing_there(
    setup, mlflow_server: MlflowServer
) -> None:
    _, bob = setup["users"]
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    intruder = container("m-bob", bob, setup["experiment"], setup["slots"][0].uuid, before)
    run = new_run(setup["alice"], setup["experiment_id"], {"ds01.container": "m-bob"})
    run_cycle(setup["runtime"], workloads=[intruder])
    assert history(mlflow_server, run) == []
    assert "ds01.user" not in tags(mlflow_server, run)


def test_gpu_metrics_off_logs_nothing(setup, mlflow_server: MlflowServer) -> None:
    alice, _ = setup["users"]
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    only = container("m-off", alice, setup["experiment"], setup["slots"][0].uuid, before)
    run = new_run(setup["alice"], setup["experiment_id"])
    run_cycle(setup["config"](gpu_metrics=False), workloads=[only])
    assert history(mlflow_server, run) == []
    assert "ds01.container" not in tags(mlflow_server, run)
