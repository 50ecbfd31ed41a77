"""An OpenID Connect client for single sign-on: discovery, the authorization-code flow with
PKCE, state and nonce, and the id_token's checks (signature against the provider's JWKS, iss,
aud, exp, nonce; with joserfc), then the local user name from ``username_claim``.

Only the server talks to the provider's endpoints (discovery, JWKS, token, userinfo); the
browser only visits its authorization page. Every failure is an :class:`OidcError` whose
``message`` is for the person signing in and whose ``detail`` is for the log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import attrs

from ds01_web.config import OidcConfig

#: signatures we accept (never "none", never a shared-secret HMAC)
ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
TIMEOUT = 10.0
MAX_ANSWER = 1024 * 1024
CACHE_FOR = 3600.0
#: clock difference tolerated between this server and the provider
LEEWAY = 60
UNREACHABLE = (
    "the single sign-on provider could not be reached or answered wrongly: try again in a "
    "minute, sign in with your password, or tell an admin"
)


class OidcError(Exception):
    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.detail = detail or message


@attrs.frozen
class Identity:
    """Who the provider says signed in: the local user name, the claims, and when they
    authenticated at the provider (``auth_time``, if it said)."""

    username: str
    subject: str
    claims: dict[str, Any]
    auth_time: float | None


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _fetch(
    url: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> Any:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(
        url, data=body, headers={"Accept": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            raw = answer.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as exc:
        text = exc.read(2000).decode(errors="replace")
        raise OidcError(UNREACHABLE, f"{url}: HTTP {exc.code}: {text}") from None
    except (OSError, ValueError) as exc:
        raise OidcError(UNREACHABLE, f"{url}: {type(exc).__name__}: {exc}") from None
    if len(raw) > MAX_ANSWER:
        raise OidcError(UNREACHABLE, f"{url}: answer over {MAX_ANSWER} bytes")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise OidcError(UNREACHABLE, f"{url}: not JSON: {exc}") from None


def read_client_secret(path: str) -> str:
    """The client secret from ``path``, which must be root's and not readable by others."""
    try:
        info = os.stat(path)
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise OidcError(
                "single sign-on is misconfigured: tell an admin",
                f"plugins.web.login.oidc.client_secret_file {path} is open to others "
                f"(mode {stat.S_IMODE(info.st_mode):o}): chmod 600 it",
            )
        with open(path) as handle:
            secret = handle.read().strip()
    except OSError as exc:
        raise OidcError(
            "single sign-on is misconfigured: tell an admin",
            f"plugins.web.login.oidc.client_secret_file: cannot read {path}: {exc}",
        ) from None
    if not secret:
        raise OidcError("single sign-on is misconfigured: tell an admin", f"{path} is empty")
    return secret


