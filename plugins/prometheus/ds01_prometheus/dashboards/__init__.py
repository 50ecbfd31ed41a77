"""ds01's Grafana dashboards, generated from code (grafana-foundation-sdk), so that a change is
reviewed as Python and the JSON in ``shipped/grafana/dashboards/`` is never edited by hand.

``python -m ds01_prometheus.dashboards [DIR]`` rewrites the JSON (default: the package's own
``shipped/grafana/dashboards``); a test checks that the checked-in files equal what this writes.
Only the generator needs the SDK (``pip install grafana-foundation-sdk``); installing the
dashboards (``ds01 admin monitoring install``) copies the checked-in JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard, QueryVariable, Row
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import VariableRefresh, VariableSort

from ds01_prometheus.dashboards import history, my_usage, operations
from ds01_prometheus.dashboards.panels import DATASOURCE, Item

#: where the checked-in JSON lives inside the package
SHIPPED = Path(__file__).resolve().parent.parent / "shipped" / "grafana" / "dashboards"


def _dashboard(uid: str, title: str, items: list[Item]) -> Dashboard:
    board = (
        Dashboard(title)
        .uid(uid)
        .tags(["ds01"])
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("browser")
        .editable()
    )
    for item in items:
        board = board.with_row(item) if isinstance(item, Row) else board.with_panel(item)
    return board


def _numbered(data: dict[str, Any]) -> dict[str, Any]:
    """Panel ids 1..n in order (the SDK leaves them 0; Grafana wants them unique)."""
    for number, panel in enumerate(data["panels"], start=1):
        panel["id"] = number
    return data


def dashboards() -> dict[str, dict[str, Any]]:
    """File name → dashboard JSON (as Grafana's provisioning reads it)."""
    ops = _dashboard(operations.UID, operations.TITLE, operations.items())
    mine = _dashboard(my_usage.UID, my_usage.TITLE, my_usage.items()).with_variable(
        QueryVariable("user")
        .label("user")
        .query(my_usage.USER_VALUES)
        .datasource(DATASOURCE)
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    # each row sets its own range; the picker's only matters to Grafana's own controls
    past = _dashboard(history.UID, history.TITLE, history.items()).time("now-7d", "now")
    return {
        "ds01-operations.json": _numbered(_to_json(ops)),
        "ds01-my-usage.json": _numbered(_to_json(mine)),
        "ds01-history.json": _numbered(_to_json(past.refresh("1h"))),
    }


def _to_json(board: Dashboard) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return data


def render(data: dict[str, Any]) -> str:
    """The one way the JSON is written (stable key order, a final newline)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path = SHIPPED) -> list[Path]:
    """Write every dashboard into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in dashboards().items():
        path = directory / name
        path.write_text(render(data))
        written.append(path)
    return written
