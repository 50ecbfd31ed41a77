"""Signing in with a directory password: a bind to a real OpenLDAP server (slapd on loopback,
StartTLS with the test CA), found through the LDAP plugin's own settings (``plugins.ldap``:
the reader's DN and password file, ``user_base_dn``), for a user who is also a local account."""

from __future__ import annotations

import pytest

from tests.plugins.ldap.slapd import (
    BASE_LDIF,
    PEOPLE,
    READER_DN,
    READER_PASSWORD,
    Slapd,
    make_pki,
    missing_tools,
    person,
)
from tests.plugins.web.login_env import (
    PASSWORDS,
    WRONG,
    login_world,
    need_root,
    pam_service,
    passwords,
)
from tests.plugins.web.web_env import events

pytestmark = pytest.mark.integration
SETUP_HINT = "install it with: bash scripts/ci/setup-ldap.sh (as root)"


@pytest.fixture(scope="module")
def directory(tmp_path_factory, unix_users):
    """slapd with the LDAP tests' base data and an entry for the local user ds01ta."""
    missing = missing_tools()
    if missing:
        import os

        reason = f"OpenLDAP test server unavailable (missing: {', '.join(missing)})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true)", pytrace=False)
        pytest.skip(f"{reason}; {SETUP_HINT}")
    pki = make_pki(tmp_path_factory.mktemp("web-ldap-pki"))
    server = Slapd(tmp_path_factory.mktemp("web-slapd"), pki)
    server.start()
    try:
        server.ldapadd(BASE_LDIF)
        server.ldapadd(person("ds01ta", 20001))  # password "ds01tapw"
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ldap_section(directory, tmp_path_factory):
    secret = tmp_path_factory.mktemp("web-ldap-secret") / "reader"
    secret.write_text(READER_PASSWORD + "\n")
    secret.chmod(0o600)
    return {
        "servers": [directory.uri],
        "bind_dn": READER_DN,
        "bind_password_file": str(secret),
        "user_base_dn": PEOPLE,
        "start_tls": True,
        "ca_file": str(directory.pki.ca),
    }


@pytest.fixture(scope="module")
def world(ldap_section, tmp_path_factory):
    web = {"login": {"methods": ["ldap"]}}
    with login_world(tmp_path_factory.mktemp("login-ldap"), web, {"ldap": ldap_section}) as made:
        yield made


def test_the_directory_password_signs_a_local_user_in(world):
    client = world.client()
    answer = client.sign_in("ds01ta", "ds01tapw", "/test/whoami")
    assert answer.status == 303 and answer.location == "/test/whoami", answer
    assert client.get("/test/whoami").text == "ds01ta ldap"
    last = events(world.runtime, "web.login")[-1]
    assert last["user"] == "ds01ta"
    assert last["details"] == {"result": "ok", "method": "ldap", "address": "127.0.0.1"}


@pytest.mark.parametrize(
    "user, password, why",
    [
        ("ds01ta", "wrong", "refused"),  # a wrong password: the bind fails
        ("ds01ta", "", "empty"),  # an empty password would be an unauthenticated bind
        ("alice", "alicepw", "no local account"),  # in the directory, not on this server
        ("ds01tb", "ds01tbpw", "0 entries"),  # on this server, not in the directory
        ("ds01ta)(uid=*", "ds01tapw", "no local account"),  # a filter injection
    ],
)
def test_a_refused_directory_sign_in_says_only_wrong(world, user, password, why):
    answer = world.client().sign_in(user, password)
    assert answer.status == 401 and WRONG in answer.text, answer
    last = events(world.runtime, "web.login")[-1]["details"]
    assert last["result"] == "refused" and last["address"] == "127.0.0.1"
    assert why in last["why"], last


def test_methods_are_tried_in_order(ldap_section, unix_users, tmp_path_factory):
    need_root()
    web = {"login": {"methods": ["pam", "ldap"], "pam_service": "ds01-web-test"}}
    with (
        pam_service(),
        passwords({"ds01ta": PASSWORDS["ds01ta"]}),
        login_world(tmp_path_factory.mktemp("login-both"), web, {"ldap": ldap_section}) as both,
    ):
        for password, method in ((PASSWORDS["ds01ta"], "pam"), ("ds01tapw", "ldap")):
            client = both.client()
            assert client.sign_in("ds01ta", password).status == 303
            assert client.get("/test/whoami").text == f"ds01ta {method}"
        page = both.client().get("/login")
        assert "department (directory) password" in page.text
