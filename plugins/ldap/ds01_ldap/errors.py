"""Why a sync could not read the directory (kept apart from the ldap3 code, so that answering
from the cache never imports the LDAP client)."""

from __future__ import annotations


class DirectoryError(Exception):
    """The directory could not be read as configured; the last known membership stays."""


class DirectoryUnreachable(DirectoryError):
    """No server could be connected to, secured and bound to; ``attempts`` says why, per URI."""

    def __init__(self, attempts: list[str]):
        self.attempts = attempts
        super().__init__("no LDAP server reachable: " + "; ".join(attempts))
