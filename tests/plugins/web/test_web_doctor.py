"""``ds01 admin doctor``'s checks of ds01-web, on real files: certificates made by openssl, the
shipped PAM file installed under a test name, secret files with real modes; and the findings in
the real ``ds01 admin doctor --json``."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ds01_core.framework.runtime import load_runtime
from ds01_core.transports.cli import cli
from ds01_web.doctor import check_sign_in, check_tls, doctor_checks, set_up_here
from tests.helpers.config import write_config
from tests.plugins.web.login_env import need_root, pam_service

NOW = dt.datetime.now(dt.UTC)


def runtime_for(directory: Path, web: dict[str, Any], extra: dict[str, Any] | None = None) -> Any:
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory, {"plugins": {"web": web, **(extra or {})}})
    return load_runtime(str(config))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def certificate(directory: Path, days: int) -> tuple[str, str]:
    cert, key = directory / f"web-{days}.pem", directory / f"web-{days}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
         "-subj", "/CN=gpu.example.edu", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def test_off_loopback_without_tls_is_a_problem_and_loopback_is_not(tmp_path):
    exposed = check_tls(runtime_for(tmp_path / "a", {"listen": "0.0.0.0"}), NOW)
    assert not exposed.ok and "without TLS" in exposed.message
    assert exposed.fix and "tls_cert" in exposed.fix
    assert check_tls(runtime_for(tmp_path / "b", {"listen": "127.0.0.1"}), NOW).ok


@pytest.mark.parametrize(("days", "ok", "words"), [(365, True, "valid until"),
                                                   (5, False, "expires on")])  # fmt: skip
def test_a_certificate_expiring_soon_is_a_problem(tmp_path, days, ok, words):
    cert, key = certificate(tmp_path, days)
    finding = check_tls(runtime_for(tmp_path, {"tls_cert": cert, "tls_key": key}), NOW)
    assert finding.ok is ok and words in finding.message, finding
    expires = (NOW + dt.timedelta(days=days)).strftime("%Y-%m-%d")
    assert (
        expires in finding.message
        or (NOW + dt.timedelta(days=days - 1)).strftime("%Y-%m-%d") in finding.message
    )


def test_an_expired_or_unreadable_certificate_is_a_problem(tmp_path):
    cert, key = certificate(tmp_path, 1)
    later = check_tls(runtime_for(tmp_path, {"tls_cert": cert, "tls_key": key}),
                      NOW + dt.timedelta(days=3))  # fmt: skip
    assert not later.ok and "expired" in later.message
    Path(cert).write_text("not a certificate\n")
    broken = check_tls(runtime_for(tmp_path / "x", {"tls_cert": cert, "tls_key": key}), NOW)
    assert not broken.ok and "cannot read the certificate" in broken.message


def test_pam_without_its_service_file_is_a_problem(tmp_path):
    need_root()
    missing = check_sign_in(
        runtime_for(tmp_path / "a", {"login": {"methods": ["pam"], "pam_service": "ds01-nosuch"}})
    )
    assert [f.ok for f in missing] == [False]
    assert "no PAM service 'ds01-nosuch'" in missing[0].message
    assert "packaging/pam.d/ds01-web" in (missing[0].fix or "")
    with pam_service() as service:
        there = check_sign_in(
            runtime_for(tmp_path / "b", {"login": {"methods": ["pam"], "pam_service": service}})
        )
    assert [f.ok for f in there] == [True]


def test_ldap_without_servers_is_a_problem(tmp_path):
    found = check_sign_in(runtime_for(tmp_path, {"login": {"methods": ["ldap"]}}))
    assert [f.ok for f in found] == [False] and "names no servers" in found[0].message


def test_an_oidc_secret_others_can_read_is_a_problem(tmp_path):
    need_root()
    secret = tmp_path / "oidc-secret"
    secret.write_text("s3cret\n")
    oidc = {
        "issuer": "https://login.example.edu/realms/uni",
        "client_id": "ds01-gpu",
        "client_secret_file": str(secret),
        "redirect_url": "https://gpu.example.edu/login/oidc/callback",
    }
    web = {"login": {"methods": [], "oidc": oidc}}
    secret.chmod(0o644)
    (open_finding,) = check_sign_in(runtime_for(tmp_path / "a", web))
    assert not open_finding.ok and "others may read it" in open_finding.message
    secret.chmod(0o600)
    (closed,) = check_sign_in(runtime_for(tmp_path / "b", web))
    assert closed.ok


def test_where_ds01_web_is_not_set_up_the_doctor_says_so_and_it_is_no_problem(tmp_path):
    """No ds01-web.service and no ds01-web running (as on this test host): one finding, ok."""
    assert set_up_here() is None
    config = write_config(tmp_path, {"plugins": {"web": {"listen": "0.0.0.0"}}})
    (only,) = doctor_checks(load_runtime(str(config)))
    assert only.ok and only.check == "web" and "not set up here" in only.message


def test_a_running_ds01_web_is_checked_in_ds01_admin_doctor(tmp_path):
    """The real ``ds01-web`` running (as its unit runs it): ``ds01 admin doctor --json`` has
    the web checks, and a listener off loopback without TLS is a problem there."""
    port = free_port()
    web = {"listen": "127.0.0.1", "port": port}
    config = write_config(tmp_path, {"plugins": {"web": web}})
    (tmp_path / "doctor").mkdir()
    doctor_config = write_config(
        tmp_path / "doctor", {"plugins": {"web": {"listen": "0.0.0.0", "port": port}}}
    )
    log = open(tmp_path / "web.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-c", "from ds01_web.main import main; main()", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while set_up_here() is None:
            assert process.poll() is None, (tmp_path / "web.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        shown = CliRunner().invoke(
            cli, ["--config", str(doctor_config), "admin", "doctor", "--json"]
        )
    finally:
        process.terminate()
        process.wait(10)
        log.close()
    assert shown.exit_code in (0, 1), shown.output
    findings = json.loads(shown.output)
    rows = findings if isinstance(findings, list) else findings["findings"]
    web_tls = [f for f in rows if f["check"] == "web tls"]
    assert web_tls and not web_tls[0]["ok"] and "without TLS" in web_tls[0]["message"], rows
    assert any(f["check"] == "web sign-in" for f in rows)
