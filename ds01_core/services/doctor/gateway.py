"""The gateway's side: its socket is there, open to users, answering; their shells point at it."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from ds01_core.services.doctor.acl import NOBODY, can_connect
from ds01_core.services.doctor.findings import Finding


def check_gateway(path: str) -> list[Finding]:
    """The gateway's socket is there, a socket, mode 0666, reachable, and answered."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return [
            Finding(
                "gateway",
                path,
                False,
                "the gateway is not running: its socket is not there",
                "start it: `systemctl enable --now ds01-gateway`",
            )
        ]
    except OSError as exc:
        return [
            Finding("gateway", path, False, f"cannot read {path}: {exc}", "check its directory")
        ]
    if not stat.S_ISSOCK(st.st_mode):
        return [
            Finding(
                "gateway",
                path,
                False,
                f"{path} is not a socket",
                f"remove it and restart the gateway: `rm {path} && systemctl restart ds01-gateway`",
            )
        ]
    findings = []
    mode = stat.S_IMODE(st.st_mode)
    if mode != 0o666:
        findings.append(
            Finding(
                "gateway",
                path,
                False,
                f"mode {mode:04o}: users need 0666 to reach the gateway (it knows who they are "
                "from the connection, not from the file)",
                f"`chmod 0666 {path}`, or restart ds01-gateway, which sets it",
            )
        )
    elif not can_connect(path, NOBODY, set()):
        findings.append(
            Finding(
                "gateway",
                path,
                False,
                f"a directory above {path} cannot be searched by other users, so they cannot "
                "reach the gateway",
                f"`chmod o+x` the directories above {path} (/run/ds01 is 0755)",
            )
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(path)
        except OSError as exc:
            findings.append(
                Finding(
                    "gateway",
                    path,
                    False,
                    f"nothing answers on {path} ({exc.strerror or exc}): a stale socket",
                    "`systemctl restart ds01-gateway`",
                )
            )
    if not findings:
        findings.append(Finding("gateway", path, True, "listening, mode 0666"))
    return findings


def check_profile(path: str, gateway_socket: str) -> list[Finding]:
    """The profile snippet points users' ``DOCKER_HOST`` at the gateway."""
    snippet = Path(path)
    try:
        text = snippet.read_text()
    except FileNotFoundError:
        return [
            Finding(
                "profile",
                path,
                False,
                "missing: users' docker clients do not find the gateway by themselves",
                f"`install -m 0644 packaging/profile.d/ds01-docker-host.sh {path}`",
            )
        ]
    except OSError as exc:
        return [Finding("profile", path, False, f"cannot read {path}: {exc}", f"check {path}")]
    if f"unix://{gateway_socket}" not in text:
        return [
            Finding(
                "profile",
                path,
                False,
                f"does not point DOCKER_HOST at unix://{gateway_socket}",
                f"install packaging/profile.d/ds01-docker-host.sh as {path} and set the socket "
                "path in it to gateway.socket",
            )
        ]
    return [Finding("profile", path, True, f"sets DOCKER_HOST=unix://{gateway_socket}")]
