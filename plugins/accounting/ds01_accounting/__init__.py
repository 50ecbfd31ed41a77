"""ds01-accounting: account for every GPU-hour: usage records, energy and CO2, ``ds01 usage``.

The daemon writes one usage record per allocation (``cycle_finished``), checkpointed every
cycle, into ``<paths.state_dir>/accounting.db``. Public API beyond the hooks:

- :func:`ds01_accounting.usage.usage_rows` and :class:`ds01_accounting.usage.UsageRow`: every
  allocation's usage inside a window;
- :func:`ds01_accounting.usage.lifetime_totals`: energy and CO2 per user since records began;
- :class:`AccountingConfig`: the ``plugins.accounting`` section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_accounting.config import AccountingConfig
from ds01_core.api import hookimpl

if TYPE_CHECKING:
    import click

    from ds01_core.api import Operation

__version__ = "0.1.0"

__all__ = ["AccountingConfig"]


@hookimpl
def plugin_config_sections() -> Mapping[str, type]:
    """``plugins.accounting:``, validated by the core with every problem named by its path."""
    return {"accounting": AccountingConfig}


@hookimpl
def service_operations() -> Sequence[Operation]:
    """``accounting.report`` (admins): the figures behind ``ds01 report monthly``."""
    from ds01_accounting.report.services import OPERATIONS as REPORT_OPERATIONS

    return [*REPORT_OPERATIONS]


@hookimpl
def add_cli_commands(cli: click.Group) -> None:
    """``ds01 report monthly``."""
    from ds01_accounting.report.cli import add_commands as add_report_commands

    add_report_commands(cli)
