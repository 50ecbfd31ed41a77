"""The ``plugins.diskquota`` section."""

from __future__ import annotations

from typing import Literal

import attrs

from ds01_core.api import Duration


@attrs.define
class Filesystem:
    """A filesystem whose per-user usage is limited by the ``disk_quota`` limit key.

    ``mode``: ``quota`` sets the filesystem's user quotas (``setquota``); ``measure`` adds up
    each user's files; ``auto`` uses quotas where ``quotaon -p`` says they are on.
    """

    path: str
    mode: Literal["auto", "quota", "measure"] = "auto"


@attrs.define
class DiskQuotaConfig:
    filesystems: list[Filesystem] = attrs.Factory(list)
    scan_interval: Duration = Duration(15 * 60)
    over_limit: Literal["refuse", "warn"] = "refuse"
