"""Filesystem user quotas through the standard tools (``quotaon``, ``setquota``, ``repquota``)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)


def quotas_on(path: str, runner: Runner = run) -> bool:
    """True when user quotas are on for the filesystem holding ``path``."""
    if shutil.which("quotaon") is None:
        return False
    result = runner(["quotaon", "-p", "-u", path])
    # quotaon -p exits with the number of filesystems whose quota is *on*
    return result.returncode != 0 and "is on" in result.stdout


def set_quota(user: str, path: str, limit_bytes: int, runner: Runner = run) -> None:
    """Hard limit ``limit_bytes``, soft limit 90% of it (the user is warned first)."""
    hard_kb = max(1, limit_bytes // 1024)
    soft_kb = max(1, hard_kb * 9 // 10)
    result = runner(["setquota", "-u", user, str(soft_kb), str(hard_kb), "0", "0", path])
    if result.returncode != 0:
        raise OSError(f"setquota for {user} on {path} failed: {result.stderr.strip()}")


def usage(path: str, runner: Runner = run) -> dict[str, int]:
    """user → bytes used, from ``repquota -u -O csv``."""
    result = runner(["repquota", "-u", "-O", "csv", path])
    if result.returncode != 0:
        raise OSError(f"repquota on {path} failed: {result.stderr.strip()}")
    used = {}
    for line in result.stdout.splitlines()[1:]:
        fields = line.split(",")
        if len(fields) > 3 and fields[3].isdigit():
            used[fields[0]] = int(fields[3]) * 1024
    return used
