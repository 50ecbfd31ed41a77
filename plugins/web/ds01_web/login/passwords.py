"""Checking a user name and password: the system's PAM stack, then (or instead) a bind to the
LDAP plugin's directory, in the order ``plugins.web.login.methods`` gives.

Each check answers only yes or no (:class:`Checked`); why a check said no (no such user, wrong
password, an expired account, a directory that did not answer) is for the log, never for the
person at the sign-in form. A user must also be a local (NSS) account: the session is for that
uid, and ds01's operations run as it.
"""

from __future__ import annotations

import logging
import pwd
import ssl
from typing import Any

import attrs

from ds01_core.api import Runtime
from ds01_web.config import LoginConfig

log = logging.getLogger("ds01.web.login")
#: longer user names or passwords are refused unread (no PAM module or directory needs more)
MAX_NAME = 64
MAX_PASSWORD = 1024


@attrs.frozen
class Checked:
    """The outcome of a password check: the method that accepted it, or None, and why not."""

    method: str | None
    why: str = ""


def local_account(name: str, min_uid: int = 1000) -> pwd.struct_passwd | None:
    """The local (NSS) account called exactly ``name`` that may sign in to the pages, or None:
    root and system accounts (a uid below ``min_uid``) never may — an admin signs in as
    themselves, a member of the admin group."""
    if not name or len(name) > MAX_NAME or "\0" in name:
        return None
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        return None
    return account if account.pw_uid >= max(1, min_uid) else None


def check_pam(service: str, user: str, password: str) -> str | None:
    """None if PAM ``service`` authenticates ``user`` with ``password`` and its account stage
    admits them (not expired, not locked), else what PAM said."""
    import pamela

    try:
        pamela.authenticate(user, password, service=service, resetcred=0, check=True)
    except pamela.PAMError as exc:
        return f"PAM ({service}): {exc}"
    return None


def _ldap_server(cfg: Any, uri: str) -> Any:
    import ldap3

    tls = None
    if uri.lower().startswith("ldaps://") or cfg.start_tls:
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=str(cfg.ca_file) if cfg.ca_file else None,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )
    return ldap3.Server(uri, tls=tls, connect_timeout=max(1, int(float(cfg.connect_timeout))))


def _read_secret(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()


def check_ldap(cfg: Any, user: str, password: str) -> str | None:
    """None if the directory of the LDAP plugin's settings (``cfg``) has exactly one entry for
    ``user`` (searched as ``bind_dn``) and a bind as that entry with ``password`` succeeds."""
    import ldap3
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.conv import escape_filter_chars

    if cfg is None or not getattr(cfg, "servers", None):
        return "LDAP: plugins.ldap names no servers"
    attribute = cfg.username_attribute
    wanted = f"({attribute}={escape_filter_chars(user)})"
    if cfg.user_class:
        wanted = f"(&(objectClass={escape_filter_chars(cfg.user_class)}){wanted})"
    bind = ldap3.AUTO_BIND_TLS_BEFORE_BIND if cfg.start_tls else ldap3.AUTO_BIND_NO_TLS
    timeout = max(1, int(float(cfg.receive_timeout)))
    problems = []
    for uri in cfg.servers:
        server = _ldap_server(cfg, uri)
        try:
            reader_password = _read_secret(str(cfg.bind_password_file)) if cfg.bind_dn else None
            with ldap3.Connection(
                server,
                cfg.bind_dn,
                reader_password,
                auto_bind=bind,
                receive_timeout=timeout,
                read_only=True,
            ) as reader:
                reader.search(cfg.user_base_dn, wanted, attributes=[attribute], size_limit=2)
                entries = list(reader.entries)
            if len(entries) != 1:
                return f"LDAP: {len(entries)} entries for {wanted} under {cfg.user_base_dn}"
            user_dn = entries[0].entry_dn
            person = ldap3.Connection(
                server, user_dn, password, receive_timeout=timeout, read_only=True
            )
            if cfg.start_tls:
                person.open()
                person.start_tls()
            accepted = person.bind()
            result = person.result
            person.unbind()
            return None if accepted else f"LDAP: bind as {user_dn} refused: {result}"
        except (LDAPException, OSError) as exc:  # this server is down or broken: the next one
            problems.append(f"{uri}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # ldap3 lets a few other errors through: logged, a refusal
            log.exception("LDAP sign-in check against %s failed", uri)
            problems.append(f"{uri}: {type(exc).__name__}: {exc}")
    return "LDAP: no server answered: " + "; ".join(problems)


def check_password(runtime: Runtime, login: LoginConfig, user: str, password: str) -> Checked:
    """Whether ``user`` (a local account) proved who they are with ``password``, by the first
    of ``login.methods`` that accepts it."""
    if not password or len(password) > MAX_PASSWORD or "\0" in password:
        return Checked(None, "an empty, overlong or NUL-bearing password")
    if local_account(user, login.min_uid) is None:
        return Checked(None, f"no local account {user!r} with a uid of {login.min_uid} or more")
    reasons = []
    for method in login.methods:
        if method == "pam":
            why = check_pam(login.pam_service, user, password)
        else:
            why = check_ldap(runtime.plugin_config("ldap"), user, password)
        if why is None:
            return Checked(method)
        reasons.append(why)
    return Checked(None, "; ".join(reasons) or "no password method is enabled")


__all__ = ["Checked", "check_password", "local_account"]
