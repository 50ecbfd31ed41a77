"""Hook specifications that say who a user is: their group, why, and whether the name exists.

Answered from a plugin's own account source (a directory, its cache) when limits are resolved
or an admin names a user. The rules common to every hook are in
:mod:`ds01_core.framework.hookspecs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ds01_core.framework.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


@hookspec(firstresult=True)
def user_group(runtime: Runtime, user: str) -> str | None:
    """Say which ds01 group a user is in, from a source outside the configuration file.

    Called whenever a user's limits are resolved (allocation, enforcement, ``ds01 config show``,
    ``ds01 quota``), so it must answer from a cache, never from a slow network call.

    :param runtime: the process's runtime.
    :param user: the normalised user name.
    :return: the name of a group defined in ``limits.groups``, or ``None`` to let the next
        source answer. When no plugin answers, the configuration's own membership
        (``members`` lists and ``users.<name>.group``) decides.

    firstresult: the first group named wins, so plugins listed earlier in ``plugins.order``
    take precedence.

    If an implementation raises: the error is logged and the configuration's own membership
    decides for that lookup (no later plugin is asked: a lower-precedence source must not
    answer for a higher one that failed).
    """


@hookspec
def explain_user_group(runtime: Runtime, user: str) -> str | None:
    """Say in one line why a user is in their group, for ``ds01 config show --user``.

    Called only when a person asks (``ds01 config show --user NAME``), so it may read the
    plugin's cache but should not contact a server.

    :param runtime: the process's runtime.
    :param user: the normalised user name.
    :return: a line such as ``LDAP: in student (precedence 10) and researcher (precedence 20):
        researcher wins``, or ``None`` when this plugin has nothing to say about the user.

    Not firstresult: every plugin's line is shown.

    If an implementation raises: its place is taken by the line ``<plugin>: could not explain:
    <error>``; the other plugins' lines are shown.
    """


@hookspec
def user_known(runtime: Runtime, user: str) -> bool | None:
    """Say whether a user name exists in an account source this plugin reads (a directory).

    Called by admin commands that record something for a user by name (``ds01 admin override
    set``, ``ds01 admin exempt set --user``) when the host's passwd/NSS does not know the name,
    so that a misspelt name is refused instead of silently helping nobody. Only an admin runs
    these commands, so an implementation may ask its server (within its own timeouts); it must
    catch its own errors and answer ``None`` when it cannot tell.

    :param runtime: the process's runtime.
    :param user: the normalised user name.
    :return: ``True`` when this plugin's source has the user; ``False`` when it looked and the
        user is not there; ``None`` when it cannot say (not configured, server unreachable).

    Not firstresult: the user is known when any plugin answers ``True``; the admin command
    refuses an unknown user unless given ``--allow-unknown-user``.

    If an implementation raises: it is logged and counts as ``None`` (cannot say); the other
    plugins' answers still decide.
    """
