"""A real OpenID provider for the sign-in tests: panva's node-oidc-provider (installed by
``bash scripts/ci/setup-oidc.sh`` into /opt/ds01-test-oidc, or DS01_OIDC_PROVIDER_DIR) run by
tests/oidc/provider.mjs on a free loopback port, with one client for ds01-web and test accounts
whose passwords its own sign-in form checks. Missing node or the install: skipped locally,
failed under CI=true."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "tests" / "oidc" / "provider.mjs"
INSTALL = Path(os.environ.get("DS01_OIDC_PROVIDER_DIR", "/opt/ds01-test-oidc"))
SETUP_HINT = "install it with: bash scripts/ci/setup-oidc.sh (as root)"
CLIENT_ID = "ds01-web"
CLIENT_SECRET = "test-client-secret-1234"
#: the provider's accounts: login -> password and claims (nobody-here has no local account)
ACCOUNTS = {
    "ta-at-uni": {"password": "uni-pass-a", "claims": {"preferred_username": "ds01ta"}},
    "tc-at-uni": {"password": "uni-pass-c", "claims": {"preferred_username": "ds01tc"}},
    "stranger": {"password": "uni-pass-s", "claims": {"preferred_username": "nobody-here"}},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def provider_available() -> None:
    node = shutil.which("node")
    if node and (INSTALL / "node_modules" / "oidc-provider").is_dir():
        return
    reason = f"the test OpenID provider is missing (node: {node or 'none'}, {INSTALL})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the OpenID tests must not be skipped)", pytrace=False)
    pytest.skip(f"{reason}; {SETUP_HINT}")


@attrs.frozen
class Provider:
    issuer: str
    directory: Path

    def log(self) -> str:
        return (self.directory / "provider.log").read_text(errors="replace")[-3000:]


@contextmanager
def oidc_provider(
    directory: Path,
    redirect_uris: list[str],
    host: str = "127.0.0.1",
    claims_in_id_token: bool = False,
) -> Iterator[Provider]:
    """The provider on ``host`` (127.0.0.1 or localhost) and a free port, until the end."""
    provider_available()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "node_modules").symlink_to(INSTALL / "node_modules")
    shutil.copyfile(SCRIPT, directory / "provider.mjs")
    port = free_port()
    issuer = f"http://{host}:{port}"
    config: dict[str, Any] = {
        "issuer": issuer,
        "host": "127.0.0.1",
        "port": port,
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": redirect_uris,
            }
        ],
        "accounts": ACCOUNTS,
        "claims_in_id_token": claims_in_id_token,
    }
    (directory / "config.json").write_text(json.dumps(config))
    log = (directory / "provider.log").open("w")
    process = subprocess.Popen(
        ["node", "provider.mjs", "config.json"],
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    made = Provider(issuer, directory)
    try:
        deadline = time.monotonic() + 20
        while "listening" not in made.log():
            assert process.poll() is None, f"the OpenID provider exited: {made.log()}"
            assert time.monotonic() < deadline, f"the OpenID provider did not start: {made.log()}"
            time.sleep(0.05)
        yield made
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def oidc_section(issuer: str, app_url: str, secret_file: Path, **more: Any) -> dict[str, Any]:
    """``plugins.web.login.oidc`` for the provider ``issuer`` and the app at ``app_url``."""
    secret_file.write_text(CLIENT_SECRET + "\n")
    secret_file.chmod(0o600)
    return {
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret_file": str(secret_file),
        "redirect_url": f"{app_url}/login/oidc/callback",
        "label": "Test University",
        **more,
    }
