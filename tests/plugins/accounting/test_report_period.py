"""Which window ``ds01 report monthly`` covers: the month before by default (across a year's
end), a named month, the last complete term and year, a window of one's own, midnights in the
configured time zone, and a clear usage error (naming the option) for anything else."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import pytest

from ds01_accounting.config import AccountingConfig, ReportConfig
from ds01_accounting.report.period import choose, zone
from ds01_core.api import Invalid

UTC = dt.UTC


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


def test_the_default_is_the_previous_calendar_month():
    period = choose(at(2026, 12, 1, 6, 3), UTC)
    assert (period.kind, period.label) == ("month", "2026-11")
    assert (period.since, period.until) == (at(2026, 11, 1), at(2026, 12, 1))
    january = choose(at(2027, 1, 1, 0, 0, 1), UTC)  # across the year's end
    assert (january.label, january.since, january.until) == (
        "2026-12",
        at(2026, 12, 1),
        at(2027, 1, 1),
    )
    assert choose(at(2026, 3, 31, 23), UTC, period="month").label == "2026-02"


def test_a_named_month():
    period = choose(at(2026, 12, 15), UTC, month_text="2026-02")
    assert (period.since, period.until) == (at(2026, 2, 1), at(2026, 3, 1))


def test_month_boundaries_are_midnights_in_the_configured_zone():
    london = zone("Europe/London")
    period = choose(at(2026, 8, 2), london, month_text="2026-07")  # BST: UTC+1
    assert (period.since, period.until) == (at(2026, 6, 30, 23), at(2026, 7, 31, 23))
    # run just after midnight on 1 August in London (still 31 July in UTC): July is the last month
    assert choose(at(2026, 7, 31, 23, 30), london).label == "2026-07"


def test_the_last_complete_year_and_half_year_term():
    year = choose(at(2027, 1, 1, 6), UTC, period="year")
    assert (year.label, year.since, year.until) == ("2026", at(2026, 1, 1), at(2027, 1, 1))
    term = choose(at(2026, 11, 20), UTC, period="term")
    assert (term.since, term.until) == (at(2026, 1, 1), at(2026, 7, 1))
    assert term.label == "term 2026-01-01 to 2026-06-30"


def test_configured_terms():
    starts = ["2026-09-28", "2026-01-12", "2026-04-20"]
    term = choose(at(2026, 10, 1), UTC, period="term", term_starts=starts)
    assert (term.since, term.until) == (at(2026, 4, 20), at(2026, 9, 28))
    with pytest.raises(Invalid, match="no complete term yet"):
        choose(at(2026, 3, 1), UTC, period="term", term_starts=starts)
    with pytest.raises(Invalid, match=r"plugins.accounting.term_starts\[1\]: expected a date"):
        choose(at(2026, 3, 1), UTC, period="term", term_starts=["2026-01-12", "spring"])


def test_a_window_of_ones_own():
    now = at(2026, 11, 20, 12)
    window = choose(now, UTC, since="2026-09-01", until="2026-10-15T12:00Z")
    assert (window.kind, window.since, window.until) == (
        "custom",
        at(2026, 9, 1),
        at(2026, 10, 15, 12),
    )
    assert window.label == "2026-09-01 to 2026-10-15"
    open_ended = choose(now, UTC, since="2026-11-01")
    assert (open_ended.since, open_ended.until) == (at(2026, 11, 1), now)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"month_text": "2026-13"}, "--month: expected a month like 2026-11, got '2026-13'"),
        ({"month_text": "Nov"}, "--month: expected a month like 2026-11"),
        ({"month_text": "2026-10", "period": "year"}, "--month cannot be combined"),
        ({"period": "term", "since": "2026-01-01"}, "--period cannot be combined"),
        ({"until": "2026-01-01"}, "--until needs --since"),
        ({"since": "yesterday"}, "--since: expected a date like 2026-11-01"),
        ({"since": "2026-10-02", "until": "2026-10-01"}, "--until must be after --since"),
        ({"period": "week"}, "--period: expected one of month, term, year"),
    ],
)
def test_bad_options_are_usage_errors_naming_the_option(options, message):
    with pytest.raises(Invalid, match="^" + re.escape(message)) as caught:
        choose(at(2026, 11, 20), UTC, **options)
    assert caught.value.exit_code == 2


def test_report_config_problems_are_named_by_path():
    cfg = AccountingConfig(
        report=ReportConfig(
            recipients=["root", "two words"], top_n=0, timezone="Mars/Base",
            send_format="html", channels=["email", "pigeon"],
        )
    )  # fmt: skip
    problems = dict(cfg.config_problems())
    assert set(problems) == {
        ("report", "recipients", 1),
        ("report", "top_n"),
        ("report", "timezone"),
        ("report", "send_format"),
        ("report", "channels", 1),
    }
    assert "unknown time zone 'Mars/Base'" in problems[("report", "timezone")]
    assert AccountingConfig().config_problems() == []
    assert ReportConfig().recipients == ["root"]
    with pytest.raises(Invalid, match=re.escape("plugins.accounting.report.timezone")):
        zone("Mars/Base")
    assert zone("Europe/London") == zoneinfo.ZoneInfo("Europe/London")


def problems_of(section: dict) -> str:
    from ds01_core.domain.config import ConfigError, build_config

    with pytest.raises(ConfigError) as info:
        build_config(
            {"plugins": {"accounting": section}}, sections={"accounting": AccountingConfig}
        )
    return "\n".join(str(p) for p in info.value.problems)


def test_the_loader_names_each_report_problem_by_its_full_path():
    from ds01_core.domain.config import build_config

    text = problems_of({"report": {"timezone": "Mars/Base", "top_n": 0}})
    assert "plugins.accounting.report.timezone: unknown time zone 'Mars/Base'" in text
    assert "plugins.accounting.report.top_n: must be 1 or more, got 0" in text
    assert "plugins.accounting.report.bogus: unknown key" in problems_of({"report": {"bogus": 1}})
    good = build_config(
        {"plugins": {"accounting": {"report": {"recipients": ["root", "lab"], "top_n": 5}}}},
        sections={"accounting": AccountingConfig},
    )
    assert good.plugins.sections["accounting"].report == ReportConfig(
        recipients=["root", "lab"], top_n=5
    )
