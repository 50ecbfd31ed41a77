"""The shipped alert and recording rules, checked by Debian's real promtool (``check rules``,
``test rules``) as installed with the plugin, and held to the house rules: every alert has a
``for:`` of at least two cycles, a severity, a topic, a source, a summary, a description and a
runbook; it fires, it does not fire on a blip and it resolves, in its promtool tests; and every
metric a rule reads is in the catalogue the exporter serves."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.plugins.prometheus.alerting import RULES, binary, run

ALERTS = RULES / "ds01-alerts.yml"
RECORDING = RULES / "ds01-recording.yml"
HISTORY = RULES / "ds01-history.yml"
TESTS = sorted((RULES / "tests").glob("*.yml"))

#: the metric catalogue (issue 15, METRICS-15.md): what ds01d's exporter serves
CATALOGUE = {
    "ds01_build_info", "ds01_user_group_info", "ds01_gpu_info", "ds01_gpus_available",
    "ds01_gpu_utilization_ratio", "ds01_gpu_memory_used_bytes", "ds01_gpu_memory_total_bytes",
    "ds01_gpu_temperature_celsius", "ds01_gpu_slowdown_temperature_celsius",
    "ds01_gpu_shutdown_temperature_celsius", "ds01_gpu_power_watts",
    "ds01_gpu_power_limit_watts", "ds01_gpu_energy_joules_total", "ds01_gpu_clock_hertz",
    "ds01_gpu_throttled", "ds01_gpu_ecc_errors_total", "ds01_gpu_retired_pages",
    "ds01_gpu_retired_pages_pending", "ds01_gpu_remapped_rows",
    "ds01_gpu_remapped_rows_pending", "ds01_gpu_remapped_rows_failed",
    "ds01_gpu_xid_errors_total", "ds01_gpu_last_xid", "ds01_gpu_fell_off_bus",
    "ds01_gpu_healthy", "ds01_gpu_health_problem", "ds01_gpu_drained", "ds01_slot_info",
    "ds01_slot_weight", "ds01_slot_utilization_ratio", "ds01_slot_memory_used_bytes",
    "ds01_slot_memory_total_bytes", "ds01_slot_allocated", "ds01_slot_idle",
    "ds01_gpu_capacity_gpu_equivalents", "ds01_gpu_allocated_gpu_equivalents",
    "ds01_gpu_drained_gpu_equivalents", "ds01_user_gpu_equivalents", "ds01_user_gpu_quota",
    "ds01_user_idle_gpu_equivalents", "ds01_user_containers", "ds01_user_cpu_seconds_total",
    "ds01_user_memory_bytes", "ds01_user_memory_limit_bytes", "ds01_user_queue_tickets",
    "ds01_workloads", "ds01_unmanaged_gpu_workloads", "ds01_host_gpu_processes_without_grant",
    "ds01_cycle_duration_seconds", "ds01_last_cycle_timestamp_seconds",
    "ds01_cycle_errors_total", "ds01_plugin_errors_total", "ds01_events_total",
    "ds01_lifecycle_actions_total", "ds01_notices_total", "ds01_gateway_requests_total",
    "ds01_gateway_denials_total", "ds01_allocation_duration_seconds", "ds01_gateway_up",
    "ds01_filesystem_avail_bytes", "ds01_filesystem_size_bytes",
    "ds01_exporter_scrape_duration_seconds",
    # issue 16: the accounting plugin's totals, through the exporter
    "ds01_user_energy_joules_total", "ds01_user_co2_grams_total",
    "ds01_carbon_intensity_grams_per_kwh",
}  # fmt: skip


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules(path: Path, kind: str) -> list[dict[str, Any]]:
    return [rule for group in load(path)["groups"] for rule in group["rules"] if kind in rule]


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", duration))


def metric_names(expr: str) -> set[str]:
    """The series an expression reads: ds01_* names and Prometheus' ``up``, ignoring label
    matchers, strings and the recorded ds01:* names."""
    bare = re.sub(r"\{[^}]*\}|\"[^\"]*\"|`[^`]*`", " ", expr)
    names = set(re.findall(r"(?<![\w:])(ds01_[a-z0-9_]+|up)(?![\w:(])", bare))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if "duration" in n else n for n in names}


def test_promtool_checks_the_shipped_rules():
    result = run([binary("promtool"), "check", "rules", str(ALERTS), str(RECORDING)])
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.findall(r"SUCCESS: (\d+) rules found", result.stdout)
    assert found == [str(len(rules(ALERTS, "alert"))), str(len(rules(RECORDING, "record")))]


def test_promtool_tests_pass():
    assert [t.name for t in TESTS] == [
        "capacity-waste.yml",
        "daemon.yml",
        "gpu-health.yml",
        "history.yml",
        "recording.yml",
        "workloads.yml",
    ]
    result = run([binary("promtool"), "test", "rules", *map(str, TESTS)], cwd=RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TESTS)


def test_every_alert_follows_the_house_rules():
    for rule in rules(ALERTS, "alert"):
        name = rule["alert"]
        assert seconds(rule.get("for", "0s")) >= 120, f"{name}: for: under 2m fires on a blip"
        labels = rule["labels"]
        assert labels["severity"] in ("critical", "warning", "info"), name
        assert labels["topic"] in ("gpu-health", "capacity", "waste", "daemon", "disk",
                                   "workloads"), name  # fmt: skip
        uses = metric_names(rule["expr"])
        expected_source = "prometheus" if uses == {"up"} else "ds01d"
        assert labels["source"] == expected_source, f"{name} reads {sorted(uses)}"
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}, name
        assert all(text.strip() for text in rule["annotations"].values()), name


def test_promtool_checks_the_history_rules():
    result = run([binary("promtool"), "check", "rules", str(HISTORY)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.findall(r"SUCCESS: (\d+) rules found", result.stdout) == [
        str(len(rules(HISTORY, "record")))
    ]
    intervals = {group["name"]: group["interval"] for group in load(HISTORY)["groups"]}
    assert intervals == {"ds01-history-hourly": "1h", "ds01-history-daily": "1d"}
    names = {rule["record"] for rule in rules(HISTORY, "record")}
    assert not names & {rule["record"] for rule in rules(RECORDING, "record")}
    for name in names:  # every hourly aggregate has its daily one, and the other way round
        level, what, how = name.split(":")
        twin = how.replace("hourly", "daily") if "hourly" in how else how.replace("daily", "hourly")
        assert f"{level}:{what}:{twin}" in names, name


def test_rules_read_only_catalogue_metrics():
    for path in (ALERTS, RECORDING, HISTORY):
        for rule in rules(path, "expr"):
            unknown = metric_names(rule["expr"]) - CATALOGUE - {"up"}
            assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"
    for rule in rules(ALERTS, "alert"):  # the XID summary's query template
        unknown = metric_names(rule["annotations"]["summary"]) - CATALOGUE
        assert not unknown, rule["alert"]


def test_every_alert_is_tested_firing_on_a_blip_and_resolved():
    """For each alert and severity: a test case where it fires, one before that where it does
    not (a blip, or still pending), and one after where it has resolved."""
    cases: dict[str, list[tuple[float, set[str]]]] = {}
    for path in TESTS:
        for test in load(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                fired = {a["exp_labels"]["severity"] for a in case["exp_alerts"]}
                cases.setdefault(case["alertname"], []).append((seconds(case["eval_time"]), fired))
    for rule in rules(ALERTS, "alert"):
        name, severity = rule["alert"], rule["labels"]["severity"]
        seen = sorted(cases.get(name, []), key=lambda c: c[0])
        firing = [t for t, fired in seen if severity in fired]
        assert firing, f"{name} ({severity}) never fires in a test"
        assert any(t < firing[0] and not fired for t, fired in seen), f"{name}: no blip case"
        assert any(t > firing[-1] and not fired for t, fired in seen), f"{name}: no resolve"


def test_without_for_every_alert_test_fails(tmp_path):
    """The blip cases bite: with every ``for:`` gone, promtool's tests fail for every alert."""
    shutil.copytree(RULES, tmp_path / "rules")
    text = ALERTS.read_text()
    stripped = re.sub(r"\n {8}for: \S+", "\n        for: 0s", text)
    assert stripped != text
    (tmp_path / "rules" / "ds01-alerts.yml").write_text(stripped)
    tests = [str(t.relative_to(RULES)) for t in TESTS]
    result = run([binary("promtool"), "test", "rules", *tests], cwd=tmp_path / "rules")
    assert result.returncode == 1
    failed = set(re.findall(r"alertname: (\w+), time:", result.stdout + result.stderr))
    assert failed == {r["alert"] for r in rules(ALERTS, "alert")}


