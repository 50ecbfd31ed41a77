"""``plugins.web.login``: defaults, every bad value a problem named by its path, and the pieces
of sign-in that need no server (the brake's arithmetic, the user name from a claim, PKCE)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ds01_core.domain.config.errors import ConfigError
from ds01_core.framework.runtime import load_runtime
from ds01_web.config import LoginConfig, OidcConfig, WebConfig
from ds01_web.login.brake import Brake, keys_for
from ds01_web.login.oidc import OidcError, pkce_pair, username_of

GOOD_OIDC = {
    "issuer": "https://login.example.edu/realms/uni",
    "client_id": "ds01-gpu",
    "client_secret_file": "/etc/ds01/oidc-client-secret",
    "redirect_url": "https://gpu.example.edu/login/oidc/callback",
}


def test_defaults_sign_in_with_pam_only():
    login = WebConfig().login
    assert login.methods == ["pam"] and login.pam_service == "ds01-web" and login.oidc is None
    assert (login.brake_failures, float(login.brake_window)) == (10, 900.0)
    assert WebConfig().config_problems() == []


def test_a_full_section_loads(tmp_config):
    path = tmp_config(
        {"plugins": {"web": {"login": {"methods": ["ldap", "pam"], "oidc": GOOD_OIDC}}}}
    )
    login = load_runtime(str(path)).plugin_config("web").login
    assert login.methods == ["ldap", "pam"]
    assert login.oidc.username_claim == "preferred_username"
    assert login.oidc.scopes == ["openid", "profile", "email"]


@pytest.mark.parametrize(
    "login, where, words",
    [
        ({"methods": ["kerberos"]}, "plugins.web.login.methods[0]", "expected one of"),
        ({"methods": []}, "plugins.web.login.methods", "nobody could sign in"),
        ({"methods": ["pam", "pam"]}, "plugins.web.login.methods", "twice"),
        ({"pam_service": "../etc/x"}, "plugins.web.login.pam_service", "not a PAM service"),
        ({"brake_failures": 0}, "plugins.web.login.brake_failures", "at least 1"),
        (
            {"oidc": {**GOOD_OIDC, "issuer": "http://login.example.edu"}},
            "plugins.web.login.oidc.issuer",
            "https://",
        ),
        (
            {"oidc": {**GOOD_OIDC, "issuer": "login.example.edu"}},
            "plugins.web.login.oidc.issuer",
            "https://",
        ),
        (
            {"oidc": {**GOOD_OIDC, "redirect_url": "https://gpu.example.edu/cb"}},
            "plugins.web.login.oidc.redirect_url",
            "/login/oidc/callback",
        ),
        (
            {"oidc": {**GOOD_OIDC, "client_secret_file": "secret"}},
            "plugins.web.login.oidc.client_secret_file",
            "absolute",
        ),
        ({"oidc": {**GOOD_OIDC, "scopes": ["profile"]}}, "plugins.web.login.oidc.scopes", "openid"),
        (
            {"oidc": {**GOOD_OIDC, "allowed_domains": ["no domain"]}},
            "plugins.web.login.oidc.allowed_domains[0]",
            "not a domain",
        ),
        (
            {"oidc": {k: v for k, v in GOOD_OIDC.items() if k != "client_id"}},
            "plugins.web.login.oidc",
            "client_id",
        ),
    ],
)
def test_each_bad_value_is_named_by_its_path(tmp_config, login, where, words):
    path = tmp_config({"plugins": {"web": {"login": login}}})
    with pytest.raises(ConfigError) as raised:
        load_runtime(str(path))
    text = str(raised.value)
    line = next((x for x in text.splitlines() if where in x), None)
    assert line is not None and words in line, text


def test_http_issuers_only_on_loopback():
    for issuer in ("http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000"):
        oidc = OidcConfig(**{**GOOD_OIDC, "issuer": issuer})
        assert WebConfig(login=LoginConfig(oidc=oidc)).config_problems() == []


def test_the_brake_counts_per_key_within_the_window():
    brake = Brake(failures=3, window=60)
    keys = keys_for("Alice ", "10.0.0.1")
    assert keys == ["user alice", "address 10.0.0.1"]
    for t in (0, 10, 20):
        assert brake.wait(keys, t) == 0
        brake.failed(keys, t)
    assert brake.wait(keys, 21) == 39  # until the first failure is 60 s old
    assert brake.wait(["user bob"], 21) == 0 and brake.wait(["address 10.0.0.1"], 21) == 39
    brake.forget("user alice")
    assert brake.wait(["user alice"], 21) == 0 and brake.wait(keys, 21) == 39
    assert brake.wait(keys, 60.5) == 0


def test_the_user_name_comes_from_the_claim_and_the_domain_is_checked():
    plain = OidcConfig(**GOOD_OIDC)
    assert username_of(plain, {"preferred_username": " ds01ta "}) == "ds01ta"
    with pytest.raises(OidcError, match="did not say your user name"):
        username_of(plain, {"email": "x@example.edu"})
    uni = OidcConfig(**GOOD_OIDC, username_claim="email", allowed_domains=["Example.edu"])
    assert username_of(uni, {"email": "ds01ta@example.EDU"}) == "ds01ta"
    for outside in ("ds01ta@evil.example", "ds01ta", "ds01ta@example.edu@evil.example"):
        with pytest.raises(OidcError, match="is not an account of"):
            username_of(uni, {"email": outside})


def test_pkce_uses_s256():
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert pkce_pair()[0] != verifier
