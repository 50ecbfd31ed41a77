"""``ds01 gpu health`` as a real non-root user through ``ds01-api``: a clear line before the daemon
has judged the GPUs, then each GPU's state, drain, since and reasons in words (and ``--json``);
a stale answer says so; never a traceback."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ds01_core.cycle.pipeline import run_cycle
from tests.helpers.config import write_config
from tests.helpers.gpu_health import TelemetryHost, runtime_maker
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    tmp_path.chmod(0o755)
    config = write_config(tmp_path)
    paths = {"state_dir": "state", "log_dir": "log", "runtime_dir": "run"}
    with running_api(config) as sock:
        yield {"sock": sock, "paths": {k: str(tmp_path / v) for k, v in paths.items()}}


def health(user: Any, user_cli: Path, served: dict[str, Any], *args: str) -> Any:
    result = run_as(
        user, user_cli, ["gpu", "health", *args], env={"DS01_API_SOCKET": served["sock"]}
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == 0, result
    return result


def test_a_plain_user_sees_each_gpus_health_in_words(
    served: dict[str, Any], user_cli: Path, unix_users: Any, tmp_path: Path
) -> None:
    alice = unix_users["ds01ta"]
    before = health(alice, user_cli, served)
    assert before.stdout.startswith("No GPU health recorded yet: the daemon (ds01d) has not")
    assert json.loads(health(alice, user_cli, served, "--json").stdout) == {
        "checked_at": None,
        "stale": False,
        "drain": ["unhealthy"],
        "gpus": [],
    }

    provider = TelemetryHost()
    at = dt.datetime.now(dt.UTC)
    provider.faults = {
        2: {"fell_off_bus": True},
        5: {"last_xid": 13, "last_xid_at": at, "xid_errors": 1, "temperature_c": 85.0},
    }
    with runtime_maker(tmp_path) as make:  # the daemon's cycle, on the same state store
        runtime = make(provider, extra={"paths": served["paths"]})
        run_cycle(runtime, workloads=[])

    table = health(alice, user_cli, served)
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["GPU", "STATE", "DRAINED", "SINCE", "REASONS"]
    rows = {line.split()[0]: line for line in lines[1:] if line[:1].strip()}
    assert rows["0"].split()[:3] == ["0", "ok", "no"] and rows["0"].rstrip().endswith("-")
    assert rows["2"].split()[:3] == ["2", "unhealthy", "yes"]
    assert "fell_off_bus: the GPU fell off the bus" in rows["2"]
    assert rows["5"].split()[:3] == ["5", "degraded", "no"]
    # one line per reason: the XID, then the heat, under GPU 5
    after_five = lines[lines.index(rows["5"]) + 1]
    assert f"xid: XID 13 (graphics engine exception) at {at:%H:%M} UTC" in rows["5"]
    assert after_five.split()[0] == "thermal:" and "85 °C" in after_five
    assert table.stderr == ""

    data = json.loads(health(alice, user_cli, served, "--json").stdout)
    by_index = {g["index"]: g for g in data["gpus"]}
    assert sorted(by_index) == list(range(8)) and data["stale"] is False
    assert by_index[2]["state"] == "unhealthy" and by_index[2]["drained"] is True
    assert [r["code"] for r in by_index[2]["reasons"]] == ["fell_off_bus"]
    assert [r["code"] for r in by_index[5]["reasons"]] == ["xid", "thermal"]
    assert by_index[5]["telemetry"]["last_xid"] == 13
    assert by_index[5]["telemetry"]["temperature_c"] == 85.0
    assert by_index[0]["reasons"] == [] and by_index[0]["since"] is not None


def test_an_answer_the_daemon_stopped_updating_is_called_stale(
    served: dict[str, Any], user_cli: Path, unix_users: Any, tmp_path: Path
) -> None:
    with runtime_maker(tmp_path) as make:
        runtime = make(TelemetryHost(), extra={"paths": served["paths"]})
        run_cycle(runtime, workloads=[])
        with runtime.state.transaction() as db:
            db.execute("UPDATE gpu_health SET updated_at = '2026-01-01T00:00:00Z'")
    result = health(unix_users["ds01tb"], user_cli, served)
    assert result.stderr.startswith(
        "Stale: the daemon last judged the GPUs at 2026-01-01T00:00:00Z"
    )
    assert result.stdout.splitlines()[1].split()[:3] == ["0", "ok", "no"]
    assert json.loads(health(unix_users["ds01tb"], user_cli, served, "--json").stdout)["stale"]


def test_the_daemons_judgement_of_an_injected_fault_reaches_a_user(
    user_cli: Path, unix_users: Any, tmp_path: Path
) -> None:
    """A real ``ds01d --once`` on the simulated host with a faults file, then the user's view."""
    tmp_path.chmod(0o755)
    faults = tmp_path / "faults.yaml"
    faults.write_text("gpus:\n  6: {fell_off_bus: true}\n  1: {temperature: 88}\n")
    config = write_config(
        tmp_path,
        {
            "gpu": {"simulated": {"faults_file": str(faults)}},
            # no detectors: this cycle looks at no Docker engine
            "plugins": {"disabled": ["docker-detector", "gpu-process-detector"]},
        },
    )
    daemon = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ds01_core.cycle.daemon import main; main()",
            "--config",
            str(config),
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert daemon.returncode == 0, daemon.stderr
    assert "GPU 6 health: ok -> unhealthy" in daemon.stderr, daemon.stderr
    with running_api(config) as sock:
        served = {"sock": sock}
        data = json.loads(health(unix_users["ds01tb"], user_cli, served, "--json").stdout)
    states = {g["index"]: (g["state"], g["drained"]) for g in data["gpus"]}
    assert states[6] == ("unhealthy", True) and states[1] == ("degraded", False)
    assert states[0] == ("ok", False)
    events = [
        json.loads(line)
        for line in (tmp_path / "log" / "events.jsonl").read_text().splitlines()
        if '"gpu.health_changed"' in line
    ]
    assert sorted(e["details"]["gpu"] for e in events) == [1, 6]
