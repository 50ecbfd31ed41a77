"""The monthly report's timer and service, as systemd reads them: the timer fires on the 1st of
every month and catches up a missed run (Persistent=true), the service runs
``ds01 report monthly --send`` once, and docs/reports.md installs and enables them.
(``systemd-analyze verify`` of both runs in tests/core/test_systemd_unit_files.py.)"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from tests.core.test_systemd_unit_files import PLUGIN_UNIT_FILES, installed_programs, tool, unit

ROOT = Path(__file__).resolve().parents[3]
UNITS = ROOT / "packaging" / "systemd"
DOC = ROOT / "docs" / "reports.md"


def test_the_timer_fires_on_the_first_of_every_month_and_catches_up() -> None:
    timer = unit(UNITS / "ds01-report-monthly.timer")
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == "ds01-report-monthly.service"
    assert timer["Install"]["WantedBy"] == "timers.target"
    calendar = timer["Timer"]["OnCalendar"]
    analyze = tool("systemd-analyze")
    result = subprocess.run(
        [analyze, "calendar", "--iterations=13", calendar], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    normalized = re.search(r"Normalized form: (.+)", result.stdout)
    assert normalized and normalized.group(1).split()[0] == "*-*-01", result.stdout
    # the next 13 runs: each on the 1st, one per month, 13 different months
    days = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4})-(\d{2})-(\d{2})", result.stdout)
    assert len(days) == 13, result.stdout
    assert {d for _y, _m, d in days} == {"01"}
    assert len({(y, m) for y, m, _d in days}) == 13


def test_the_service_sends_last_months_report_once() -> None:
    service = unit(UNITS / "ds01-report-monthly.service")["Service"]
    assert service["Type"] == "oneshot"
    command = shlex.split(service["ExecStart"])
    assert command[1:] == ["report", "monthly", "--send"]
    assert command[0] in installed_programs()  # /opt/ds01/bin/ds01, as install.md makes it
    assert "Install" not in unit(UNITS / "ds01-report-monthly.service")  # only the timer starts it


def test_the_docs_install_and_enable_the_timer() -> None:
    text = DOC.read_text()
    for path in PLUGIN_UNIT_FILES:
        if path.name.startswith("ds01-report-"):  # the accounting plugin's units
            assert f"packaging/systemd/{path.name}" in text
    assert "systemctl enable --now ds01-report-monthly.timer" in text
