"""The Grafana dashboards: the checked-in JSON is exactly what the generator writes now (nobody
edits it by hand), every panel is complete (datasource, query, unit, title), the provisioning
files name the dashboards' datasource, and packaging/grafana is the shipped directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ds01_prometheus.dashboards import SHIPPED, dashboards, render
from ds01_prometheus.dashboards.panels import DATASOURCE_UID, HISTORY_DATASOURCE_UID

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "plugins" / "prometheus" / "ds01_prometheus" / "shipped" / "grafana"


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that is not a row header (rows carry no query)."""
    return [p for p in board["panels"] if p["type"] != "row"]


def test_the_checked_in_json_is_what_the_generator_writes() -> None:
    generated = dashboards()
    checked_in = {path.name: path.read_text() for path in (GRAFANA / "dashboards").glob("*.json")}
    assert set(checked_in) == set(generated), "regenerate: python -m ds01_prometheus.dashboards"
    for name, data in generated.items():
        assert checked_in[name] == render(data), (
            f"{name} differs from the generator's output: edit ds01_prometheus/dashboards/ and "
            "run `python -m ds01_prometheus.dashboards` (from plugins/prometheus), never the JSON"
        )


def test_the_installed_package_ships_the_dashboards() -> None:
    """The wheel's package data holds the same JSON (what `monitoring install` copies)."""
    for name, data in dashboards().items():
        assert (SHIPPED / name).read_text() == render(data)


def test_the_three_dashboards_are_there() -> None:
    boards = {data["uid"]: data for data in dashboards().values()}
    assert set(boards) == {"ds01-operations", "ds01-my-usage", "ds01-history"}
    assert boards["ds01-history"]["title"] == "ds01 — history"
    assert boards["ds01-operations"]["title"] == "ds01 — operations"
    assert boards["ds01-my-usage"]["title"] == "ds01 — my usage"
    (variable,) = boards["ds01-my-usage"]["templating"]["list"]
    assert variable["name"] == "user" and "ds01_user_" in variable["query"]


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_every_panel_has_a_datasource_a_query_a_unit_and_a_title(name: str) -> None:
    board = dashboards()[name]
    found = panels(board)
    assert len(found) >= 10
    ids = [p["id"] for p in board["panels"]]
    assert len(set(ids)) == len(ids) and 0 not in ids
    for panel in found:
        where = f"{name}: panel {panel.get('title')!r}"
        assert panel.get("title"), where
        uid = HISTORY_DATASOURCE_UID if name == "ds01-history.json" else DATASOURCE_UID
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, where
        assert panel["fieldConfig"]["defaults"].get("unit"), where
        assert panel.get("targets"), where
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids) and "" not in ref_ids, where
        for target in panel["targets"]:
            expr = target["expr"]
            assert "ds01_" in expr or "ds01:" in expr or "up{" in expr, where


def test_the_my_usage_dashboard_shows_only_the_chosen_user() -> None:
    """Every query of DASH-02 is cut to the ``user`` variable: a user's view, not everyone's."""
    board = dashboards()["ds01-my-usage.json"]
    for panel in panels(board):
        for target in panel["targets"]:
            assert 'user="$user"' in target["expr"], panel["title"]


def test_the_provisioning_names_the_dashboards_datasource() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/ds01.yml").read_text())
    (source,) = sources["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "prometheus"
    history = yaml.safe_load((GRAFANA / "provisioning/datasources/ds01-history.yml").read_text())
    (source,) = history["datasources"]
    assert source["uid"] == HISTORY_DATASOURCE_UID and source["type"] == "prometheus"
    assert source["url"] == "http://127.0.0.1:8428"  # the shipped -httpListenAddr
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/ds01.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_packaging_grafana_is_the_shipped_directory() -> None:
    link = ROOT / "packaging" / "grafana"
    assert link.is_symlink()
    assert link.resolve() == GRAFANA.resolve()
    assert json.loads((link / "dashboards" / "ds01-operations.json").read_text())["panels"]