class Provider:
    """One configured provider: its discovery document and keys (cached for an hour)."""

    def __init__(self, config: OidcConfig):
        self.config = config
        self.issuer = config.issuer.rstrip("/") if config.issuer.endswith("/") else config.issuer
        self._meta: dict[str, Any] | None = None
        self._meta_at = 0.0
        self._jwks: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._meta is not None and time.monotonic() - self._meta_at < CACHE_FOR:
                return self._meta
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        meta = _fetch(url)
        if not isinstance(meta, dict) or meta.get("issuer") not in (
            self.issuer,
            self.config.issuer,
        ):
            raise OidcError(
                UNREACHABLE,
                f"{url}: its issuer {meta.get('issuer') if isinstance(meta, dict) else meta!r} is not {self.config.issuer}",
            )
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(meta.get(key), str):
                raise OidcError(UNREACHABLE, f"{url}: no {key}")
        with self._lock:
            self._meta, self._meta_at = meta, time.monotonic()
            self._jwks = None
        return meta

    def keys(self, refresh: bool = False) -> Any:
        from joserfc.jwk import KeySet

        with self._lock:
            if self._jwks is not None and not refresh:
                return KeySet.import_key_set(self._jwks)  # type: ignore[arg-type]
        found = _fetch(self.metadata()["jwks_uri"])
        if not isinstance(found, dict) or not isinstance(found.get("keys"), list):
            raise OidcError(UNREACHABLE, "the provider's JWKS has no keys")
        public = {
            "keys": [
                k for k in found["keys"] if isinstance(k, dict) and k.get("use", "sig") == "sig"
            ]
        }
        with self._lock:
            self._jwks = public
        return KeySet.import_key_set(public)  # type: ignore[arg-type]

    def authorization_url(self, state: str, nonce: str, challenge: str, reauth: bool) -> str:
        """Where to send the browser; ``reauth`` asks the provider for a fresh login."""
        config = self.config
        params = {
            "response_type": "code",
            "client_id": config.client_id,
            "redirect_uri": config.redirect_url,
            "scope": " ".join(config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if reauth:
            params.update(prompt="login", max_age="0")
        endpoint = self.metadata()["authorization_endpoint"]
        joiner = "&" if "?" in endpoint else "?"
        return endpoint + joiner + urllib.parse.urlencode(params)

    def redeem(self, code: str, verifier: str, nonce: str, now: float) -> Identity:
        """The code exchanged for tokens, the id_token checked, the user name found."""
        config = self.config
        meta = self.metadata()
        secret = read_client_secret(config.client_secret_file)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": config.redirect_url,
            "code_verifier": verifier,
        }
        methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        headers = {}
        if "client_secret_basic" in methods:
            pair = f"{urllib.parse.quote(config.client_id, safe='')}:{urllib.parse.quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form.update(client_id=config.client_id, client_secret=secret)
        tokens = _fetch(meta["token_endpoint"], form, headers)
        if not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
            raise OidcError(UNREACHABLE, "the token endpoint gave no id_token")
        claims = self.verify(tokens["id_token"], nonce, now)
        if self.config.username_claim not in claims and tokens.get("access_token"):
            claims = {**self.userinfo(str(tokens["access_token"]), str(claims["sub"])), **claims}
        auth_time = claims.get("auth_time")
        return Identity(
            username_of(self.config, claims),
            str(claims["sub"]),
            claims,
            float(auth_time) if isinstance(auth_time, (int, float)) else None,
        )

    def verify(self, id_token: str, nonce: str, now: float) -> dict[str, Any]:
        """The id_token's claims, if its signature, issuer, audience, expiry and nonce hold."""
        from joserfc import jwt
        from joserfc.errors import JoseError

        allowed = [
            a
            for a in ALGORITHMS
            if a in (self.metadata().get("id_token_signing_alg_values_supported") or ALGORITHMS)
        ]
        try:
            try:
                token = jwt.decode(id_token, self.keys(), algorithms=allowed)
            except JoseError:  # the provider may have rolled its keys
                token = jwt.decode(id_token, self.keys(refresh=True), algorithms=allowed)
            registry = jwt.JWTClaimsRegistry(
                now=int(now),
                leeway=LEEWAY,
                iss={"essential": True, "value": self.config.issuer},
                aud={"essential": True, "value": self.config.client_id},
                exp={"essential": True},
                iat={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise OidcError(
                "the single sign-on answer could not be verified: try again, or tell an admin",
                f"id_token refused: {type(exc).__name__}: {exc}",
            ) from None
        claims = dict(token.claims)
        audience = claims.get("aud")
        if (
            isinstance(audience, list)
            and len(audience) > 1
            and claims.get("azp") != self.config.client_id
        ):
            raise OidcError(
                "the single sign-on answer was not meant for ds01", f"azp {claims.get('azp')!r}"
            )
        return claims

    def userinfo(self, access_token: str, subject: str) -> dict[str, Any]:
        endpoint = self.metadata().get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return {}
        found = _fetch(endpoint, headers={"Authorization": f"Bearer {access_token}"})
        if not isinstance(found, dict) or found.get("sub") != subject:
            raise OidcError(UNREACHABLE, "userinfo's sub differs from the id_token's")
        return found


def username_of(config: OidcConfig, claims: dict[str, Any]) -> str:
    """The local user name in ``username_claim`` (its domain checked and dropped when
    ``allowed_domains`` is set)."""
    value = claims.get(config.username_claim)
    if not isinstance(value, str) or not value.strip():
        raise OidcError(
            f"the single sign-on provider did not say your user name ({config.username_claim}): "
            "tell an admin",
            f"no {config.username_claim} claim in {sorted(claims)}",
        )
    value = value.strip()
    if config.allowed_domains is not None:
        name, at, domain = value.rpartition("@")
        if not at or domain.lower() not in {d.lower() for d in config.allowed_domains}:
            raise OidcError(
                f"{value} is not an account of {', '.join(config.allowed_domains)}: sign in "
                "with your department account",
                f"{config.username_claim}={value!r} outside allowed_domains",
            )
        value = name
    return value


__all__ = ["Identity", "OidcError", "Provider", "pkce_pair", "read_client_secret", "username_of"]
