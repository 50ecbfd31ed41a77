"""The ``accounting.report`` operation: a period's figures for admins, and sending them.

Admins only (``admin=True``): the report names every user. A member of the admin group runs it
through ``ds01-api`` like root runs it in-process; anyone else is refused before any record is
read. Sending happens here, on the server, where the notify plugin's configuration (and its
SMTP password file) lives.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from ds01_accounting.config import AccountingConfig, ReportConfig
from ds01_accounting.report.figures import ReportFigures, compute
from ds01_accounting.report.period import Period, choose, zone
from ds01_accounting.report.queue_waits import queue_waits
from ds01_accounting.report.render import render, title
from ds01_accounting.report.send import send_report
from ds01_core.api import Invalid, Operation, Param, ServiceContext, Unavailable

if TYPE_CHECKING:
    from ds01_core.api import Runtime


def accounting_config(runtime: Runtime) -> AccountingConfig:
    cfg = runtime.plugin_config("accounting")
    return cfg if isinstance(cfg, AccountingConfig) else AccountingConfig()


def figures_for(
    runtime: Runtime, period: Period, report_cfg: ReportConfig, top_n: int | None = None
) -> ReportFigures:
    """The figures for ``period`` from the accounting store and the audit log."""
    from ds01_accounting.usage import usage_rows

    try:
        rows = usage_rows(runtime, period.since, period.until)
        records = runtime.events.query(type_prefix="gpu.", since=period.since)
    except (sqlite3.Error, OSError) as exc:
        raise Unavailable(f"cannot read the usage records or the audit log: {exc}") from None
    return compute(
        rows,
        period,
        queue_waits(records, period.since, period.until),
        top_n=top_n or report_cfg.top_n,
        generated_at=runtime.now(),
    )


def report(
    ctx: ServiceContext,
    month: str | None = None,
    period: str | None = None,
    since: str | None = None,
    until: str | None = None,
    top: int | None = None,
    send: bool = False,
) -> dict[str, Any]:
    """The report for the chosen window (default: last calendar month); with ``send``, also
    delivered to ``plugins.accounting.report.recipients``."""
    runtime = ctx.runtime
    cfg = accounting_config(runtime)
    if top is not None and top < 1:
        raise Invalid(f"--top: must be 1 or more, got {top}")
    window = choose(
        runtime.now(),
        zone(cfg.report.timezone),
        month_text=month,
        period=period,
        since=since,
        until=until,
        term_starts=cfg.term_starts,
    )
    data = figures_for(runtime, window, cfg.report, top).to_json()
    result: dict[str, Any] = {"report": data, "subject": title(data), "sent": None}
    if send:
        body = render(data, cfg.report.send_format)
        try:
            deliveries = send_report(
                runtime, title(data), body, cfg.report.recipients, cfg.report.channels
            )
        except (sqlite3.Error, OSError) as exc:
            raise Unavailable(f"cannot send the report: {exc}") from None
        result["sent"] = [d.to_json() for d in deliveries]
    return result


OPERATIONS = (
    Operation(
        "accounting.report",
        "POST",
        "/v1/accounting/report",
        report,
        (
            Param("month"),
            Param("period"),
            Param("since"),
            Param("until"),
            Param("top", "int"),
            Param("send", "bool", default=False),
        ),
        admin=True,
        summary="GPU usage figures for a month, term, year or any window (admins).",
    ),
)
