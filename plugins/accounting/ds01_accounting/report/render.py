"""The report as text, Markdown, CSV or JSON, from the figures' JSON form.

Renderers read the JSON data (:meth:`ReportFigures.to_json`), not the objects, so the CLI renders
what the server sent in the same way the server renders what it e-mails. Text and Markdown are
written to read well as a plain-text e-mail: short lines, tables padded into columns (Markdown
pipe tables stay aligned when not rendered), ``n/a`` where a figure is not known. CSV is one
rectangular table (one row for the total, each group and each user) for a spreadsheet.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ds01_core.api import format_duration

FORMATS = ("text", "markdown", "csv", "json")
NA = "n/a"

Data = Mapping[str, Any]


def title(data: Data) -> str:
    """``ds01 usage report 2026-11``: the heading, and the e-mail's subject."""
    return f"ds01 usage report {data['period']['label']}"


def _num(value: float | None, digits: int = 2) -> str:
    return NA if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return NA if value is None else f"{value * 100:.0f}%"


def _when(text: str | None) -> str:
    """``2026-10-05 15:00 UTC`` from ``2026-10-05T15:00:00Z``."""
    return NA if not text else f"{text[:10]} {text[11:16]} UTC"


def summary(data: Data) -> list[tuple[str, str]]:
    """The headline figures as (label, value) lines."""
    total, peak, queue = data["total"], data["peak"], data["queue"]
    idle_share = total["idle_gpu_hours"] / total["gpu_hours"] if total["gpu_hours"] else None
    if total["efficiency"] is None:
        efficiency = f"{NA} (no utilisation known)"
    else:
        efficiency = (
            f"{_pct(total['efficiency'])} (busy {_num(total['busy_gpu_hours'])} of "
            f"{_num(total['known_gpu_hours'])} GPU-hours with utilisation known)"
        )
    if queue["requests"] == 0:
        waited, wait = "no request waited for a GPU", NA
    else:
        waited = f"{queue['requests']} requests waited, {queue['served']} served"
        if queue["not_served"]:
            waited += f", {queue['not_served']} not served"
        wait = NA
        if queue["served"]:
            wait = (
                f"median {format_duration(queue['median_seconds'])}, longest "
                f"{format_duration(queue['max_seconds'])} ({queue['max_user']})"
            )
    peak_text = f"{_num(peak['gpu_equivalents'], 2)} GPU-equivalents"
    if peak["at"]:
        peak_text += f" at {_when(peak['at'])}"
    return [
        ("GPU-hours", _num(total["gpu_hours"])),
        ("Active users", str(data["active_users"])),
        ("Allocations", str(total["allocations"])),
        ("Efficiency", efficiency),
        (
            "Waste",
            f"{_num(total['idle_gpu_hours'])} GPU-hours idle while allocated ({_pct(idle_share)})",
        ),
        ("Peak demand", peak_text),
        ("GPU queue", waited),
        ("Queue wait", wait),
        ("Energy", f"{_num(total['energy_kwh'])} kWh"),
        ("CO2", f"{_num(total['co2_kg'])} kg"),
    ]


USER_HEADERS = ("user", "group", "GPU-hours", "share", "efficiency", "idle GPU-h", "kWh", "CO2 kg")
GROUP_HEADERS = (
    "group",
    "users",
    "GPU-hours",
    "share",
    "efficiency",
    "idle GPU-h",
    "kWh",
    "CO2 kg",
)
_RIGHT = {"GPU-hours", "share", "efficiency", "idle GPU-h", "kWh", "CO2 kg", "users", "#"}


def _figures(entry: Data) -> list[str]:
    return [
        _num(entry["gpu_hours"]),
        _pct(entry["share"]),
        _pct(entry["efficiency"]),
        _num(entry["idle_gpu_hours"]),
        _num(entry["energy_kwh"]),
        _num(entry["co2_kg"]),
    ]


def user_rows(users: Sequence[Data]) -> list[list[str]]:
    return [[u["name"], u["group"] or "-", *_figures(u)] for u in users]


def group_rows(groups: Sequence[Data]) -> list[list[str]]:
    return [[g["name"], str(g["users"]), *_figures(g)] for g in groups]


def top_rows(data: Data) -> list[list[str]]:
    by_name = {u["name"]: u for u in data["users"]}
    return [[str(i), *row] for i, row in enumerate(user_rows([by_name[n] for n in data["top"]]), 1)]


def _widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]


