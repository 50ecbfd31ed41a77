"""Which e-mail address reaches a user: the extension point for directories.

The order is: the admin's explicit ``addresses`` map, then any resolver another plugin
registered (a directory that knows users' mail attributes, such as ds01-ldap's cache), then
``address_pattern``. A resolver answers from a cache, never from the network (it runs on every
notice), and an answer that is not a plain address is ignored.

When the core grows a ``user_email`` hook, :func:`resolve_address` is the one place to call it,
between the map and the pattern.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ds01_core.api import normalize_username
from ds01_notify.config import EmailConfig, bad_address

if TYPE_CHECKING:
    from ds01_core.api import Runtime

#: ``resolver(user) -> address or None``
Resolver = Callable[[str], str | None]

_RESOLVERS_KEY = "ds01_notify.address_resolvers"

log = logging.getLogger(__name__)


def add_resolver(runtime: Runtime, resolver: Resolver) -> None:
    """Let ``resolver`` answer for users the ``addresses`` map does not list (call it from
    your plugin's ``configure`` hook; resolvers are asked in the order added)."""
    resolvers: list[Resolver] = runtime.memo(_RESOLVERS_KEY, list)
    resolvers.append(resolver)


def resolve_address(runtime: Runtime, cfg: EmailConfig, user: str) -> tuple[str | None, str]:
    """``(address, where it came from)``; ``(None, why not)`` when nothing gives one."""
    wanted = normalize_username(user)
    for name, address in cfg.addresses.items():
        if normalize_username(name) == wanted:
            return address, "plugins.notify.channels.email.addresses"
    for resolver in runtime.memoized(_RESOLVERS_KEY) or ():
        try:
            address = resolver(wanted)
        except Exception:  # another plugin's bug must not cost the user the notice
            log.exception("e-mail address resolver %r failed for %s", resolver, wanted)
            continue
        if address and bad_address(address) is None:
            return address, getattr(resolver, "__qualname__", "a directory")
    if cfg.address_pattern:
        address = cfg.address_pattern.format(user=wanted)
        if bad_address(address) is None:
            return address, "plugins.notify.channels.email.address_pattern"
    return None, f"no e-mail address known for {wanted}"
