"""The long-term store for real: Debian's VictoriaMetrics started with the shipped arguments (only
its storage directory and port changed), a year of hourly history imported through
``/api/v1/import``, and every panel of "ds01 — history" evaluated with ``/api/v1/query_range``
over its own range (a week, a month, a year, all time): each returns data, and the totals equal
what the imported year adds up to. The running store's retention is the shipped one, at least a
year. The shipped ``remote_write``, from a real Prometheus scraping an exposition on loopback:
test_history_remote_write.py.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ds01_prometheus.dashboards import dashboards
from ds01_prometheus.dashboards.history import ALL_TIME
from tests.helpers.waiting import wait_until
from tests.plugins.prometheus import history_data
from tests.plugins.prometheus.alerting import SHIPPED
from tests.plugins.prometheus.victoria import Victoria, flag, seconds, shipped_args

pytestmark = pytest.mark.integration

HISTORY_RULES = SHIPPED / "rules" / "ds01-history.yml"
#: a panel's ``timeFrom`` in seconds (Grafana's year is a calendar year: 365 days here)
RANGES = {"7d": 7 * 86400, "30d": 30 * 86400, "1y": 365 * 86400, ALL_TIME: 3650 * 86400}


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victoria]:
    base = tmp_path_factory.mktemp("victoria")
    vm = Victoria(base)
    try:
        yield vm
    finally:
        vm.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def year(victoria: Victoria) -> history_data.History:
    """A year imported, ending an hour ago (clear of VictoriaMetrics' 30 s latency offset)."""
    end = int(time.time()) // 3600 * 3600 - 3600
    hist = history_data.build(end)
    for part in history_data.chunks(hist):
        assert victoria.post("/api/v1/import", part) == 204
    victoria.flush()
    wanted = history_data.series_count(hist)

    def all_there() -> bool:
        victoria.flush()
        found = victoria.query('count({__name__=~"ds01.*|up"})', at=end)
        return bool(found) and int(float(found[0]["value"][1])) == wanted

    wait_until(all_there, timeout=30, what=f"all {wanted} imported series searchable", every=0.2)
    return hist


def test_the_running_store_keeps_what_the_shipped_file_says(victoria: Victoria) -> None:
    """The retention VictoriaMetrics reports (its ``flag`` metric) is the shipped one, and at
    least a year; the address is loopback."""
    shipped = flag(shipped_args(), "retentionPeriod")
    assert seconds(shipped) >= 365 * 86400, f"-retentionPeriod={shipped} is under a year"
    assert flag(shipped_args(), "httpListenAddr").startswith("127.0.0.1:")
    metrics = victoria.get("/metrics", raw=True).decode()
    running = dict(re.findall(r'^flag\{name="([^"]+)", value="([^"]*)"', metrics, re.M))
    assert running["retentionPeriod"] == shipped
    for arg in victoria.args:  # every other shipped setting is in force too (dedup)
        name, value = arg.removeprefix("-").split("=", 1)
        assert running[name] == value, arg
    assert f'-retentionPeriod="{shipped}"' in victoria.get("/flags", raw=True).decode()


def test_a_year_imported_is_all_kept(victoria: Victoria, year: history_data.History) -> None:
    """Nothing of the year was dropped as too old, and every recorded series is there."""
    assert history_data.recorded_names(HISTORY_RULES) <= history_data.imported_names(year)
    oldest = year.hours()[0]
    points = victoria.query(f"count_over_time(up[{history_data.DAYS}d])", at=year.end)
    assert int(float(points[0]["value"][1])) == history_data.DAYS * 24
    # the stored samples themselves: an instant query at ``oldest`` looks back from it, and
    # when ``oldest`` is midnight UTC (the test run between 00:00 and 01:00) that window starts
    # on a day VictoriaMetrics counts as past retention, and the query finds nothing
    export = victoria.get(
        "/api/v1/export", raw=True, **{"match[]": "up", "start": oldest, "end": oldest}
    )
    stamps = [t for line in export.splitlines() for t in json.loads(line)["timestamps"]]
    assert oldest * 1000 in stamps, "the year's first hour is gone"


def history_targets() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    board = dashboards()["ds01-history.json"]
    found = []
    row = ""
    for panel in board["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        for target in panel["targets"]:
            found.append((f"{row}: {panel['title']} [{target['refId']}]", panel, target))
    return found


def grafana(expr: str, panel: dict[str, Any]) -> tuple[str, int, int]:
    """The query as Grafana sends it for this panel (its ``timeFrom`` and smallest interval),
    with the range and the step."""
    span, step = RANGES[panel["timeFrom"]], seconds(panel["interval"])
    expr = expr.replace("$__range_s", str(span)).replace("$__range", f"{span}s")
    return expr.replace("$__interval", panel["interval"]), span, step


def test_every_history_panel_returns_data_over_its_range(
    victoria: Victoria, year: history_data.History
) -> None:
    targets = history_targets()
    assert {panel["timeFrom"] for _, panel, _ in targets} == set(RANGES)
    assert len(targets) >= 60
    empty = []
    for where, panel, target in targets:
        expr, span, step = grafana(target["expr"], panel)
        result = victoria.query_range(expr, year.end - span, year.end, step)
        values = [float(v) for series in result for _, v in series["values"]]
        if not any(math.isfinite(v) for v in values):
            empty.append(f"{where}: {expr}")
    assert not empty, f"{len(empty)} of {len(targets)} history queries return no data:\n" + (
        "\n".join(empty)
    )


def stat(victoria: Victoria, year: history_data.History, row: str, title: str) -> float:
    ((_, panel, target),) = [t for t in history_targets() if t[0] == f"{row}: {title} [A]"]
    expr, _, _ = grafana(target["expr"], panel)
    (series,) = victoria.query(expr, at=year.end)
    return float(series["value"][1])


@pytest.mark.parametrize(
    ("row", "span", "users"),
    [("Last 7 days", 7, 5), ("Last 30 days", 30, 5), ("Last year", 365, 6), ("All time", 3650, 6)],
)
def test_the_totals_are_what_the_year_adds_up_to(
    victoria: Victoria, year: history_data.History, row: str, span: int, users: int
) -> None:
    """GPU-hours, users, efficiency and energy over each row's range equal the sums of the
    imported hours (the year rows read the daily series: the same totals); ``old``, active only
    half a year ago, counts in the year, not in the month."""
    window = span * 86400
    assert year.active(window) == users
    assert stat(victoria, year, row, "Users") == users
    gpu_hours = year.total("user_gpu_hours", window)
    assert stat(victoria, year, row, "GPU-hours allocated") == pytest.approx(gpu_hours, rel=1e-6)
    efficiency = year.total("user_busy_gpu_hours", window) / year.total(
        "user_measured_gpu_hours", window
    )
    assert stat(victoria, year, row, "Efficiency") == pytest.approx(efficiency, rel=1e-6)
    kwh = year.total("gpu_energy_joules", window) / 3.6e6
    assert stat(victoria, year, row, "GPU energy") == pytest.approx(kwh, rel=1e-6)
    co2 = year.total("user_co2_grams", window) / 1000
    assert stat(victoria, year, row, "CO₂") == pytest.approx(co2, rel=1e-6)


def test_recorded_energy_agrees_with_the_exporters_counters(
    victoria: Victoria, year: history_data.History
) -> None:
    """The hourly increases (what the rule records) add up to the counters' increase."""
    week = "7d"
    (recorded,) = victoria.query(
        f"sum(sum_over_time(ds01:user_energy_joules:hourly[{week}]))", year.end
    )
    (counted,) = victoria.query(f"sum(increase(ds01_user_energy_joules_total[{week}]))", year.end)
    assert float(recorded["value"][1]) == pytest.approx(float(counted["value"][1]), rel=1e-6)
    assert float(recorded["value"][1]) == pytest.approx(
        year.total("user_energy_joules", 7 * 86400), rel=1e-6
    )
