"""The ``plugins.accounting:`` configuration section: what the accounting plugin's parts read.

Each part of the plugin (usage records, reports, carbon intensity, history) keeps its own
fields here; every field has a default so that a missing section is a working one.
"""

from __future__ import annotations

import datetime as dt

import attrs

from ds01_accounting.carbon.config import CarbonConfig

Problem = tuple[tuple[str | int, ...], str]

#: what ``ds01 report monthly --send`` may deliver through (the notify plugin's channel families)
REPORT_CHANNELS = ("email", "webhook", "terminal", "container_file")
REPORT_FORMATS = ("markdown", "text")


@attrs.define
class ReportConfig:
    """``plugins.accounting.report``: who gets ``ds01 report monthly --send`` and what it shows."""

    #: user names the report is sent to, through the notify plugin (their e-mail addresses
    #: come from ``plugins.notify.channels.email``)
    recipients: list[str] = attrs.Factory(lambda: ["root"])
    #: how many users the "top consumers" table lists
    top_n: int = 10
    #: the zone whose midnights bound a month, term or year (``UTC``, ``Europe/London``)
    timezone: str = "UTC"
    #: the body of the sent report: ``markdown`` (reads as plain text too) or ``text``
    send_format: str = "markdown"
    #: the notify channel families the report goes through; webhooks get it once, not once
    #: per recipient
    channels: list[str] = attrs.Factory(lambda: ["email", "webhook"])

    def problems(self) -> list[Problem]:
        """Cross-field checks, as (path inside ``plugins.accounting``, message)."""
        import zoneinfo

        found: list[Problem] = []
        if not self.recipients:
            found.append((("report", "recipients"), "name at least one user, e.g. [root]"))
        for index, name in enumerate(self.recipients):
            if not name.strip() or any(c.isspace() for c in name):
                found.append((("report", "recipients", index), f"not a user name: {name!r}"))
        if self.top_n < 1:
            found.append((("report", "top_n"), f"must be 1 or more, got {self.top_n}"))
        if self.timezone.upper() != "UTC":
            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                found.append(
                    (
                        ("report", "timezone"),
                        f"unknown time zone {self.timezone!r} (e.g. UTC, Europe/London)",
                    )
                )
        if self.send_format not in REPORT_FORMATS:
            found.append(
                (
                    ("report", "send_format"),
                    f"expected one of {', '.join(REPORT_FORMATS)}, got {self.send_format!r}",
                )
            )
        for index, channel in enumerate(self.channels):
            if channel not in REPORT_CHANNELS:
                found.append(
                    (
                        ("report", "channels", index),
                        f"expected one of {', '.join(REPORT_CHANNELS)}, got {channel!r}",
                    )
                )
        if not self.channels:
            found.append((("report", "channels"), "name at least one channel, e.g. [email]"))
        return found


@attrs.define
class AccountingConfig:
    """``plugins.accounting``: usage records and the periods ``ds01 usage`` knows."""

    #: record usage in ``<paths.state_dir>/accounting.db`` (off: the daemon writes nothing)
    enabled: bool = True
    #: the start dates of academic terms (``YYYY-MM-DD``), for ``--period term``; empty: the
    #: current half-year (1 January or 1 July)
    term_starts: list[str] = attrs.Factory(list)
    #: carbon intensity: fixed, a schedule file or a provider (docs/carbon.md)
    carbon: CarbonConfig = attrs.Factory(CarbonConfig)
    #: ``ds01 report monthly``: recipients, top consumers, time zone (docs/reports.md)
    report: ReportConfig = attrs.Factory(ReportConfig)

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
        problems += [
            (("carbon", *path), message) for path, message in self.carbon.config_problems()
        ]
        return problems + self.report.problems()
