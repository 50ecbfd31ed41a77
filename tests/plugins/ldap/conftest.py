"""Fixtures for ds01-ldap: a real slapd on loopback, and configurations pointing at it.

``slapd`` (session) is started once with the base data and must not be changed by tests; a
test that edits the directory or stops the server takes ``own_slapd``, a fresh instance of its
own (about 0.1 s). Without slapd installed the tests are skipped locally, naming the set-up
script, and fail under ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ds01_core.framework.runtime import Runtime, load_runtime
from tests.plugins.ldap.slapd import (
    BASE_LDIF,
    GROUPS,
    PEOPLE,
    READER_DN,
    READER_PASSWORD,
    Pki,
    Slapd,
    make_pki,
    missing_tools,
)

SETUP_HINT = "install it with: bash scripts/ci/setup-ldap.sh (as root)"

#: ds01 groups the tests define in ``limits.groups``
LIMIT_GROUPS = {
    "student": {"max_gpu_equivalents": 1},
    "researcher": {"max_gpu_equivalents": 2},
    "faculty": {"max_gpu_equivalents": 4},
    "admin": {"max_gpu_equivalents": 8},
}


@pytest.fixture(scope="session")
def slapd_available() -> None:
    missing = missing_tools()
    if not missing:
        return
    reason = f"OpenLDAP test server unavailable (missing: {', '.join(missing)})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the LDAP tests must not be skipped)", pytrace=False)
    pytest.skip(f"{reason}; {SETUP_HINT}")


@pytest.fixture(scope="session")
def pki(slapd_available: None, tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throw-away CA and server certificate (127.0.0.1, localhost), and an unrelated CA."""
    return make_pki(tmp_path_factory.mktemp("ldap-pki"))


def _started(directory: Path, pki: Pki) -> Slapd:
    server = Slapd(directory, pki)
    server.start()
    try:
        server.ldapadd(BASE_LDIF)
    except Exception:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def slapd(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """The shared server with the base data (read-only for tests); stopped at the end."""
    server = _started(tmp_path_factory.mktemp("slapd"), pki)
    yield server
    server.stop()


@pytest.fixture
def own_slapd(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A server of this test's own with the base data, to edit or to stop."""
    server = _started(tmp_path_factory.mktemp("own-slapd"), pki)
    yield server
    server.stop()


@pytest.fixture
def password_file(tmp_path: Path) -> str:
    path = tmp_path / "ldap-password"
    path.write_text(READER_PASSWORD + "\n")
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def ldap_section(password_file: str) -> Callable[..., dict[str, Any]]:
    """``ldap_section(server, **overrides)``: a ``plugins.ldap`` section for a test server."""

    def make(server: Slapd | None = None, **overrides: Any) -> dict[str, Any]:
        section: dict[str, Any] = {
            "servers": [server.uri] if server else [],
            "bind_dn": READER_DN,
            "bind_password_file": password_file,
            "user_base_dn": PEOPLE,
            "group_base_dn": GROUPS,
            "groups": {
                "student": {"ldap": f"cn=students,{GROUPS}", "precedence": 10},
                "researcher": {"ldap": "researchers", "precedence": 20},
                "faculty": {"ldap": "faculty", "precedence": 30},
            },
            "sync_interval": "1h",
        }
        section.update(overrides)
        return section

    return make


@pytest.fixture
def ldap_runtime(
    tmp_config: Callable[..., Path], ldap_section: Callable[..., dict[str, Any]]
) -> Iterator[Callable[..., Runtime]]:
    """``ldap_runtime(server, **section_overrides)``: a runtime loaded through the installed
    plugin (entry point ``ldap``), with ds01's groups and a ``plugins.ldap`` section."""
    made: list[Runtime] = []

    def make(server: Slapd | None = None, **overrides: Any) -> Runtime:
        path = tmp_config(
            {
                "limits": {"groups": LIMIT_GROUPS},
                "plugins": {"ldap": ldap_section(server, **overrides)},
            }
        )
        runtime = load_runtime(str(path))
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()
