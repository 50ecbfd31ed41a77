"""The root click group's class: command names that cannot be taken twice, one-line errors."""

from __future__ import annotations

import logging
from typing import Any

import click

from ds01_core.services.errors import ServiceError


class Ds01Group(click.Group):
    """The root group; once sealed, a command name can be added only once, so a plugin can
    never silently replace a built-in command (or another plugin's)."""

    sealed = False

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if self.sealed and name in self.commands:
            raise ValueError(f"the command name {name!r} is already taken")
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a service's refusal or failure is one line on stderr with its exit
        code, never a traceback (``--debug`` shows the traceback of an unexpected error)."""
        try:
            return super().invoke(ctx)
        except ServiceError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            click.echo(
                f"Error: {type(exc).__name__}: {exc} (this is a bug in ds01; run the command "
                "again with --debug for the details and tell an admin)",
                err=True,
            )
            ctx.exit(1)
