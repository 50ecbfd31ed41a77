"""The shipped ``remote_write`` for real: Debian's Prometheus runs the shipped ``prometheus.yml``
and rules (only the ports rewritten, and a 1 s scrape) against an exposition on loopback, and
Debian's VictoriaMetrics (the shipped arguments) receives ds01's series, the ds01:* series
Prometheus records and ``up`` — and not a series outside ds01 that the same page serves."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
import yaml

from tests.helpers.waiting import wait_until
from tests.plugins.prometheus.alerting import SHIPPED, binary, run
from tests.plugins.prometheus.exporter_helpers import free_port
from tests.plugins.prometheus.victoria import Victoria

pytestmark = pytest.mark.integration

PAGE = b"""\
# HELP ds01_user_gpu_equivalents GPU-equivalents held.
# TYPE ds01_user_gpu_equivalents gauge
ds01_user_gpu_equivalents{user="alice"} 2
# HELP ds01_gpu_capacity_gpu_equivalents Capacity.
# TYPE ds01_gpu_capacity_gpu_equivalents gauge
ds01_gpu_capacity_gpu_equivalents 8
# HELP ds01_gpu_allocated_gpu_equivalents Allocated.
# TYPE ds01_gpu_allocated_gpu_equivalents gauge
ds01_gpu_allocated_gpu_equivalents 2
# HELP elsewhere_metric Not ds01's.
# TYPE elsewhere_metric gauge
elsewhere_metric 1
"""


class Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def exposition() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port(20000, 20099)), Page)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def free_ports(count: int) -> list[int]:
    """``count`` different free 200xx ports (held open together while they are picked)."""
    held: list[socket.socket] = []
    try:
        for port in range(20000, 20100):
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
            if len(held) == count:
                return [int(s.getsockname()[1]) for s in held]
        raise AssertionError(f"fewer than {count} free ports in 20000-20099")
    finally:
        for sock in held:
            sock.close()


def configured(text: str, ports: dict[str, int]) -> str:
    """The shipped configuration with each loopback port replaced, and a 1 s scrape."""
    for shipped, port in ports.items():
        assert f"127.0.0.1:{shipped}" in text, f"the shipped prometheus.yml has no {shipped}"
        text = text.replace(f"127.0.0.1:{shipped}", f"127.0.0.1:{port}")
    for setting in ("scrape_interval", "evaluation_interval"):
        assert f"{setting}: 15s" in text
        text = text.replace(f"{setting}: 15s", f"{setting}: 1s")
    return text


def test_prometheus_remote_writes_ds01s_series_to_victoriametrics(
    tmp_path: Path, exposition: int
) -> None:
    vm = Victoria(tmp_path)
    prometheus_port, dcgm_port, alertmanager_port = free_ports(3)
    base = tmp_path / "prometheus"
    shutil.copytree(SHIPPED / "rules", base / "rules", ignore=shutil.ignore_patterns("tests"))
    text = (SHIPPED / "prometheus" / "prometheus.yml").read_text()
    ports = {"8428": vm.port, "9101": exposition, "9400": dcgm_port, "9093": alertmanager_port}
    config = base / "prometheus.yml"
    config.write_text(configured(text, ports))
    (remote,) = yaml.safe_load(config.read_text())["remote_write"]
    assert remote["url"] == f"http://127.0.0.1:{vm.port}/api/v1/write" and remote["queue_config"]
    check = run([binary("promtool"), "check", "config", str(config)])
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(base / "prometheus.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={base / 'data'}",
         f"--web.listen-address=127.0.0.1:{prometheus_port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wanted = {
            'ds01_user_gpu_equivalents{job="ds01",user="alice"}': 2.0,
            'up{job="ds01"}': 1.0,
            'ds01:gpu_allocated:ratio{job="ds01"}': 0.25,  # recorded by Prometheus: 2 / 8
        }

        def arrived() -> bool:
            assert process.poll() is None, (base / "prometheus.log").read_text()[-3000:]
            vm.flush()
            for expr, value in wanted.items():
                found = vm.query(expr)
                if not found or float(found[0]["value"][1]) != value:
                    return False
            return True

        wait_until(arrived, timeout=90, what="ds01's series in VictoriaMetrics", every=0.5)
        # Prometheus has the other page's series, VictoriaMetrics does not (write_relabel_configs)
        url = f"http://127.0.0.1:{prometheus_port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": "elsewhere_metric"}
        )
        with urllib.request.urlopen(url, timeout=10) as response:
            assert json.load(response)["data"]["result"], "Prometheus did not scrape the page"
        vm.flush()
        assert vm.query('{__name__="elsewhere_metric"}') == []
        assert vm.query('{__name__=~"ds01_.+", job="dcgm"}') == []
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        vm.stop()
