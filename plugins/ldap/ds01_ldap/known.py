"""Does the directory know a user name? For admin commands about names the host does not know.

The membership cache answers first (a user in a mapped group is known, even while the directory
is down); otherwise the directory is asked directly, since a user in no mapped group is still a
real person. Only admin commands ask (``ds01 admin override set``, ``admin exempt set``), and
only for a name passwd/NSS does not have, so the network call never sits on a user's path.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING

from ds01_core.api import normalize_username
from ds01_ldap.errors import DirectoryError
from ds01_ldap.store import read_membership
from ds01_ldap.sync import config_of

if TYPE_CHECKING:
    from ds01_core.api import Runtime

log = logging.getLogger(__name__)


def user_known(runtime: Runtime, user: str) -> bool | None:
    """True when the cache or the directory has ``user``, False when the directory answered
    that it has not, None when the plugin is not configured or the directory cannot be read."""
    cfg = config_of(runtime)
    if cfg is None or not cfg.servers or not cfg.user_base_dn:
        return None
    name = normalize_username(user)
    try:
        if read_membership(runtime.state.db, name) is not None:
            return True
    except (sqlite3.Error, OSError) as exc:  # no sync yet (no table), or an unreadable store
        log.debug("LDAP membership cache unavailable: %s", exc)
    from ds01_ldap.directory import user_exists  # imports ldap3: only when it is needed

    try:
        return user_exists(cfg, name)
    except DirectoryError as exc:
        log.warning("cannot ask the directory whether %r exists: %s", name, exc)
        return None