@pytest.mark.parametrize(
    ("path", "tests"), [(RECORDING, "recording.yml"), (HISTORY, "history.yml")]
)
def test_every_recording_rule_is_checked_by_value(path, tests):
    tested = {
        case["expr"]
        for test in load(RULES / "tests" / tests)["tests"]
        for case in test.get("promql_expr_test", [])
        if case["exp_samples"]
    }
    assert {rule["record"] for rule in rules(path, "record")} <= tested
    for rule in rules(path, "record"):
        assert re.fullmatch(r"ds01:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="ds01"} == 0 or absent(up{job="ds01"})', {"up"}),
        ("rate(ds01_cycle_duration_seconds_bucket[5m])", {"ds01_cycle_duration_seconds"}),
        ("ds01:gpu_allocated:ratio > 0.5", set()),
        ('sum by (job) (ds01_slot_idle{user="up"})', {"ds01_slot_idle"}),
    ],
)
def test_metric_names_are_read_from_expressions(expr, names):
    assert metric_names(expr) == names


def test_docs_name_every_alert_and_recording_rule():
    docs = (Path(__file__).resolve().parents[3] / "docs" / "alerts.md").read_text()
    for rule in rules(ALERTS, "alert"):
        row = f"| `{rule['alert']}` | {rule['labels']['severity']} | {rule['for']} |"
        assert row in docs, row
    for rule in rules(RECORDING, "record"):
        assert f"`{rule['record']}`" in docs, rule["record"]
    history = (Path(__file__).resolve().parents[3] / "docs" / "history.md").read_text()
    for rule in rules(HISTORY, "record"):
        assert f"`{rule['record']}`" in history, rule["record"]
