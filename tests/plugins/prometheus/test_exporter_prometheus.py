"""A real Prometheus (Debian's 2.42) scrapes the exporter over TLS with basic auth, negotiates
OpenMetrics, and stores every family: ``up`` is 1 and the series are queryable."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ds01_core.cycle.pipeline import run_cycle
from ds01_core.domain.model import Workload
from ds01_core.domain.state.allocations import Allocations
from ds01_prometheus.server import ExporterService
from tests.conftest import unavailable
from tests.plugins.prometheus.exporter_helpers import (
    free_port,
    make_runtime,
    running,
    self_signed,
)


@pytest.fixture
def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        unavailable("prometheus is not installed (bash scripts/ci/setup-monitoring.sh)")
    assert path is not None
    return path


class Prometheus:
    def __init__(self, binary: str, directory: Path, scrape: dict) -> None:
        self.port = free_port()
        config = directory / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {"global": {"scrape_interval": "1s"}, "scrape_configs": [scrape]},
            )
        )
        self.log = directory / "prometheus.log"
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)["data"]["result"]

    def wait(self, expr: str, timeout: float = 40.0) -> list[dict]:
        """Poll ``expr`` until it returns something (the first scrape takes ~6 s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                found = self.query(expr)
            except OSError:
                found = []
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"no result for {expr} in {timeout}s\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def prometheus(prometheus_binary, tmp_path) -> Iterator:
    started: list[Prometheus] = []

    def start(scrape: dict) -> Prometheus:
        where = tmp_path / f"prometheus{len(started)}"
        where.mkdir()
        started.append(Prometheus(prometheus_binary, where, scrape))
        return started[-1]

    yield start
    for p in started:
        p.stop()


def test_a_real_prometheus_scrapes_over_tls_with_basic_auth(tmp_path, prometheus):
    cert, key = self_signed(tmp_path)
    password = tmp_path / "exporter.password"
    password.write_text("pr0m-secret\n")
    password.chmod(0o600)
    port = free_port()
    runtime = make_runtime(
        tmp_path,
        {
            "plugins": {
                "prometheus": {
                    "listen": f"127.0.0.1:{port}",
                    "tls_cert_file": str(cert),
                    "tls_key_file": str(key),
                    "basic_auth_username": "prometheus",
                    "basic_auth_password_file": str(password),
                }
            }
        },
    )
    slot = runtime.gpu.slots()[0]
    with runtime.state.transaction() as db:
        Allocations.insert_bound(db, "alice", "a" * 64, "train", [slot.uuid], 1.0, runtime.now())
    box = Workload(
        kind="container",
        id="a" * 64,
        name="train",
        origin="ds01",
        owner="alice",
        owner_source="label",
        status="running",
        gpu_slots=[slot.uuid],
    )
    run_cycle(runtime, workloads=[box])
    service = ExporterService(runtime, runtime.plugin_config("prometheus"))
    with running(service):
        server = prometheus(
            {
                "job_name": "ds01",
                "scheme": "https",
                "tls_config": {"ca_file": str(cert)},
                "basic_auth": {"username": "prometheus", "password_file": str(password)},
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }
        )
        (up,) = server.wait('up{job="ds01"} == 1')
        assert up["value"][1] == "1"
        allocated = server.wait('ds01_slot_allocated{container="train"}')
        assert allocated[0]["metric"]["user"] == "alice"
        assert allocated[0]["metric"]["slot"] == "0"
        slots = server.query("count(ds01_slot_info)")
        assert slots[0]["value"][1] == str(len(runtime.gpu.slots()))
        assert server.query("ds01_gpu_energy_joules_total")  # a counter, by its full name
        assert server.query('ds01_cycle_duration_seconds_bucket{cycle="full",le="+Inf"}')

        # a Prometheus with a wrong password gets nothing: the target is down
        wrong = tmp_path / "wrong.password"
        wrong.write_text("guess\n")
        intruder = prometheus(
            {
                "job_name": "ds01",
                "scheme": "https",
                "tls_config": {"ca_file": str(cert)},
                "basic_auth": {"username": "prometheus", "password_file": str(wrong)},
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }
        )
        (down,) = intruder.wait('up{job="ds01"} == 0')
        assert down["value"][1] == "0"
        assert intruder.query("ds01_slot_info") == []
