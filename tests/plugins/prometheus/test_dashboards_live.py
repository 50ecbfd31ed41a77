"""Every dashboard panel's query and every recording rule, evaluated by a real Prometheus (Debian's
package) scraping a real ``ds01d``: each returns data.

The scene: ``ds01d`` with the exporter on a free 195xx port, the simulated GPU host with faults
injected through ``gpu.simulated.faults_file`` (a hot, throttled GPU, ECC errors, an XID, one
fallen off the bus, rows that could not be remapped), a real ``ds01-gateway`` through which two
real users start GPU containers (one request denied), a plugin that fails once (so that the
errors panel has a series), a short idle warning (lifecycle actions, notices). Prometheus scrapes
every second with the shipped rules. Each panel query (template variables as Grafana substitutes
them) and each recorded series is polled until all return data; at the deadline the test names
every one that did not, with the metric names it is missing, so a gap in the exporter is told
apart from a wrong query.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ds01_prometheus.dashboards import SHIPPED as DASHBOARDS
from ds01_prometheus.monitoring_install import SHIPPED
from tests.conftest import in_ci
from tests.helpers.config import write_config
from tests.helpers.gateway import docker, running_gateway

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
DAEMON = [sys.executable, "-c", "from ds01_core.cycle.daemon import main; main()"]
#: how Grafana fills its variables in, for a 5-minute dashboard and a 1 s scrape interval
GRAFANA_VARIABLES = {
    "$__rate_interval": "15s",
    "$__range_s": "300",
    "$__range": "5m",
    "$__interval": "1s",
}
USER = "ds01ta"
#: on the MIG-mode GPUs 4-7 of the simulated DGX, so that the whole GPUs 0-3 stay allocatable
FAULTS = {
    "gpus": {
        4: {"temperature": 93, "throttle": ["hw_thermal", "sw_thermal"]},
        5: {"ecc_corrected": 12, "ecc_uncorrected": 2, "pending_retirement": True},
        6: {"xid": [79], "remap_failure": True},
        7: {"fell_off_bus": True},
    }
}
# a plugin whose cycle_finished hook raises: ds01 writes one plugin.failed and takes it out
FAILING_PLUGIN = '''\
"""Fails in cycle_finished, so that the exporter counts a plugin error."""
from ds01_core.api import hookimpl

@hookimpl
def cycle_finished(runtime, report):
    raise RuntimeError("this plugin fails on purpose (dashboard test)")
'''


def free_port(taken: set[int]) -> int:
    for port in range(19500, 19600):
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free port in 19500-19599")


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        reason = "prometheus is missing: bash scripts/ci/setup-monitoring.sh"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: this test must not be skipped)", pytrace=False)
        pytest.skip(reason)
    return found


def failing_plugin(base: Path) -> Path:
    """A directory holding an installed-looking plugin distribution (its metadata and module)."""
    site = base / "failing-plugin"
    info = site / "ds01_dash_failing-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ds01-dash-failing\nVersion: 0.1\n"
        "Requires-Dist: ds01<0.2,>=0.1\n"
    )
    (info / "entry_points.txt").write_text("[ds01]\ndash_failing = ds01_dash_failing\n")
    (site / "ds01_dash_failing.py").write_text(FAILING_PLUGIN)
    return site


class Prometheus:
    """Debian's Prometheus on loopback with the shipped rules, and its query API."""

    def __init__(self, base: Path, port: int, targets: dict[str, int]):
        self.url = f"http://127.0.0.1:{port}"
        rules = base / "rules"
        rules.mkdir()
        for each in (SHIPPED / "rules").glob("*.yml"):
            shutil.copy(each, rules / each.name)
        shipped = yaml.safe_load((SHIPPED / "prometheus" / "prometheus.yml").read_text())
        jobs = {job["job_name"] for job in shipped["scrape_configs"]}
        assert jobs == set(targets), f"the shipped jobs are {jobs}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules / "*.yml")],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in targets.items()
            ],
        }
        (base / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(base / "prometheus.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={base / 'prometheus.yml'}",
                f"--storage.tsdb.path={base / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.load(response)
        assert answer["status"] == "success", answer
        result = answer["data"]["result"]
        return result if isinstance(result, list) else [result]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def scene(unix_users, test_image, cgroup_test_root, container_prefix) -> Iterator[Prometheus]:
    """ds01d + gateway + containers + faults, scraped by Prometheus once it has data."""
    base = Path(tempfile.mkdtemp(prefix="ds01-dash-"))
    base.chmod(0o755)
    ports: set[int] = set()
    exporter, dcgm, prom_port = free_port(ports), free_port(ports), free_port(ports)
    faults = base / "faults.yaml"
    faults.write_text(yaml.safe_dump(FAULTS))
    config = write_config(
        base,
        {
            "gpu": {"simulated": {"faults_file": str(faults)}},
            "limits": {
                "defaults": {
                    "max_gpu_equivalents": 2,
                    "max_gpu_slots_per_container": 1,
                    "allow_full_gpu": True,
                    "memory_max": "64GiB",
                    "idle_timeout": "30m",
                    # the simulated GPUs 0 and 1 (allocated first) run at 97 % and 43 %: both
                    # count as idle below 99 %, so that the idle panels have idle slots
                    "gpu_idle_threshold": 99,
                }
            },
            "lifecycle": {
                "interval": "2s",
                "idle_window": 1,
                "start_grace": "0s",
                "warn_at": [0.005],  # an idle warning within seconds: lifecycle actions, notices
            },
            "allocation": {"foreign_slot_action": "log"},  # the engine is shared with others
            "plugins": {
                "disabled": ["mig"],
                "cgroups": {"root": cgroup_test_root},
                "prometheus": {"listen": f"127.0.0.1:{exporter}"},
            },
        },
    )
    config.chmod(0o644)
    log = open(base / "ds01d.log", "w")  # noqa: SIM115
    daemon = subprocess.Popen(
        [*DAEMON, "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        # the checkout's core, as pytest imports it, and the failing plugin's "site"
        env={**os.environ, "PYTHONPATH": f"{failing_plugin(base)}:{ROOT}"},
    )
    prometheus = None
    names: list[str] = []
    try:
        with running_gateway(config) as sock:
            for user in ("ds01ta", "ds01tb"):
                names.append(f"{container_prefix}-dash-{user}")
                run = docker(unix_users[user], sock, "run", "-d", "--name", names[-1],
                             "--gpus", "1", test_image, "sleep", "600")  # fmt: skip
                assert run.returncode == 0, run.stderr
            denied = docker(unix_users[USER], sock, "run", "-d", "--privileged", test_image, "true")
            assert denied.returncode != 0
            prometheus = Prometheus(base, prom_port, {"ds01": exporter, "dcgm": dcgm})
            yield prometheus
            for user, name in zip(("ds01ta", "ds01tb"), names, strict=True):
                docker(unix_users[user], sock, "rm", "-f", name)
    finally:
        if prometheus is not None:
            prometheus.stop()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        print((base / "ds01d.log").read_text()[-4000:])
        shutil.rmtree(base, ignore_errors=True)


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr.replace("$user", USER)


def panel_queries() -> list[tuple[str, str]]:
    """(dashboard: panel, expression) for every target of every panel that reads Prometheus
    (the history dashboard reads VictoriaMetrics: test_history_victoriametrics.py)."""
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            if panel.get("datasource", {}).get("uid", "ds01-prometheus") != "ds01-prometheus":
                continue
            for target in panel.get("targets", []):
                where = f"{board['title']}: {panel['title']} [{target['refId']}]"
                queries.append((where, substitute(target["expr"])))
    return queries


def recorded_series() -> list[tuple[str, str]]:
    """(rule file: record, selector) for every recording rule shipped, except the history
    rules (hourly and daily: tests/history.yml and test_history_victoriametrics.py)."""
    found = []
    for path in sorted((SHIPPED / "rules").glob("*.yml")):
        if path.name == "ds01-history.yml":
            continue
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    found.append((f"{path.name}: {rule['record']}", rule["record"]))
    return found


METRIC = re.compile(r"\b((?:ds01_|ds01:)[a-z0-9_:]+)")


def missing_names(prometheus: Prometheus, expr: str) -> list[str]:
    """The metric names an expression uses that Prometheus has no series of at all."""
    names = sorted(set(METRIC.findall(expr)))
    return [name for name in names if not prometheus.query(f'{{__name__="{name}"}}')]


def until_all_return_data(
    prometheus: Prometheus, queries: list[tuple[str, str]], timeout: float
) -> list[str]:
    """Poll every query until each has returned data once; what never did, explained."""
    pending = dict(queries)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for where, expr in list(pending.items()):
            if prometheus.query(expr):
                del pending[where]
        time.sleep(1)
    return [
        f"{where}: {expr}  (no series at all of: {', '.join(missing_names(prometheus, expr))})"
        for where, expr in pending.items()
    ]


def wait_for_scrapes(prometheus: Prometheus) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if prometheus.query('up{job="ds01"} == 1'):
                return
        except OSError:
            pass
        assert prometheus.process.poll() is None, "prometheus exited"
        assert time.monotonic() < deadline, "Prometheus never scraped ds01d's exporter"
        time.sleep(0.5)


def test_every_dashboard_panel_query_returns_data(scene: Prometheus) -> None:
    wait_for_scrapes(scene)
    queries = panel_queries()
    assert len(queries) >= 50
    failed = until_all_return_data(scene, queries, timeout=120)
    assert not failed, f"{len(failed)} of {len(queries)} panel queries return no data:\n" + (
        "\n".join(failed)
    )


def test_every_recording_rule_returns_data(scene: Prometheus) -> None:
    wait_for_scrapes(scene)
    rules = recorded_series()
    assert rules, "no recording rules shipped in ds01_prometheus/shipped/rules/"
    failed = until_all_return_data(scene, rules, timeout=60)
    assert not failed, f"{len(failed)} of {len(rules)} recording rules return no data:\n" + (
        "\n".join(failed)
    )
