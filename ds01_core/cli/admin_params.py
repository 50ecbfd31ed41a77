"""Parameters shared by the ``ds01 admin`` commands: dates, and user names that must exist.

Both refuse a mistake before anything is recorded: an ``--expires`` already past (a grant that
does nothing) and a user name no account source knows (a typo that would help nobody).
"""

from __future__ import annotations

import datetime as dt

import click

from ds01_core.cli import CliState
from ds01_core.overrides import OverrideError, check_expiry
from ds01_core.users import UnknownUserError, require_known_user

allow_unknown_user_option = click.option(
    "--allow-unknown-user",
    is_flag=True,
    help="Accept a user name that neither this host (passwd/NSS) nor a directory knows.",
)


class DateParam(click.ParamType):
    """A date (``2026-12-31``, ``2026-12-31T18:00Z``; UTC unless it says) or a duration from
    now (``3d``)."""

    name = "DATE"

    def convert(self, value, param, ctx) -> dt.datetime:  # type: ignore[no-untyped-def]
        try:
            moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            try:  # a duration from now: 3d, 12h
                from ds01_core.units import Duration

                return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=Duration.parse(value))
            except ValueError:
                self.fail(
                    f"expected a date (2026-12-31, 2026-12-31T18:00Z) or a duration "
                    f"from now (3d, 12h), got {value!r}",
                    param,
                    ctx,
                )
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def require_future(state: CliState, expires: dt.datetime) -> None:
    """``--expires`` must lie ahead: a grant that is over when it is made does nothing."""
    try:
        check_expiry(expires, state.runtime.now())
    except OverrideError as exc:
        raise click.UsageError(str(exc)) from None


def known_user(state: CliState, user: str, allow_unknown: bool) -> str:
    """``user`` normalised; a name no account source knows is a usage error (a typo would
    otherwise be recorded and help nobody)."""
    try:
        return require_known_user(state.runtime, user, allow_unknown=allow_unknown)
    except UnknownUserError as exc:
        raise click.UsageError(str(exc)) from None
