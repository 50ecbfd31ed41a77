"""The few panel shapes ds01's dashboards use, built with grafana-foundation-sdk so that every
panel gets the same datasource, a query with a ``refId``, a unit and a place on the grid."""

from __future__ import annotations

from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import Row
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, Panel
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

#: the uid the shipped provisioning gives the Prometheus datasource (shipped/grafana/provisioning)
DATASOURCE_UID = "ds01-prometheus"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
#: VictoriaMetrics, the long-term store (answers PromQL: Grafana's Prometheus datasource type)
HISTORY_DATASOURCE_UID = "ds01-victoriametrics"
HISTORY_DATASOURCE = DataSourceRef(type_val="prometheus", uid=HISTORY_DATASOURCE_UID)

#: Grafana's unit for a plain number; GPU-equivalents have no unit of their own
GPU_EQUIVALENTS = "none"

Query = tuple[str, str]  # (PromQL, legend)


def _targets(
    queries: list[Query], instant: bool = False, table: bool = True
) -> list[prometheus.Dataquery]:
    targets = []
    for index, (expr, legend) in enumerate(queries):
        target = prometheus.Dataquery().expr(expr).ref_id(chr(ord("A") + index))
        if legend:
            target = target.legend_format(legend)
        if instant:
            target = target.instant()
            if table:
                target = target.format(PromQueryFormat.TABLE)
        targets.append(target)
    return targets


def graph(
    title: str,
    unit: str,
    queries: list[Query],
    description: str = "",
    width: int = 12,
    datasource: DataSourceRef = DATASOURCE,
) -> timeseries.Panel:
    """A time series panel: how something moved over the dashboard's range."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(datasource)
        .height(8)
        .span(width)
    )
    for target in _targets(queries):
        panel = panel.with_target(target)
    return panel


def single(
    title: str,
    unit: str,
    queries: list[Query],
    description: str = "",
    width: int = 6,
    datasource: DataSourceRef = DATASOURCE,
    instant: bool = False,
) -> stat.Panel:
    """A stat panel: one number now (the last value over the range; with ``instant``, one
    query at the range's end, for a number that already covers the range)."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(datasource)
        .height(4)
        .span(width)
    )
    for target in _targets(queries, instant=instant, table=False):
        panel = panel.with_target(target)
    return panel


def listing(
    title: str,
    unit: str,
    queries: list[Query],
    description: str = "",
    width: int = 24,
    datasource: DataSourceRef = DATASOURCE,
) -> table.Panel:
    """A table of instant values, one row per series (labels as columns)."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(datasource)
        .height(8)
        .span(width)
    )
    for target in _targets(queries, instant=True):
        panel = panel.with_target(target)
    return panel


def row(title: str) -> Row:
    """A row header; the panels after it belong to it."""
    return Row(title)


#: what a dashboard module lists: a row header or a panel
Item = Row | Builder[Panel]
