"""Helpers for the exporter's tests: runtimes on the simulated host, scrapes parsed into samples,
NVML calls counted, free loopback ports (193xx by default), a real ``ds01d`` as its own process."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ds01_core.domain.audit_log import EventLog
from ds01_core.framework.runtime import Runtime, load_runtime
from ds01_prometheus.collector import exporter_of
from tests.helpers.config import write_config

#: plugins the snapshot tests leave out: they act on the host (cgroups, quotas) or the network
QUIET = ["docker-detector", "gpu-process-detector", "cgroups", "diskquota", "ldap", "notify"]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port(first: int = 19300, last: int = 19399) -> int:
    """A loopback port in ``first``-``last`` (193xx unless told) nobody listens on now."""
    for port in range(first, last + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {first}-{last}")


def make_runtime(
    directory: Path,
    extra: dict[str, Any] | None = None,
    plugins: tuple[tuple[str, object], ...] = (),
) -> Runtime:
    """A runtime with the installed plugins (the prometheus plugin among them) on the simulated
    host, in ``directory``; detectors and host-touching plugins off."""
    section: dict[str, Any] = {"disabled": QUIET, "prometheus": {"listen": "127.0.0.1:0"}}
    data = {"plugins": section, **(extra or {})}
    if "plugins" in (extra or {}):
        data["plugins"] = {**section, **extra["plugins"]}  # type: ignore[index]
    runtime = load_runtime(str(write_config(directory, data)), extra_plugins=plugins)
    exporter_of(runtime)  # as the listener's start does: from now on each cycle updates it
    return runtime


def parse(text: str) -> Samples:
    """``{(sample name, labels): value}`` of an exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def find(samples: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples called ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return {lab: v for (n, lab), v in samples.items() if n == name and wanted <= lab}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample ``name{labels}`` (exactly these labels)."""
    return samples[(name, frozenset(labels.items()))]


def scrape(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One GET; the status, headers and body (an HTTP error is an answer, not an exception)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def count_nvml_calls(nvml: Any) -> Counter[str]:
    """Count every ``nvml*`` call made on the simulated driver object from now on."""
    calls: Counter[str] = Counter()
    for name in dir(type(nvml)):
        if not name.startswith("nvml"):
            continue
        original = getattr(nvml, name)
        if not callable(original):
            continue

        def wrapper(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls[_name] += 1
            return _original(*args, **kw)

        setattr(nvml, name, wrapper)
    return calls


class NoDocker:
    """Stands in for ``runtime.docker``: any use is recorded and fails the test's assertion."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.used.append(name)
        raise AssertionError(f"Docker used: {name}")


@contextlib.contextmanager
def running(service: Any) -> Iterator[Any]:
    service.start()
    try:
        yield service
    finally:
        service.stop()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1, made with ``openssl req -x509`` now."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed for the TLS tests"
    cert, key = directory / "exporter.crt", directory / "exporter.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


DAEMON = [sys.executable, "-c", "from ds01_core.cycle.daemon import main; main()"]


class Daemon:
    """``ds01d --config …`` as its own process, its output in a file beside the config; its
    exporter listens on 127.0.0.1:``port``."""

    def __init__(self, config: Path, port: int) -> None:
        self.config, self.port = config, port
        self.log_path = config.parent / "ds01d.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*DAEMON, "--config", str(config)], stdout=self._log, stderr=subprocess.STDOUT
        )

    def metrics(self) -> str:
        status, _headers, body = scrape(f"http://127.0.0.1:{self.port}/metrics")
        assert status == 200, body
        return body.decode()

    def wait_metrics(
        self, predicate: Callable[[Samples], bool], what: str, timeout: float = 30.0
    ) -> str:
        """Scrape until ``predicate(samples)`` holds (polled, never a fixed sleep)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            with contextlib.suppress(OSError):
                last = self.metrics()
                if predicate(parse(last)):
                    return last
            time.sleep(0.1)
        raise AssertionError(f"no {what} within {timeout}s\n{last[-2000:]}\n{self.output()}")

    def events(self, event_type: str) -> list[dict[str, Any]]:
        """The daemon's audit events of ``event_type`` so far (its log under ``log/``)."""
        log = EventLog(self.config.parent / "log" / "events.jsonl")
        return [e for e in log.read(warn=lambda _m: None) if e["event_type"] == event_type]

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        self._log.close()
