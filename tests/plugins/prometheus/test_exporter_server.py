"""The exporter's listener on real sockets: routes and methods, OpenMetrics and gzip, TLS with a
certificate made by ``openssl`` now, basic auth that lets the right password in and refuses
the rest, an address in use refused at start, a stop within a second."""

from __future__ import annotations

import base64
import gzip
import importlib.util
import socket
import ssl
import sys
import time
import types
import urllib.request
from pathlib import Path

import pytest

from ds01_core.cycle.pipeline import run_cycle
from ds01_core.domain.model import Workload
from ds01_core.domain.state.allocations import Allocations
from ds01_prometheus.server import ExporterError, ExporterService
from tests.plugins.prometheus.exporter_helpers import (
    free_port,
    make_runtime,
    parse,
    running,
    scrape,
    self_signed,
    value,
)


def service_for(tmp_path: Path, **section: object) -> ExporterService:
    runtime = make_runtime(
        tmp_path, {"plugins": {"prometheus": {"listen": "127.0.0.1:0", **section}}}
    )
    run_cycle(runtime, workloads=[])
    return ExporterService(runtime, runtime.plugin_config("prometheus"))


def url(service: ExporterService, path: str = "/metrics", scheme: str = "http") -> str:
    host, port = service.address
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}{path}"


