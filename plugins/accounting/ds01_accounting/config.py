"""The ``plugins.accounting:`` configuration section: what the accounting plugin's parts read.

Each part of the plugin (usage records, reports, carbon intensity, history) keeps its own
fields here; every field has a default so that a missing section is a working one.
"""

from __future__ import annotations

import datetime as dt

import attrs

Problem = tuple[tuple[str | int, ...], str]


@attrs.define
class AccountingConfig:
    """``plugins.accounting``: usage records and the periods ``ds01 usage`` knows."""

    #: record usage in ``<paths.state_dir>/accounting.db`` (off: the daemon writes nothing)
    enabled: bool = True
    #: the start dates of academic terms (``YYYY-MM-DD``), for ``--period term``; empty: the
    #: current half-year (1 January or 1 July)
    term_starts: list[str] = attrs.Factory(list)

    def config_problems(self) -> list[Problem]:
        """Cross-field checks, reported by the core with their paths."""
        problems: list[Problem] = []
        for index, text in enumerate(self.term_starts):
            try:
                dt.date.fromisoformat(text.strip())
            except ValueError:
                problems.append(
                    (("term_starts", index), f"expected a date like 2026-09-28, got {text!r}")
                )
        return problems
