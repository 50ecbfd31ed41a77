"""Containers wired to a real MLflow server (basic-auth) on every create path, as real users.

Through the gateway as ds01ta (``docker run``): the container logs a run into ``ds01ta/…``
using only what ds01 injected (the busybox test image has no Python: a shell script reads
``~/.mlflow/credentials`` and calls MLflow's REST API with ``wget``); ds01tb's credentials
neither read nor write that experiment; the password is in no ``docker inspect`` (the engine's,
the gateway's) nor the container's environment; a real daemon cycle tags the run and logs the
container's GPU readings to it. ``ds01 container create`` (through ds01-api) wires too;
``--no-mlflow`` and ``-e DS01_MLFLOW=off`` do not; with the server down a create still succeeds,
unwired.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ds01_core.cycle.pipeline import detect, run_cycle
from ds01_core.framework.runtime import load_runtime
from ds01_core.services.user_containers import ContainerService, CreateRequest
from ds01_mlflow.client import MlflowError
from ds01_mlflow.credentials import CredentialStore
from ds01_mlflow.provision import ensure_user, mlflow_config
from tests.helpers.config import write_config
from tests.helpers.gateway import DOCKER, docker, ok, running_gateway
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as
from tests.helpers.waiting import wait_until
from tests.plugins.mlflow.mlflow_env import MlflowServer, free_port

pytestmark = pytest.mark.integration

PREFIX = f"mlw-{os.getpid()}-"

#: a run logged with nothing but what ds01 put in the container (busybox: sh, sed, base64, wget)
LOG_A_RUN = r"""
set -e
c="$HOME/.mlflow/credentials"
u=$(sed -n 's/^mlflow_tracking_username *= *//p' "$c")
p=$(sed -n 's/^mlflow_tracking_password *= *//p' "$c")
a=$(printf '%s:%s' "$u" "$p" | base64 | tr -d '\n')
api="$MLFLOW_TRACKING_URI/api/2.0/mlflow"
call() { wget -q -O - --header "Authorization: Basic $a" --header 'Content-Type: application/json' "$@"; }
e=$(call "$api/experiments/get-by-name?experiment_name=$MLFLOW_EXPERIMENT_NAME" \
    | sed -n 's/.*"experiment_id": *"\([0-9]*\)".*/\1/p')
now=$(date +%s)000
r=$(call --post-data "{\"experiment_id\":\"$e\",\"start_time\":$now}" "$api/runs/create" \
    | sed -n 's/.*"run_id": *"\([0-9a-f]*\)".*/\1/p' | head -n 1)
call --post-data "{\"run_id\":\"$r\",\"key\":\"loss\",\"value\":0.25,\"timestamp\":$now,\"step\":1}" \
    "$api/runs/log-metric" >/dev/null
