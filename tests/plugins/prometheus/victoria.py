"""Debian's VictoriaMetrics for the tests: started with the shipped arguments (only its storage
directory and port changed) on a free 200xx loopback port, and its HTTP API."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.helpers.waiting import wait_until
from tests.plugins.prometheus.alerting import SHIPPED, binary
from tests.plugins.prometheus.exporter_helpers import free_port

ARGS_FILE = SHIPPED / "victoriametrics" / "victoria-metrics"
UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def seconds(duration: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([hdwy])", duration).groups()  # type: ignore[union-attr]
    return int(number) * UNITS[unit]


def shipped_args() -> list[str]:
    """``ARGS`` as systemd passes ``$ARGS``: the quoted value split at white space."""
    (line,) = [x for x in ARGS_FILE.read_text().splitlines() if x.startswith("ARGS=")]
    (value,) = shlex.split(line.removeprefix("ARGS="))
    return value.split()


def flag(args: list[str], name: str) -> str:
    (found,) = [a.split("=", 1)[1] for a in args if a.startswith(f"-{name}=")]
    return found


class Victoria:
    """``victoria-metrics`` with the shipped arguments on a free 200xx port and its API."""

    def __init__(self, base: Path):
        self.port = free_port(20000, 20099)
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            a for a in shipped_args() if not a.startswith(("-storageDataPath=", "-httpListenAddr="))
        ]
        assert len(args) == len(shipped_args()) - 2, "the shipped ARGS lost its path or address"
        self.args = args
        self.log = open(base / "vm.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary("victoria-metrics"), f"-storageDataPath={base / 'vm'}",
             f"-httpListenAddr=127.0.0.1:{self.port}", *args],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self.healthy, timeout=30, what="victoria-metrics answering /health", every=0.05)

    def healthy(self) -> bool:
        assert self.process.poll() is None, (Path(self.log.name).read_text())[-2000:]
        try:
            return self.get("/health", raw=True) == b"OK"
        except OSError:
            return False

    def get(self, path: str, raw: bool = False, **query: Any) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        with urllib.request.urlopen(url, timeout=60) as response:
            body = response.read()
        return body if raw else json.loads(body)

    def post(self, path: str, body: str) -> int:
        request = urllib.request.Request(self.url + path, data=body.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            return int(response.status)

    def flush(self) -> None:
        self.get("/internal/force_flush", raw=True)

    def query(self, expr: str, at: int | None = None) -> list[dict[str, Any]]:
        extra = {} if at is None else {"time": at}
        answer = self.get("/api/v1/query", query=expr, nocache=1, **extra)
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def query_range(self, expr: str, start: int, end: int, step: int) -> list[dict[str, Any]]:
        answer = self.get(
            "/api/v1/query_range", query=expr, start=start, end=end, step=step, nocache=1
        )
        assert answer["status"] == "success", (expr, answer)
        return list(answer["data"]["result"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
