"""DASH-02, "ds01 — my usage": one user's self-service view (the ``user`` variable): their
containers and slots, GPU-equivalents against their quota, idle GPU time, CPU and memory."""

from __future__ import annotations

from ds01_prometheus.dashboards.panels import GPU_EQUIVALENTS, Item, graph, listing, row, single

UID = "ds01-my-usage"
TITLE = "ds01 — my usage"
#: the template variable's query: everyone the exporter reports on
USER_VALUES = "label_values(ds01_user_gpu_equivalents, user)"
U = 'user="$user"'


def items() -> list[Item]:
    """The panels, top to bottom, in rows."""
    return [
        row("Now"),
        single("Containers", "none", [(f"ds01_user_containers{{{U}}}", "")]),
        single(
            "GPU-equivalents held",
            GPU_EQUIVALENTS,
            [(f"ds01_user_gpu_equivalents{{{U}}}", "")],
        ),
        single(
            "GPU quota",
            GPU_EQUIVALENTS,
            [(f"ds01_user_gpu_quota{{{U}}}", "")],
            "Empty when your GPU-equivalents are not limited.",
        ),
        single(
            "Waiting in the GPU queue",
            "none",
            [(f"ds01_user_queue_tickets{{{U}}}", "")],
        ),
        listing(
            "My GPU slots",
            "none",
            [(f"ds01_slot_allocated{{{U}}}", "")],
            "Each slot one of your containers holds: GPU, slot, MIG profile.",
        ),
        row("GPUs over time"),
        graph(
            "GPU-equivalents held and quota",
            GPU_EQUIVALENTS,
            [
                (f"ds01_user_gpu_equivalents{{{U}}}", "held"),
                (f"ds01_user_gpu_quota{{{U}}}", "quota"),
            ],
        ),
        graph(
            "Utilisation of my slots",
            "percentunit",
            [
                (
                    "ds01_slot_utilization_ratio * on(gpu, slot) group_left(container) "
                    f"ds01_slot_allocated{{{U}}}",
                    "{{container}} (slot {{slot}})",
                )
            ],
        ),
        graph(
            "Idle GPU-equivalents",
            GPU_EQUIVALENTS,
            [(f"ds01_user_idle_gpu_equivalents{{{U}}}", "idle")],
            "Held but below the idle threshold: idle containers are stopped after the idle "
            "timeout, and the GPU goes to someone else.",
        ),
        single(
            "Idle GPU-hours over the range",
            "h",
            [
                (
                    f"avg_over_time(ds01_user_idle_gpu_equivalents{{{U}}}[$__range]) "
                    "* $__range_s / 3600",
                    "",
                )
            ],
        ),
        graph(
            "Idle slots",
            "none",
            [(f"ds01_slot_idle{{{U}}} == 1", "{{container}} (slot {{slot}})")],
        ),
        row("CPU and memory"),
        graph(
            "CPU used (cores)",
            "none",
            [(f"rate(ds01_user_cpu_seconds_total{{{U}}}[$__rate_interval])", "cores")],
        ),
        graph(
            "Memory used and limit",
            "bytes",
            [
                (f"ds01_user_memory_bytes{{{U}}}", "used"),
                (f"ds01_user_memory_limit_bytes{{{U}}}", "limit"),
            ],
        ),
    ]
