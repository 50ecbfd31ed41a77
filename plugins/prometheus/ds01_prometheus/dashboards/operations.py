"""DASH-01, "ds01 — operations": the lab manager's view of capacity, use, waste, GPU health and
the daemon itself, over time. Queries use only the names of docs/metrics.md (the catalogue) and
the shipped recording rules (``ds01:…``, shipped/rules/ds01-recording.yml) where one computes
what a panel shows."""

from __future__ import annotations

from ds01_prometheus.dashboards.panels import GPU_EQUIVALENTS, Item, graph, listing, row, single

UID = "ds01-operations"
TITLE = "ds01 — operations"
RATE = "$__rate_interval"


def items() -> list[Item]:
    """The panels, top to bottom, in rows."""
    return [
        row("Capacity and allocation"),
        graph(
            "GPU-equivalents: capacity, allocated, drained",
            GPU_EQUIVALENTS,
            [
                ("ds01_gpu_capacity_gpu_equivalents", "capacity"),
                ("ds01_gpu_allocated_gpu_equivalents", "allocated"),
                ("ds01_gpu_drained_gpu_equivalents", "drained"),
            ],
            "All slots in GPU-equivalents (a whole GPU is 1, a 2g MIG slice 2/7); drained GPUs "
            "are not capacity.",
        ),
        graph(
            "Allocated share of capacity",
            "percentunit",
            [("ds01:gpu_allocated:ratio", "allocated")],
        ),
        graph(
            "Allocated but idle (GPU-equivalents)",
            GPU_EQUIVALENTS,
            [("ds01:idle_gpu_equivalents:sum", "idle"), ("sum(ds01_slot_idle)", "idle slots")],
            "Held by a container that stays below its idle threshold: waste.",
        ),
        graph(
            "Queue: tickets waiting for a GPU",
            "none",
            [("sum(ds01_user_queue_tickets)", "tickets")],
        ),
        row("Utilisation"),
        graph(
            "GPU utilisation",
            "percentunit",
            [
                ("ds01:gpu_utilization_ratio:avg5m", "GPU {{gpu}}"),
                ("ds01:gpu_utilization_ratio:avg5m_mean", "all GPUs"),
            ],
            "5-minute means (NVML samples utilisation; a mean smooths its sampling).",
        ),
        graph(
            "Slot utilisation, by holder",
            "percentunit",
            [
                (
                    "ds01_slot_utilization_ratio * on(gpu, slot) group_left(user, container) "
                    "ds01_slot_allocated",
                    "{{slot}} {{user}}/{{container}}",
                )
            ],
        ),
        graph(
            "GPU memory used",
            "percentunit",
            [("ds01:gpu_memory_used:ratio", "GPU {{gpu}}")],
        ),
        listing(
            "Allocated slots that are idle",
            "none",
            [("ds01_slot_idle == 1", "")],
            "Which container holds an idle slot, and whose it is.",
            width=12,
        ),
        row("Users"),
        graph(
            "GPU-equivalents held per user",
            GPU_EQUIVALENTS,
            [("ds01_user_gpu_equivalents", "{{user}}")],
        ),
        graph(
            "Share of quota held per user",
            "percentunit",
            [("ds01:user_gpu_quota:ratio", "{{user}}")],
            "Users without a GPU quota are not shown.",
        ),
        graph(
            "GPU-equivalents held per group",
            GPU_EQUIVALENTS,
            [("ds01:group_gpu_equivalents:sum", "{{group}}")],
        ),
        graph(
            "Idle GPU-equivalents per user",
            GPU_EQUIVALENTS,
            [("ds01_user_idle_gpu_equivalents", "{{user}}")],
        ),
        graph(
            "Workloads by kind and origin",
            "none",
            [
                ("ds01_workloads", "{{kind}} {{origin}}"),
                ("ds01_unmanaged_gpu_workloads", "unmanaged GPU {{origin}}"),
                ("ds01_host_gpu_processes_without_grant", "host GPU processes without grant"),
            ],
        ),
        row("GPU health"),
        listing(
            "GPU health",
            "none",
            [
                ("ds01_gpu_healthy", ""),
                ("ds01_gpu_health_problem == 1", ""),
                ("ds01_gpu_drained", ""),
            ],
            "healthy 1/0 per GPU; each reason that holds now; drained GPUs get no allocation.",
        ),
        graph(
            "Temperature and slowdown threshold",
            "celsius",
            [
                ("ds01_gpu_temperature_celsius", "GPU {{gpu}}"),
                ("ds01_gpu_slowdown_temperature_celsius", "GPU {{gpu}} slowdown"),
            ],
        ),
        graph(
            "Power and limit",
            "watt",
            [
                ("ds01_gpu_power_watts", "GPU {{gpu}}"),
                ("ds01_gpu_power_limit_watts", "GPU {{gpu}} limit"),
            ],
        ),
        single(
            "Energy over the range",
            "joule",
            [("sum(increase(ds01_gpu_energy_joules_total[$__range]))", "")],
        ),
        graph(
            "Clocks",
            "hertz",
            [("ds01_gpu_clock_hertz", "GPU {{gpu}} {{clock}}")],
        ),
        graph(
            "Throttle reasons active",
            "none",
            [("ds01_gpu_throttled == 1", "GPU {{gpu}} {{reason}}")],
        ),
        graph(
            "ECC errors (new, volatile counters)",
            "none",
            [
                (
                    f'sum by (gpu, type) (increase(ds01_gpu_ecc_errors_total{{counter="volatile"}}[{RATE}]))',
                    "GPU {{gpu}} {{type}}",
                )
            ],
        ),
        graph(
            "Retired pages and remapped rows",
            "none",
            [
                # a GPU has one of the two: page retirement before Ampere, row remapping since
                (
                    'label_replace(ds01_gpu_retired_pages, "what", "retired pages, $1", "cause", '
                    '"(.*)") or label_replace(ds01_gpu_remapped_rows, "what", "remapped rows, $1", '
                    '"type", "(.*)")',
                    "GPU {{gpu}} {{what}}",
                ),
                ("ds01_gpu_remapped_rows_pending", "GPU {{gpu}} remap pending"),
                ("ds01_gpu_remapped_rows_failed", "GPU {{gpu}} remap failed"),
            ],
            "Memory rows or pages taken out of use after ECC errors; a failed remap needs a "
            "GPU reset or replacement.",
        ),
        graph(
            "XID errors",
            "none",
            [
                (f"increase(ds01_gpu_xid_errors_total[{RATE}])", "GPU {{gpu}} new"),
                ("ds01_gpu_last_xid", "GPU {{gpu}} last XID"),
                ("ds01_gpu_fell_off_bus", "GPU {{gpu}} fell off the bus"),
            ],
        ),
        row("The daemon and the gateway"),
        graph(
            "Cycle duration (p50, p95)",
            "s",
            [
                (
                    "histogram_quantile(0.5, sum by (le, cycle) "
                    f"(rate(ds01_cycle_duration_seconds_bucket[{RATE}])))",
                    "p50 {{cycle}}",
                ),
                ("ds01:cycle_duration_seconds:p95_5m", "p95 {{cycle}} (5 min)"),
            ],
        ),
        single(
            "Since the last full cycle",
            "s",
            [("time() - ds01_last_cycle_timestamp_seconds", "")],
        ),
        single(
            "Gateway answering",
            "bool_yes_no",
            [("ds01_gateway_up", "")],
        ),
        graph(
            "Errors",
            "none",
            [
                (f"increase(ds01_cycle_errors_total[{RATE}])", "cycle errors"),
                (
                    f"sum by (plugin) (increase(ds01_plugin_errors_total[{RATE}]))",
                    "plugin {{plugin}}",
                ),
            ],
        ),
        graph(
            "Gateway requests",
            "reqps",
            [("sum by (outcome) (ds01:gateway_requests:rate5m)", "{{outcome}}")],
        ),
        graph(
            "Gateway denials by reason",
            "none",
            [
                (
                    f"sum by (reason) (increase(ds01_gateway_denials_total[{RATE}]))",
                    "{{reason}}",
                )
            ],
        ),
        graph(
            "Allocation latency (p95)",
            "s",
            [("ds01:allocation_duration_seconds:p95_5m", "p95 (5 min)")],
            "From asking for GPUs to the answer, through the gateway or the CLI.",
        ),
        graph(
            "Audit events by type",
            "none",
            [(f"sum by (type) (increase(ds01_events_total[{RATE}]))", "{{type}}")],
        ),
        graph(
            "Lifecycle warnings and stops",
            "none",
            [
                (
                    "sum by (action) (increase(ds01_lifecycle_actions_total[$__range]))",
                    "{{action}}",
                )
            ],
        ),
        graph(
            "Notices by channel and outcome",
            "none",
            [
                (
                    "sum by (channel, outcome) (increase(ds01_notices_total[$__range]))",
                    "{{channel}} {{outcome}}",
                )
            ],
        ),
        graph(
            "Disk used",
            "percentunit",
            [("1 - ds01_filesystem_avail_bytes / ds01_filesystem_size_bytes", "{{path}}")],
        ),
        graph(
            "Exporter render time per scrape",
            "s",
            [("ds01_exporter_scrape_duration_seconds", "ds01")],
        ),
        graph(
            "Scrape targets up (ds01, dcgm-exporter)",
            "bool",
            [('up{job=~"ds01|dcgm"}', "{{job}} {{instance}}")],
        ),
        listing("Build", "none", [("ds01_build_info", "")], width=12),
    ]
