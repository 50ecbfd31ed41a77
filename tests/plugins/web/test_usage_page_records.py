"""The usage and carbon pages show what the accounting recorder recorded: ds01ta held a whole
simulated GPU (50 % busy, 200 W) for two hours, the recorder ran every minute (its real
``record_cycle`` on the simulated host, the clock moved by the test), and the pages — in a real
Chromium, signed in as her — give those two GPU-hours and that efficiency in the chart, its
table and the totals. Bob, who held nothing, sees none of it."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ds01_accounting.recorder import record_cycle
from ds01_core.framework.runtime import load_runtime
from ds01_core.transports.api_socket.server import ThreadedRuntime
from tests.helpers.browser import axe_violations, chromium, describe_violations
from tests.plugins.accounting.accounting_helpers import (
    Clock,
    allocate,
    make_runtime,
    release,
    report,
)
from tests.plugins.web.user_pages_world import SCHEDULE
from tests.plugins.web.web_env import serving, session_for, signed_in_context

pytestmark = pytest.mark.integration

HOURS = 2
SHOTS = os.environ.get("DS01_WEB_SCREENSHOTS")


@pytest.fixture(scope="module")
def world(tmp_path_factory, unix_users) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("usage-records")
    directory.chmod(0o755)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now - dt.timedelta(hours=HOURS, minutes=5)
    clock = Clock(start)
    schedule = directory / "carbon.yaml"
    schedule.write_text(SCHEDULE)  # the grid's intensity by hour: CO2 is recorded with energy
    carbon = {"source": "schedule", "schedule_file": str(schedule)}
    recorder, _gpus = make_runtime(
        directory, clock, {"plugins": {"accounting": {"carbon": carbon}}}
    )
    held = allocate(recorder, "ds01ta", "train", "0")  # GPU 0: whole, 50 % busy, 200 W
    for _ in range(HOURS * 60):
        clock.advance(60)
        record_cycle(recorder, report(recorder))
    release(recorder, held)
    clock.advance(60)
    record_cycle(recorder, report(recorder))
    recorder.close()
    runtime = load_runtime(str(directory / "ds01.yaml"), runtime_class=ThreadedRuntime)
    try:
        with serving(runtime) as url:
            yield {"url": url, "runtime": runtime, "start": start, "users": unix_users}
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def open_page(browser: Any, world: dict[str, Any], user: str, path: str) -> Any:
    who = world["users"][user]
    context = signed_in_context(
        browser, world["url"], session_for(world["runtime"], who.name, who.uid),
        viewport={"width": 1280, "height": 900}, reduced_motion="reduce",  # charts drawn at once
    )  # fmt: skip
    page = context.new_page()
    page.goto(world["url"] + path)
    return page


def table(page: Any) -> dict[str, list[str]]:
    return {
        row.locator("th").inner_text(): [c.inner_text() for c in row.locator("td").all()]
        for row in page.locator("table tbody tr").all()
    }


def test_the_usage_page_shows_the_recorded_gpu_hours_and_efficiency(browser, world):
    page = open_page(browser, world, "ds01ta", "/usage?period=week")
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.querySelector('#usage-chart'))"
    )
    rows = table(page)
    hours = sum(float(cells[0]) for cells in rows.values())
    assert abs(hours - HOURS) < 0.05, rows  # one whole GPU for two hours
    busy = [cells[1] for cells in rows.values() if float(cells[0]) > 0]
    assert busy and all(cell == "50.0 %" for cell in busy), rows
    chart = json.loads(page.locator("#usage-chart").get_attribute("data-chart"))
    drawn = dict(zip(chart["data"]["labels"], chart["data"]["datasets"][0]["data"], strict=True))
    assert {day: float(cells[0]) for day, cells in rows.items()} == drawn
    summary = page.locator("main").inner_text()
    assert "GPU-hours\n2" in summary and "50 %" in summary, summary
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "usage.png"), full_page=True)
    found = axe_violations(page)
    assert found == [], describe_violations(found)
    page.context.close()


def test_the_carbon_page_shows_the_recorded_energy_and_co2(browser, world):
    page = open_page(browser, world, "ds01ta", "/carbon")
    week = page.locator("table tbody tr").first
    assert week.locator("th").inner_text() == "This week"
    energy, co2 = (c.inner_text() for c in week.locator("td").all()[:2])
    assert abs(float(energy) - 0.2 * HOURS) < 0.01, energy  # 200 W for two hours
    # the schedule's intensities lie between 150 and 260 g/kWh
    assert 0.15 * 0.2 * HOURS * 0.95 <= float(co2.split()[0]) <= 0.26 * 0.2 * HOURS * 1.05, co2
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "carbon.png"), full_page=True)
    page.context.close()


def test_another_user_sees_none_of_it(browser, world):
    page = open_page(browser, world, "ds01tb", "/usage?period=week")
    rows = table(page)
    assert rows and all(float(cells[0]) == 0 for cells in rows.values()), rows
    page.context.close()
