"""GPU use outside containers: who is in the direct-access group, and who can open the devices."""

from __future__ import annotations

import grp
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from ds01_core.services.bare_metal_grants import granted_users
from ds01_core.services.doctor.accounts import Accounts, describe_owner
from ds01_core.services.doctor.findings import Finding

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


_DEVICE = re.compile(r"^nvidia")


def gpu_device_nodes(dev_dir: str) -> list[Path]:
    """``/dev/nvidia*`` and ``/dev/nvidia-caps/*``, directories left out."""
    base = Path(dev_dir)
    nodes = [p for p in sorted(base.glob("nvidia*")) if not p.is_dir()]
    nodes += [p for p in sorted((base / "nvidia-caps").glob("*")) if not p.is_dir()]
    return [p for p in nodes if _DEVICE.match(p.name)]


#: below this uid, an account is a service's (nvidia-persistenced --user …), not a person's
FIRST_PERSON_UID = 1000


def _system_account(accounts: Accounts, name: str) -> bool:
    entry = accounts.user(name)
    return entry is not None and entry.pw_uid < FIRST_PERSON_UID


def check_bare_metal(runtime: Runtime, accounts: Accounts, dev_dir: str) -> list[Finding]:
    """Only granted users are in ``bare_metal.group``, and only that group opens the GPUs."""
    group = runtime.config.bare_metal.group
    setup = (
        "install packaging/udev/70-ds01-gpu-direct.rules and the module options from "
        "packaging/modprobe.d/ds01-nvidia.conf.in (docs/bare-metal.md)"
    )
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        return [
            Finding(
                "bare-metal",
                group,
                False,
                f"the group {group} (bare_metal.group) does not exist",
                f"`groupadd --system {group}`, then {setup}",
            )
        ]
    findings = []
    stray = sorted(
        name
        for name in set(entry.gr_mem) - granted_users(runtime)
        if not accounts.is_admin(name) and not _system_account(accounts, name)
    )
    for name in stray:
        findings.append(
            Finding(
                "bare-metal",
                group,
                False,
                f"user {name} is in {group} without an active ds01 grant: direct GPU access that "
                "never expires",
                f"`ds01 admin bare-metal revoke {name}`, or grant it for a while: "
                f"`ds01 admin bare-metal grant {name} 8h --reason …`",
            )
        )
    nodes = gpu_device_nodes(dev_dir)
    if not nodes:
        findings.append(
            Finding("gpu-devices", f"{dev_dir}/nvidia*", True, "no NVIDIA device nodes")
        )
        return findings
    wrong_group, open_to_all = [], []
    for node in nodes:
        try:
            st = node.stat()
        except OSError:
            continue
        if st.st_gid != entry.gr_gid or st.st_uid != 0:
            wrong_group.append(f"{node} ({describe_owner(st)})")
        if stat.S_IMODE(st.st_mode) & 0o007:
            open_to_all.append(f"{node} ({describe_owner(st)})")
    if open_to_all:
        findings.append(
            Finding(
                "gpu-devices",
                f"{dev_dir}/nvidia*",
                False,
                "every user can open " + ", ".join(open_to_all) + ", so anyone can use the GPUs "
                "outside containers",
                f"{setup}, then `udevadm control --reload && udevadm trigger` and reload the nvidia "
                f"modules; for now: `chmod o-rwx {dev_dir}/nvidia* {dev_dir}/nvidia-caps/*`",
            )
        )
    if wrong_group:
        findings.append(
            Finding(
                "gpu-devices",
                f"{dev_dir}/nvidia*",
                False,
                f"not root:{group}: " + ", ".join(wrong_group),
                f"{setup}; for now: `chown root:{group} {dev_dir}/nvidia* {dev_dir}/nvidia-caps/*`",
            )
        )
    if not (open_to_all or wrong_group):
        findings.append(
            Finding(
                "gpu-devices",
                f"{dev_dir}/nvidia*",
                True,
                f"{len(nodes)} device node(s), root:{group}, closed to other users",
            )
        )
    return findings
