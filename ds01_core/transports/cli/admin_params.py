"""Parameters shared by the ``ds01 admin`` commands: dates, and the unknown-user escape.

An ``--expires`` already past and a user name that no account source knows are refused by the
service (``ds01_core.services.admin_limits``), whichever way the command reached it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from ds01_core.domain.units import Duration

allow_unknown_user_option = click.option(
    "--allow-unknown-user",
    is_flag=True,
    help="Accept a user name that neither this host (passwd/NSS) nor a directory knows.",
)


class DateParam(click.ParamType):
    """A date (``2026-12-31``, ``2026-12-31T18:00Z``; UTC unless it says) or a duration from
    now (``3d``)."""

    name = "DATE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.datetime:
        try:
            moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            try:  # a duration from now: 3d, 12h
                return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=Duration.parse(value))
            except ValueError:
                self.fail(
                    f"expected a date (2026-12-31, 2026-12-31T18:00Z) or a duration "
                    f"from now (3d, 12h), got {value!r}",
                    param,
                    ctx,
                )
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
