"""``ds01-web`` as its own process: HTTPS with the configured certificate on the configured
port, and a clear one-line refusal to start on a bad ``plugins.web`` section."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.helpers.config import write_config

START = "from ds01_web.main import main; main()"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serves_https_with_its_own_certificate(tmp_path):
    cert, key = tmp_path / "web.pem", tmp_path / "web.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    web = {"port": port, "tls_cert": str(cert), "tls_key": str(key)}
    config = write_config(tmp_path, {"plugins": {"web": web}})
    log = open(tmp_path / "web.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-c", START, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    context = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/api/v1/openapi.json", context=context, timeout=5
                ) as answer:
                    document = json.load(answer)
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "web.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "web.log").read_text()
                time.sleep(0.1)
        assert document["openapi"].startswith("3.") and "/api/v1/whoami" in document["paths"]
        with pytest.raises(OSError):  # no plain HTTP on the TLS port
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=5)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        log.close()


@pytest.mark.parametrize(
    "web, words",
    [
        ({"tls_cert": "/etc/ds01/web.pem"}, "plugins.web.tls_key"),
        ({"port": 70000}, "plugins.web.port"),
        ({"rate_limit": 0}, "plugins.web.rate_limit"),
        ({"tls_cert": "/nonexistent.pem", "tls_key": "/nonexistent.key"}, "cannot read"),
    ],
)
def test_a_bad_section_is_refused_in_one_line(tmp_path, web, words):
    config = write_config(tmp_path, {"plugins": {"web": web}})
    result = subprocess.run(
        [sys.executable, "-c", START, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert words in result.stderr and "Traceback" not in result.stderr, result.stderr
