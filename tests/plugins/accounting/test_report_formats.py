"""Every format of the fixture month's report parses back to the same figures: CSV with the
csv module, JSON with json, Markdown's tables with the shape of a pipe table (and lined up as
plain text, for an e-mail), text with its summary and tables."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from ds01_accounting.report.render import CSV_HEADERS, render, title
from tests.plugins.accounting.report_fixture import HAND
from tests.plugins.accounting.test_report_figures import october


@pytest.fixture(scope="module")
def data():
    return october()


def test_json_parses_to_the_figures(data):
    parsed = json.loads(render(data, "json"))
    assert parsed == data
    assert parsed["total"]["gpu_hours"] == pytest.approx(HAND["gpu_hours"])


def test_csv_parses_to_one_row_per_total_group_and_user(data):
    table = list(csv.DictReader(io.StringIO(render(data, "csv"))))
    assert tuple(table[0]) == CSV_HEADERS
    assert [(r["scope"], r["name"]) for r in table] == [
        ("total", "all"),
        ("group", "physics"),
        ("group", "bio"),
        ("group", "(no group)"),
        ("user", "ds01tb"),
        ("user", "ds01ta"),
        ("user", "ds01tc"),
        ("user", "ds01td"),
    ]
    total = table[0]
    assert float(total["gpu_hours"]) == pytest.approx(HAND["gpu_hours"])
    assert float(total["efficiency"]) == pytest.approx(HAND["efficiency"])
    assert float(total["energy_kwh"]) == pytest.approx(HAND["energy_kwh"])
    assert float(total["co2_kg"]) == pytest.approx(HAND["co2_kg"])
    assert int(total["active_users"]) == 4
    assert (float(total["peak_gpu_equivalents"]), total["peak_at"]) == HAND["peak"]
    assert float(total["queue_median_wait_seconds"]) == HAND["queue"]["median_seconds"]
    assert int(total["queue_not_served"]) == 1
    users = {r["name"]: r for r in table if r["scope"] == "user"}
    assert {n: float(r["gpu_hours"]) for n, r in users.items()} == HAND["users"]
    assert users["ds01td"]["energy_kwh"] == "" and users["ds01td"]["group"] == ""
    assert users["ds01tb"]["group"] == "physics" and users["ds01tb"]["peak_at"] == ""
    assert {r["period"] for r in table} == {"2026-10"}
    assert {r["period_start"] for r in table} == {"2026-10-01T00:00:00Z"}


def markdown_tables(text: str) -> dict[str, list[list[str]]]:
    """Each ``## heading``'s pipe table as rows of cells (header first, rule dropped)."""
    tables: dict[str, list[list[str]]] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif line.startswith("|") and heading:
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            tables.setdefault(heading, []).append(cells)
    return tables


def test_markdown_has_a_heading_a_summary_and_well_formed_tables(data):
    text = render(data, "markdown")
    lines = text.splitlines()
    assert lines[0] == "# ds01 usage report 2026-10" == f"# {title(data)}"
    assert "- **GPU-hours**: 46.12" in text or "- **GPU-hours**: 46.13" in text
    assert "- **Active users**: 4" in text
    assert "- **Peak demand**: 2.75 GPU-equivalents at 2026-10-05 15:00 UTC" in text
    assert "- **Energy**: 27.50 kWh" in text and "- **CO2**: 5.50 kg" in text
    assert "- **GPU queue**: 4 requests waited, 3 served, 1 not served" in text
    assert "- **Queue wait**: median 30m00s, longest 1h30m (ds01tb)" in text
    tables = markdown_tables(text)
    assert set(tables) == {"Top 2 consumers", "By group", "By user"}
    for rows in tables.values():
        widths = {len(r) for r in rows}
        assert len(widths) == 1, rows  # every row has the header's number of cells
    block = [line for line in lines if line.startswith("|")]
    for line in block:
        assert line.endswith(" |")
    user_lines = [ln for ln in lines if ln.startswith("|")][-6:]
    assert len({len(ln) for ln in user_lines}) == 1  # padded: lines up as plain text
    rule = user_lines[1]
    assert re.fullmatch(r"\|( :?-{3,}:? \|)+", rule), rule
    by_user = tables["By user"]
    assert by_user[0] == [
        "user",
        "group",
        "GPU-hours",
        "share",
        "efficiency",
        "idle GPU-h",
        "kWh",
        "CO2 kg",
    ]
    assert [r[0] for r in by_user[2:]] == ["ds01tb", "ds01ta", "ds01tc", "ds01td"]
    assert by_user[2][2] == "24.00" and by_user[2][4] == "50%"
    assert by_user[5][6] == "n/a"  # ds01td: no energy reading
    assert [r[1] for r in tables["Top 2 consumers"][2:]] == ["ds01tb", "ds01ta"]


def test_text_reads_as_a_plain_report(data):
    text = render(data, "text")
    lines = text.splitlines()
    assert lines[:2] == ["ds01 usage report 2026-10", "=" * len("ds01 usage report 2026-10")]
    assert "Period: 2026-10-01 00:00 UTC to 2026-11-01 00:00 UTC" in lines[2]
    assert re.search(r"^  Efficiency\s+62% \(busy 27\.50 of 44\.12 GPU-hours", text, re.M)
    assert re.search(r"^  Waste\s+7\.12 GPU-hours idle while allocated \(15%\)", text, re.M)
    assert "Top 2 consumers" in text and "By group" in text and "By user" in text
    assert re.search(
        r"^  ds01tb\s+physics\s+24\.00\s+52%\s+50%\s+6\.00\s+15\.00\s+3\.00$", text, re.M
    )
    assert max(len(line) for line in lines) <= 78  # fits an e-mail reader's window
