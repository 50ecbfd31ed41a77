"""ds01-web: the REST API (``/api/v1``) over ds01's operations, with personal API tokens.

The REST API is a third transport of the same operation table as the CLI and the API socket:
the same parameters, the same admin rule, the same errors. A request is authenticated by a
personal token (``ds01 token create``) and runs as the token's owner. Public API beyond the
hooks:

- :class:`WebConfig`: the ``plugins.web`` section.
- :func:`ds01_web.app.create_app`: the ASGI app for a runtime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_core.api import hookimpl
from ds01_web.config import WebConfig

if TYPE_CHECKING:
    import click

    from ds01_core.api import DoctorFinding, Operation, Runtime

__version__ = "0.1.0"

__all__ = ["WebConfig"]


@hookimpl
def plugin_config_sections() -> Mapping[str, type]:
    """``plugins.web:``, validated by the core with every problem named by its path."""
    return {"web": WebConfig}


@hookimpl
def service_operations() -> Sequence[Operation]:
    """``web.token_create``, ``web.token_list``, ``web.token_revoke``; ``admin.metrics``."""
    from ds01_web.metrics_ops import OPERATIONS as METRICS
    from ds01_web.token_ops import OPERATIONS

    return [*OPERATIONS, *METRICS]


@hookimpl
def add_cli_commands(cli: click.Group) -> None:
    """``ds01 token``."""
    from ds01_web.token_cli import token

    cli.add_command(token)


@hookimpl
def doctor_checks(runtime: Runtime) -> Sequence[DoctorFinding]:
    """TLS and the sign-in methods' set-up (``ds01_web.doctor``)."""
    from ds01_web.doctor import doctor_checks as checks

    return checks(runtime)