def request(method: str, target: str, body: bytes = b"") -> int:
    req = urllib.request.Request(target, data=body or None, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_routes_and_methods(tmp_path):
    with running(service_for(tmp_path)) as service:
        status, headers, body = scrape(url(service))
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert value(parse(body.decode()), "ds01_gpus_available") == 1
        status, headers, body = scrape(url(service, "/"))
        assert status == 200 and b'href="/metrics"' in body
        assert scrape(url(service, "/-/healthy"))[:1] == (200,)
        assert scrape(url(service, "/nothing"))[0] == 404
        assert request("POST", url(service), b"x") == 405
        assert request("DELETE", url(service)) == 405
        assert request("GET", url(service, "/alertmanager")) == 405


def test_alertmanager_is_not_found_without_the_receiver(tmp_path):
    """404 while ``ds01_prometheus.alert_receiver`` is not installed; once it is, it answers."""
    installed = importlib.util.find_spec("ds01_prometheus.alert_receiver") is not None
    with running(service_for(tmp_path)) as service:
        status = request("POST", url(service, "/alertmanager"), b"{}")
    assert (status != 404) if installed else (status == 404), status


def test_alertmanager_posts_reach_the_receiver_with_what_it_needs(tmp_path, monkeypatch):
    """The contract with ``ds01_prometheus.alert_receiver``: ``receive(runtime, settings, body,
    authorization, peer) -> (status, text)``; basic auth does not apply (it has its token)."""
    calls: list[tuple] = []

    def receive(runtime, settings, body, authorization, peer):
        calls.append((runtime, settings, body, authorization, peer))
        return (202, "accepted\n") if authorization == "Bearer t0ken" else (401, "no\n")

    receiver = types.ModuleType("ds01_prometheus.alert_receiver")
    receiver.receive = receive  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ds01_prometheus.alert_receiver", receiver)
    password = tmp_path / "pw"
    password.write_text("x\n")
    service = service_for(tmp_path, basic_auth_username="p", basic_auth_password_file=str(password))
    with running(service):
        req = urllib.request.Request(
            url(service, "/alertmanager"),
            data=b'{"alerts": []}',
            headers={"Authorization": "Bearer t0ken", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as response:
            assert (response.status, response.read()) == (202, b"accepted\n")
        assert request("POST", url(service, "/alertmanager"), b"{}") == 401
    runtime, settings, body, authorization, peer = calls[0]
    assert runtime is service.runtime and settings is service.settings.alert_receiver
    assert (body, authorization, peer) == (b'{"alerts": []}', "Bearer t0ken", "127.0.0.1")


def test_openmetrics_and_gzip_on_request(tmp_path):
    with running(service_for(tmp_path)) as service:
        status, headers, body = scrape(
            url(service), headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert status == 200
        assert headers["Content-Type"].startswith("application/openmetrics-text")
        assert body.rstrip().endswith(b"# EOF")
        assert b"# TYPE ds01_gpu_energy_joules counter" in body
        status, headers, body = scrape(url(service), headers={"Accept-Encoding": "gzip"})
        assert headers.get("Content-Encoding") == "gzip"
        assert b"ds01_slot_info{" in gzip.decompress(body)


def test_each_cycle_s_snapshot_is_served_in_every_encoding(tmp_path):
    """The page cache never serves an older snapshot: after a cycle, both encodings show it."""
    service = service_for(tmp_path)
    runtime = service.runtime
    openmetrics = {"Accept": "application/openmetrics-text;version=1.0.0"}
    with running(service):
        for headers in ({}, openmetrics):
            assert b'container="cached"' not in scrape(url(service), headers=headers)[2]
        slot = runtime.gpu.slots()[0]
        with runtime.state.transaction() as db:
            Allocations.insert_bound(
                db, "alice", "c" * 64, "cached", [slot.uuid], 1.0, runtime.now()
            )
        run_cycle(runtime, workloads=[])  # no such container: reconcile releases it again
        run_cycle(runtime, workloads=[])
        for headers in ({}, openmetrics):
            assert b'container="cached"' not in scrape(url(service), headers=headers)[2]
        with runtime.state.transaction() as db:
            Allocations.insert_bound(db, "alice", "d" * 64, "kept", [slot.uuid], 1.0, runtime.now())
        box = Workload(
            kind="container",
            id="d" * 64,
            name="kept",
            origin="ds01",
            owner="alice",
            owner_source="label",
            status="running",
            gpu_slots=[slot.uuid],
        )
        run_cycle(runtime, workloads=[box])
        for headers in ({}, openmetrics):
            body = scrape(url(service), headers=headers)[2]
            assert b'container="kept"' in body
        assert body.count(b"# EOF") == 1 and body.endswith(b"# EOF\n")
        assert b"ds01_exporter_scrape_duration_seconds " in body


def test_an_address_in_use_is_refused_at_start_and_stop_is_prompt(tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        busy = service_for(tmp_path, listen=f"127.0.0.1:{port}")
        with pytest.raises(OSError):
            busy.start()
        busy.stop()  # allowed after a failed start
    service = service_for(tmp_path, listen=f"127.0.0.1:{port}")
    service.start()
    assert scrape(url(service, "/-/healthy"))[0] == 200
    started = time.monotonic()
    service.stop()
    assert time.monotonic() - started < 1.0
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_ipv6_loopback(tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 on this machine")
    with running(service_for(tmp_path, listen="[::1]:0")) as service:
        assert service.address[0] == "::1"
        assert scrape(url(service))[0] == 200


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_tls_and_basic_auth(tmp_path, certificate):
    cert, key = certificate
    password = tmp_path / "exporter.password"
    password.write_text("s3cret-Ü\n")
    password.chmod(0o600)
    service = service_for(
        tmp_path,
        tls_cert_file=str(cert),
        tls_key_file=str(key),
        basic_auth_username="prometheus",
        basic_auth_password_file=str(password),
    )
    trusted = ssl.create_default_context(cafile=str(cert))
    with running(service):
        target = url(service, scheme="https")
        status, headers, _ = scrape(target, context=trusted)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
        assert scrape(target, headers=basic("prometheus", "wrong"), context=trusted)[0] == 401
        assert scrape(target, headers=basic("other", "s3cret-Ü"), context=trusted)[0] == 401
        assert scrape(target, headers={"Authorization": "Basic !!"}, context=trusted)[0] == 401
        status, _, body = scrape(target, headers=basic("prometheus", "s3cret-Ü"), context=trusted)
        assert status == 200 and b"ds01_slot_info{" in body
        assert scrape(url(service, "/", "https"), context=trusted)[0] == 401
        # health answers without credentials; plain HTTP gets no answer from a TLS port
        assert scrape(url(service, "/-/healthy", "https"), context=trusted)[0] == 200
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(url(service), timeout=5).read()
        # a client that does not trust the certificate is refused by its own TLS check
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(target, timeout=5, context=ssl.create_default_context())
        # the listener still serves after those failures
        assert scrape(url(service, "/-/healthy", "https"), context=trusted)[0] == 200


def test_an_unreadable_or_empty_password_file_stops_the_start(tmp_path):
    missing = service_for(
        tmp_path, basic_auth_username="p", basic_auth_password_file=str(tmp_path / "none")
    )
    with pytest.raises(ExporterError, match="basic_auth_password_file"):
        missing.start()
    empty = tmp_path / "empty"
    empty.write_text("\n")
    service = service_for(tmp_path, basic_auth_username="p", basic_auth_password_file=str(empty))
    with pytest.raises(ExporterError, match="is empty"):
        service.start()


def test_a_broken_certificate_stops_the_start(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    service = service_for(tmp_path, tls_cert_file=str(junk), tls_key_file=str(junk))
    with pytest.raises(ExporterError, match="TLS certificate"):
        service.start()


def test_bad_requests_get_answers_not_tracebacks(tmp_path, capfd):
    with running(service_for(tmp_path)) as service:
        host, port = service.address
        for raw in (
            b"POST /alertmanager HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
            b"POST /alertmanager HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ):
            with socket.create_connection((host, port), timeout=5) as conn:
                conn.sendall(raw)
                answer = conn.recv(200)
            assert b"400" in answer or b"413" in answer, answer
        # a client that hangs up at once costs nothing either
        with socket.create_connection((host, port), timeout=5):
            pass
        assert scrape(url(service, "/-/healthy"))[0] == 200
    assert "Traceback" not in capfd.readouterr().err