echo "RUN=$r"
exec sleep 600
"""


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory, mlflow_server: MlflowServer, unix_users, test_image, cgroup_test_root
) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("mlwire")
    base.chmod(0o755)
    config = write_config(
        base,
        {
            "limits": {"defaults": {"max_gpu_equivalents": 2, "allow_full_gpu": True}},
            "plugins": {
                "disabled": ["mig"],  # whole GPUs: one slot, one GPU's readings
                "cgroups": {"root": cgroup_test_root},
                # a loaded test machine can keep the server busy for seconds
                "mlflow": {**mlflow_server.section, "timeout": "30s"},
            },
        },
    )
    with running_gateway(config) as sock, running_api(config) as api:
        yield {"sock": sock, "api": api, "config": config, "base": base}
    engine = subprocess.run(
        [DOCKER, "ps", "-aq", "--filter", f"name={PREFIX}"], capture_output=True, text=True
    )
    for cid in engine.stdout.split():
        subprocess.run([DOCKER, "rm", "-f", cid], capture_output=True)


def inspect(name: str) -> dict[str, Any]:
    """The engine's own inspect (as root, not through the gateway)."""
    out = subprocess.run([DOCKER, "inspect", name], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


def env_of(info: dict[str, Any]) -> dict[str, str]:
    return dict(str(e).partition("=")[::2] for e in info["Config"]["Env"] or [])


def events(stack: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    path = stack["base"] / "log" / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event_type"] == kind]


@pytest.fixture(scope="module")
def alices_run(stack, unix_users, test_image, mlflow_server: MlflowServer) -> dict[str, Any]:
    """ds01ta's container through the gateway, with one GPU, logging a run of its own."""
    alice = unix_users["ds01ta"]
    name = PREFIX + "gw"
    ok(
        docker(
            alice,
            stack["sock"],
            "run",
            "-d",
            "--name",
            name,
            "--gpus",
            "1",
            test_image,
            "sh",
            "-c",
            LOG_A_RUN,
        )
    )

    def run_id() -> str | None:
        logs = subprocess.run([DOCKER, "logs", name], capture_output=True, text=True)
        for line in logs.stdout.splitlines():
            if line.startswith("RUN=") and len(line) > 4:
                return line[4:]
        assert "RUN=\n" not in logs.stdout + "\n", logs.stdout + logs.stderr
        return None

    try:
        found = wait_until(run_id, 60, f"the run logged in {name}", every=0.5)
    except AssertionError:
        logs = subprocess.run([DOCKER, "logs", name], capture_output=True, text=True)
        info = inspect(name)
        raise AssertionError(
            f"no run: {logs.stdout}{logs.stderr} {info['Config']['Labels']} {info['State']}"
        ) from None
    return {"name": name, "run": found, "user": alice}


def test_a_gateway_container_logs_a_run_into_its_users_experiment(
    alices_run, mlflow_server: MlflowServer
) -> None:
    info = inspect(alices_run["name"])
    env = env_of(info)
    labels = info["Config"]["Labels"]
    experiment = f"ds01ta/{alices_run['name']}"
    assert env["MLFLOW_TRACKING_URI"] == mlflow_server.url
    assert env["MLFLOW_EXPERIMENT_NAME"] == experiment
    assert (labels["ds01.mlflow"], labels["ds01.mlflow.experiment"]) == ("wired", experiment)
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/.mlflow"]["RW"] is False  # busybox: root, no /etc/passwd: HOME=/
    with mlflow_server.admin() as admin:
        run = admin.get_run(alices_run["run"])
        found = admin.get_experiment_by_name(experiment)
        assert found is not None and run.experiment_id == found.experiment_id
        assert [m["value"] for m in admin.metric_history(run.run_id, "loss")] == [0.25]


def test_bobs_credentials_neither_read_nor_write_alices_experiment(
    alices_run, stack, mlflow_server: MlflowServer, unix_users
) -> None:
    config = mlflow_config(load_runtime(str(stack["config"])))
    with mlflow_server.admin() as admin:
        bob = ensure_user(config, admin, unix_users["ds01tb"].name)
        experiment = admin.get_experiment_by_name(f"ds01ta/{alices_run['name']}")
    assert experiment is not None
    with mlflow_server.as_user(bob.username, bob.password) as client:
        assert client.search_runs([experiment.experiment_id]) == []  # searches are filtered
        for attempt in (
            lambda: client.get_experiment_by_name(experiment.name),
            lambda: client.get_run(alices_run["run"]),
            lambda: client.log_batch(alices_run["run"], {"loss": 9.0}),
        ):
            with pytest.raises(MlflowError) as refused:
                attempt()
            assert refused.value.status == 403
        assert experiment.experiment_id not in [
            e.experiment_id for e in client.search_experiments()
        ]


def test_the_password_is_in_no_inspect_nor_environment(
    alices_run, stack, mlflow_server: MlflowServer
) -> None:
    config = mlflow_config(load_runtime(str(stack["config"])))
    secret = CredentialStore(Path(config.credentials_dir)).read("ds01ta")
    assert secret is not None
    name, alice = alices_run["name"], alices_run["user"]
    raw = subprocess.run([DOCKER, "inspect", name], capture_output=True, text=True, check=True)
    through = ok(docker(alice, stack["sock"], "inspect", name))
    inside = ok(docker(alice, stack["sock"], "exec", name, "env"))
    assert "MLFLOW_TRACKING_URI=" in inside  # the right container, wired
    for shown in (raw.stdout, through, inside):
        assert secret.password not in shown
    # and what the container does see is the user's own file, read-only
    cat = docker(alice, stack["sock"], "exec", name, "sh", "-c", "echo x > /.mlflow/credentials")
    assert cat.returncode != 0


def test_a_daemon_cycle_tags_the_run_and_logs_the_containers_gpu(
    alices_run, stack, mlflow_server: MlflowServer
) -> None:
    runtime = load_runtime(str(stack["config"]))
    mine = [w for w in detect(runtime) if w.kind == "container" and w.name.startswith(PREFIX)]
    started = time.monotonic()
    report = run_cycle(runtime, workloads=mine)
    took = time.monotonic() - started
    assert "mlflow-gpu-metrics" in report.steps, report.errors
    assert not [e for e in report.errors if "mlflow" in e], report.errors
    with mlflow_server.admin() as admin:
        run = admin.get_run(alices_run["run"])
        slots = run.tags["ds01.gpu.slots"]
        assert (run.tags["ds01.user"], run.tags["ds01.container"]) == ("ds01ta", alices_run["name"])
        utilization = admin.metric_history(run.run_id, "ds01.gpu.utilization")
        memory = admin.metric_history(run.run_id, "ds01.gpu.memory_used")
    gpus = {str(g.index): g for g in runtime.gpu.gpus()}
    assert slots in gpus, slots  # one whole GPU, by its slot id
    assert [m["value"] for m in utilization] == [float(gpus[slots].utilization or 0)]
    assert [m["value"] for m in memory] == [float(gpus[slots].memory_used)]
    assert took < 60


def test_the_cli_wires_and_no_mlflow_and_the_env_switch_do_not(
    stack, unix_users, user_cli, test_image
) -> None:
    alice = unix_users["ds01ta"]
    env = {"DS01_API_SOCKET": stack["api"]}
    for suffix, extra, wired in (
        ("cli", [], True),
        ("cli-off", ["--no-mlflow"], False),
        ("cli-env", ["--env", "DS01_MLFLOW=off"], False),
    ):
        name = PREFIX + suffix
        result = run_as(
            alice,
            user_cli,
            ["container", "create", name, "--image", test_image, "--cpu-only", *extra],
            env=env,
        )
        assert result.returncode == 0, result.stderr
        info = inspect(name)
        labels, container_env = info["Config"]["Labels"], env_of(info)
        assert ("MLFLOW_TRACKING_URI" in container_env) is wired, (
            labels,
            events(stack, "mlflow.unwired"),
        )
        assert any(m["Destination"].endswith("/.mlflow") for m in info["Mounts"]) is wired
        assert labels["ds01.mlflow"] == ("wired" if wired else "off")
    for bad, says in (
        ("NOEQUALS", "write it as KEY=VALUE"),
        ("NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_VISIBLE_DEVICES is set by ds01"),
    ):
        result = run_as(
            alice,
            user_cli,
            ["container", "create", PREFIX + "bad", "--image", test_image, "--env", bad],
            env=env,
        )
        assert result.returncode != 0 and says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    off = PREFIX + "gw-off"
    ok(
        docker(
            alice,
            stack["sock"],
            "create",
            "--name",
            off,
            "-e",
            "DS01_MLFLOW=off",
            test_image,
            "true",
        )
    )
    info = inspect(off)
    assert "MLFLOW_TRACKING_URI" not in env_of(info)
    assert info["Config"]["Labels"]["ds01.mlflow"] == "off"
    assert not info["Mounts"]


def test_with_the_server_down_a_create_succeeds_unwired(
    tmp_path, mlflow_server: MlflowServer, unix_users, test_image, cgroup_test_root
) -> None:
    down = {**mlflow_server.section, "url": f"http://127.0.0.1:{free_port('127.0.0.1')}"}
    config = write_config(
        tmp_path,
        {"plugins": {"cgroups": {"root": cgroup_test_root}, "mlflow": down}},
    )
    runtime = load_runtime(str(config))
    name = PREFIX + "down"
    made = ContainerService(runtime, "ds01ta").create(
        CreateRequest(name=name, image=test_image, cpu_only=True)
    )
    info = inspect(made.id)
    assert info["Config"]["Labels"]["ds01.mlflow"] == "unwired"
    assert "MLFLOW_TRACKING_URI" not in env_of(info)
    logged = (tmp_path / "log" / "events.jsonl").read_text().splitlines()
    unwired = [e for e in map(json.loads, logged) if e["event_type"] == "mlflow.unwired"]
    assert unwired and "did not answer" in unwired[0]["details"]["reason"]


def test_where_no_server_is_set_up_nothing_is_added(
    tmp_path, mlflow_server: MlflowServer, test_image, cgroup_test_root
) -> None:
    """The plugin installed, no admin password file: no wiring, no label, no event."""
    absent = {**mlflow_server.section, "admin_password_file": str(tmp_path / "none")}
    config = write_config(
        tmp_path, {"plugins": {"cgroups": {"root": cgroup_test_root}, "mlflow": absent}}
    )
    made = ContainerService(load_runtime(str(config)), "ds01ta").create(
        CreateRequest(name=PREFIX + "unset", image=test_image, cpu_only=True)
    )
    info = inspect(made.id)
    assert "ds01.mlflow" not in info["Config"]["Labels"]
    assert not [e for e in env_of(info) if e.startswith("MLFLOW_")]
    assert "mlflow.unwired" not in (tmp_path / "log" / "events.jsonl").read_text()
