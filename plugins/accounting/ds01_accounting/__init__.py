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


# -- carbon (ds01_accounting.carbon); named apart so that each part of the plugin wires its own


@hookimpl(specname="service_operations")
def carbon_service_operations() -> Sequence[Operation]:
    """``accounting.carbon_status`` and ``accounting.carbon_report``."""
    from ds01_accounting.carbon.services import OPERATIONS

    return OPERATIONS


@hookimpl(specname="add_cli_commands")
def carbon_cli_commands(cli: click.Group) -> None:
    """``ds01 carbon status|report``."""
    from ds01_accounting.carbon.cli import add_commands

    add_commands(cli)
