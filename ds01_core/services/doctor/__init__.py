"""``ds01 admin doctor``: every way a non-admin could still reach the real engine or the GPUs.

It checks the pieces that keep users on the gateway, and off the GPUs outside containers.

Access to the engine's socket is root on the host, so for each engine socket the question is
asked the way the kernel answers it: who can search every directory above it and write to it,
through the owner, the group, the other bits, or a POSIX ACL. Admins (root and members of
``gateway.admin_group``) may; anyone else who can is a problem, named with the command that
fixes it. Nothing here changes the host.

Each group of checks is a module of its own: :mod:`.engine` (the engine's sockets and TCP
addresses), :mod:`.gateway` (the gateway's socket and the users' profile snippet),
:mod:`.bare_metal` (the direct-access group and the GPU device nodes), :mod:`.mounts` (nosuid
homes), :mod:`.gpu_provider` (NVML answers; no simulated host on a GPU server), :mod:`.dcgm`
(NVIDIA's dcgm-exporter answers and maps jobs from ds01's owner map); :mod:`.acl`
and :mod:`.accounts` answer "who could", :mod:`.dockerd_args` reads what the engine was
started with. :func:`run_doctor` is what the admin service calls.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ds01_core.services.doctor.accounts import Accounts
from ds01_core.services.doctor.bare_metal import check_bare_metal
from ds01_core.services.doctor.dcgm import check_dcgm_exporter
from ds01_core.services.doctor.dockerd_args import hosts_from_args
from ds01_core.services.doctor.engine import check_engine_socket, check_tcp, engine_addresses
from ds01_core.services.doctor.findings import DEFAULT_HOST, Finding, HostPaths
from ds01_core.services.doctor.gateway import check_gateway, check_profile
from ds01_core.services.doctor.gpu_provider import check_gpu_provider
from ds01_core.services.doctor.mounts import check_user_mounts

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

__all__ = ["DEFAULT_HOST", "Finding", "HostPaths", "hosts_from_args", "run_doctor"]


def run_doctor(runtime: Runtime, host: HostPaths | None = None) -> list[Finding]:
    """Every check's findings, problems and passes alike, in a stable order."""
    host = host or DEFAULT_HOST
    gateway = runtime.config.gateway
    accounts = Accounts(gateway.admin_group)
    sockets, tcp, tlsverify, findings = engine_addresses(runtime, host)
    gateway_real = os.path.realpath(gateway.socket)
    if not os.path.lexists(gateway.upstream.removeprefix("unix://")):
        findings.append(
            Finding(
                "engine-socket",
                gateway.upstream,
                True,
                "gateway.upstream is not there: is the engine running, and is this its socket?",
            )
        )
    for real, names in sockets.items():
        if real != gateway_real:
            findings += check_engine_socket(accounts, real, names)
    findings += check_tcp(tcp, tlsverify)
    findings += check_gateway(gateway.socket)
    findings += check_profile(host.profile_snippet, gateway.socket)
    findings += check_bare_metal(runtime, accounts, host.dev_dir)
    findings += check_user_mounts(runtime, host)
    findings += check_gpu_provider(runtime)
    findings += check_dcgm_exporter(runtime, host)
    findings += runtime.hooks.doctor_checks(runtime)
    return findings
