"""Disk usage per user, measured by walking a filesystem (where it has no quotas).

One walk adds up every file's allocated blocks by owner, staying on the path's own device
and never following symlinks, so a walk cannot wander into other filesystems or loop.
"""

from __future__ import annotations

import os
from collections import Counter


def usage_by_uid(path: str) -> dict[int, int]:
    """uid → bytes allocated under ``path`` (directories included)."""
    totals: Counter[int] = Counter()
    try:
        device = os.stat(path).st_dev
    except OSError:
        return {}
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = os.scandir(current)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if info.st_dev != device:
                    continue
                totals[info.st_uid] += info.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return dict(totals)
