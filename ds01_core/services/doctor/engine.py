"""The engine's own sockets and TCP addresses: can a non-admin reach the real Docker engine?

Access to the engine is root on the host. Each socket found (the gateway's upstream, the usual
paths, and every address in ``daemon.json`` or on dockerd's command line) is checked for every
route a non-admin has to its write bit, each named with the command that closes it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ds01_core.services.doctor.accounts import Accounts, describe_owner, group_name, user_name
from ds01_core.services.doctor.acl import NOBODY, Acl, can_connect, read_acl
from ds01_core.services.doctor.dockerd_args import dockerd_args, hosts_from_args, strip_unix
from ds01_core.services.doctor.findings import Finding, HostPaths

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


def engine_addresses(
    runtime: Runtime, host: HostPaths
) -> tuple[dict[str, list[str]], list[str], bool, list[Finding]]:
    """(unix sockets by real path → the names they were found under, TCP addresses, whether
    TLS client verification is on, problems reading the Docker configuration)."""
    findings: list[Finding] = []
    named = [runtime.config.gateway.upstream, *host.engine_sockets]
    tcp: list[str] = []
    tlsverify = False
    daemon_json = Path(host.daemon_json)
    listed: list[str] = []
    if daemon_json.exists():
        try:
            settings = json.loads(daemon_json.read_text())
            listed += [str(h) for h in settings.get("hosts") or ()]
            tlsverify = bool(settings.get("tlsverify"))
        except (OSError, ValueError, AttributeError) as exc:
            findings.append(
                Finding(
                    "engine-config",
                    str(daemon_json),
                    False,
                    f"cannot read {daemon_json}: {exc}",
                    f"fix the JSON in {daemon_json}, then `systemctl restart docker`",
                )
            )
    for args in dockerd_args(host.proc_dir):
        listed += hosts_from_args(args)
        tlsverify = tlsverify or "--tlsverify" in args or "--tlsverify=true" in args
    for address in listed:
        if address.startswith("unix://") or address.startswith("/"):
            named.append(strip_unix(address))
        elif address.startswith("tcp://"):
            tcp.append(address)
    sockets: dict[str, list[str]] = {}
    for name in named:
        name = strip_unix(name)
        if os.path.lexists(name):
            sockets.setdefault(os.path.realpath(name), [])
            if name not in sockets[os.path.realpath(name)]:
                sockets[os.path.realpath(name)].append(name)
    return sockets, sorted(set(tcp)), tlsverify, findings


def _routes(
    accounts: Accounts, st: os.stat_result, acl: Acl | None, path: str
) -> dict[str, list[tuple[str, str]]]:
    """Non-admins with a way to the socket's write bit: user → [(how, fix)]."""
    routes: dict[str, list[tuple[str, str]]] = {}

    def add(name: str, how: str, fix: str) -> None:
        if not accounts.is_admin(name):
            routes.setdefault(name, []).append((how, fix))

    owner = user_name(st.st_uid)
    if st.st_uid != 0:
        add(owner, f"owns {path}", f"chown root {path}")
    group = group_name(st.st_gid)
    for name in accounts.supplementary_members(st.st_gid):
        add(name, f"is in group {group}", f"gpasswd -d {name} {group}")
    for name in accounts.primary_members(st.st_gid):
        add(
            name,
            f"has {group} as primary group",
            f"usermod -g <another group> {name}",
        )
    if acl is not None:
        for uid in acl.users:
            add(user_name(uid), "is named in its ACL", f"setfacl -x u:{user_name(uid)} {path}")
        for gid in acl.groups:
            gname = group_name(gid)
            for name in accounts.supplementary_members(gid) | accounts.primary_members(gid):
                add(
                    name,
                    f"is in group {gname}, named in its ACL",
                    f"gpasswd -d {name} {gname} (or setfacl -x g:{gname} {path})",
                )
    return routes


def check_engine_socket(accounts: Accounts, real: str, names: Sequence[str]) -> list[Finding]:
    """Who besides root and admins can connect to the engine socket at ``real``."""
    subject = ", ".join(names)
    try:
        st = os.stat(real)
    except OSError as exc:
        return [Finding("engine-socket", subject, True, f"cannot be read: {exc}")]
    acl = read_acl(real)
    desc = describe_owner(st) + (" +ACL" if acl else "")
    if can_connect(real, NOBODY, set()):
        return [
            Finding(
                "engine-socket",
                subject,
                False,
                f"{subject} ({desc}) can be opened by every user, and access to it is root on "
                "this host",
                f"chmod o-rwx {real} (and check SocketMode= in docker.socket, or the daemon's "
                "group setting, so a restart does not undo it)",
            )
        ]
    findings = []
    for name, ways in sorted(_routes(accounts, st, acl, real).items()):
        entry = accounts.user(name)
        if entry is None or not can_connect(real, entry.pw_uid, accounts.gids(name)):
            continue  # a directory above it, or the ACL mask, stops them after all
        findings.append(
            Finding(
                "engine-socket",
                subject,
                False,
                f"user {name} can connect to {subject} ({desc}): {name} "
                + " and ".join(how for how, _ in ways),
                "; ".join(f"`{fix}`" for _, fix in ways),
            )
        )
    if not findings:
        findings.append(
            Finding("engine-socket", subject, True, f"{desc}: only root and admins can connect")
        )
    return findings


def check_tcp(addresses: Iterable[str], tlsverify: bool) -> list[Finding]:
    """An engine on TCP without TLS client verification is open to anyone who reaches it."""
    findings = []
    for address in addresses:
        if tlsverify:
            findings.append(
                Finding(
                    "engine-tcp",
                    address,
                    True,
                    "TLS client verification is on: only holders of a client certificate from "
                    "its CA connect; make sure no non-admin has one",
                )
            )
            continue
        findings.append(
            Finding(
                "engine-tcp",
                address,
                False,
                f"the engine listens on {address} without TLS client verification: anyone who "
                "reaches it is root on this host",
                f'remove {address} from "hosts" in /etc/docker/daemon.json (and any -H in the '
                "docker service's command line), then `systemctl restart docker`",
            )
        )
    return findings
