"""ds01-accounting: account for every GPU-hour: usage records, energy and CO2, ``ds01 usage``.

The daemon writes one usage record per allocation (``cycle_finished``), checkpointed every
cycle, into ``<paths.state_dir>/accounting.db``. Public API beyond the hooks:

- :func:`ds01_accounting.usage.usage_rows` and :class:`ds01_accounting.usage.UsageRow`: every
  allocation's usage inside a window;
- :func:`ds01_accounting.usage.lifetime_totals`: energy and CO2 per user since records began;
- :func:`ds01_accounting.usage.aggregate`: sums by user, group, day, week or month;
- :class:`AccountingConfig`: the ``plugins.accounting`` section.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_accounting.config import AccountingConfig
from ds01_core.api import hookimpl

if TYPE_CHECKING:
    import click

    from ds01_core.api import CycleReport, Operation, Runtime

__version__ = "0.1.0"

__all__ = ["AccountingConfig"]

log = logging.getLogger(__name__)


@hookimpl
def plugin_config_sections() -> Mapping[str, type]:
    """``plugins.accounting:``, validated by the core with every problem named by its path."""
    return {"accounting": AccountingConfig}


@hookimpl
def cycle_finished(runtime: Runtime, report: CycleReport) -> None:
    """Checkpoint the open usage records, open new ones, close released ones (full and
    partial cycles alike), and attribute the GPUs' energy (full cycles)."""
    cfg = runtime.plugin_config("accounting")
    if isinstance(cfg, AccountingConfig) and not cfg.enabled:
        return
    import sqlite3

    from ds01_accounting.recorder import record_cycle

    try:
        record_cycle(runtime, report)
    except (sqlite3.Error, OSError) as exc:  # a full disk, a locked database: next cycle
        log.error("accounting: this cycle's checkpoint was not written: %s", exc)


@hookimpl
def service_operations() -> Sequence[Operation]:
    """``accounting.usage``: the rules behind ``ds01 usage``."""
    from ds01_accounting.services import OPERATIONS

    return OPERATIONS


@hookimpl
def add_cli_commands(cli: click.Group) -> None:
    """``ds01 usage``."""
    from ds01_accounting.cli import add_commands

    add_commands(cli)