def _cell(value: str, width: int, header: str) -> str:
    return value.rjust(width) if header in _RIGHT else value.ljust(width)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded with two spaces between them; ``(none)`` for no rows."""
    if not rows:
        return ["  (none)"]
    widths = _widths(headers, rows)
    lines = ["  " + "  ".join(_cell(h, w, h) for h, w in zip(headers, widths, strict=True))]
    lines.append("  " + "  ".join("-" * w for w in widths))
    for row in rows:
        cells = (_cell(c, w, h) for c, w, h in zip(row, widths, headers, strict=True))
        lines.append(("  " + "  ".join(cells)).rstrip())
    return lines


def _md_escape(value: str) -> str:
    return value.replace("|", "\\|")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub-style pipe table, padded so that it lines up when shown as plain text."""
    if not rows:
        return ["(none)"]
    cooked = [[_md_escape(c) for c in row] for row in rows]
    widths = [max(w, 3) for w in _widths(headers, cooked)]
    rules = [
        ("-" * (w - 1) + ":") if h in _RIGHT else "-" * w
        for h, w in zip(headers, widths, strict=True)
    ]
    lines = ["| " + " | ".join(_cell(h, w, h) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("| " + " | ".join(rules) + " |")
    for row in cooked:
        lines.append(
            "| "
            + " | ".join(_cell(c, w, h) for c, w, h in zip(row, widths, headers, strict=True))
            + " |"
        )
    return lines


def _period_line(data: Data) -> str:
    period = data["period"]
    return f"Period: {_when(period['since'])} to {_when(period['until'])} (end not included)"


def _notes(data: Data) -> list[str]:
    return [
        "GPU-hours are GPU-equivalent-hours: a MIG slice counts as its share of a GPU.",
        "Efficiency: busy GPU time / allocated GPU time whose utilisation was known.",
        "Waste: GPU time allocated to containers that were idle.",
        f"Generated {_when(data['generated_at'])} by ds01 report monthly.",
    ]


def render_text(data: Data) -> str:
    head = title(data)
    lines = [head, "=" * len(head), _period_line(data), ""]
    width = max(len(label) for label, _ in summary(data))
    lines += [f"  {label.ljust(width)}  {value}" for label, value in summary(data)]
    lines += [
        "",
        f"Top {data['top_n']} consumers",
        *text_table(("#", *USER_HEADERS), top_rows(data)),
    ]
    lines += ["", "By group", *text_table(GROUP_HEADERS, group_rows(data["groups"]))]
    lines += ["", "By user", *text_table(USER_HEADERS, user_rows(data["users"]))]
    lines += ["", *_notes(data)]
    return "\n".join(lines) + "\n"


def render_markdown(data: Data) -> str:
    lines = [f"# {title(data)}", "", _period_line(data), ""]
    lines += [f"- **{label}**: {_md_escape(value)}" for label, value in summary(data)]
    lines += [
        "",
        f"## Top {data['top_n']} consumers",
        "",
        *markdown_table(("#", *USER_HEADERS), top_rows(data)),
    ]
    lines += ["", "## By group", "", *markdown_table(GROUP_HEADERS, group_rows(data["groups"]))]
    lines += ["", "## By user", "", *markdown_table(USER_HEADERS, user_rows(data["users"]))]
    lines += ["", *(f"_{note}_  " for note in _notes(data))]
    return "\n".join(lines).rstrip() + "\n"


CSV_HEADERS = (
    "period",
    "period_start",
    "period_end",
    "scope",
    "name",
    "group",
    "users",
    "allocations",
    "gpu_hours",
    "share",
    "busy_gpu_hours",
    "known_gpu_hours",
    "efficiency",
    "idle_gpu_hours",
    "energy_kwh",
    "co2_kg",
    "active_users",
    "peak_gpu_equivalents",
    "peak_at",
    "queue_requests",
    "queue_served",
    "queue_not_served",
    "queue_median_wait_seconds",
    "queue_max_wait_seconds",
)


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def render_csv(data: Data) -> str:
    """One row for the total, then each group, then each user; figures unrounded, an unknown
    figure empty, the period's and whole-report figures (peak, queue) on the total row."""
    period = data["period"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADERS)
    peak, queue = data["peak"], data["queue"]
    extra_total = [
        data["active_users"],
        peak["gpu_equivalents"],
        peak["at"],
        queue["requests"],
        queue["served"],
        queue["not_served"],
        queue["median_seconds"],
        queue["max_seconds"],
    ]
    entries = [("total", data["total"], extra_total)]
    entries += [("group", g, [None] * len(extra_total)) for g in data["groups"]]
    entries += [("user", u, [None] * len(extra_total)) for u in data["users"]]
    for scope, entry, extra in entries:
        row = [
            period["label"],
            period["since"],
            period["until"],
            scope,
            entry["name"],
            entry.get("group") if scope == "user" else None,
            entry["users"],
            entry["allocations"],
            entry["gpu_hours"],
            entry["share"],
            entry["busy_gpu_hours"],
            entry["known_gpu_hours"],
            entry["efficiency"],
            entry["idle_gpu_hours"],
            entry["energy_kwh"],
            entry["co2_kg"],
            *extra,
        ]
        writer.writerow([_csv_value(v) for v in row])
    return out.getvalue()


def render_json(data: Data) -> str:
    return json.dumps(data, indent=2) + "\n"


RENDERERS: dict[str, Callable[[Data], str]] = {
    "text": render_text,
    "markdown": render_markdown,
    "csv": render_csv,
    "json": render_json,
}


def render(data: Data, fmt: str) -> str:
    """``data`` in format ``fmt`` (one of :data:`FORMATS`)."""
    return RENDERERS[fmt](data)
