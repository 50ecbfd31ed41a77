"""What ``ds01 admin monitoring install`` writes and where: the shipped Prometheus, Alertmanager,
VictoriaMetrics and Grafana files planned against the host's directories, then written, never
over a file an admin changed unless forced.

A file counts as the admin's when it differs both from what ds01 would write now and from what
ds01 wrote last time: each install records the hash of every file it wrote in a manifest
(``.ds01-monitoring.json`` in the Prometheus directory), so an older ds01 file is updated and an
edited one is kept (shown with a diff summary) until ``--force``. A file exactly as its Debian
package ships it (``/etc/default/victoria-metrics``) is not an admin's change either.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "shipped"
MANIFEST = ".ds01-monitoring.json"
#: the dashboards provider's path as shipped; the install writes the real directory there
SHIPPED_DASHBOARDS_PATH = "/var/lib/grafana/dashboards/ds01"
#: the file Debian's victoria-metrics.service reads its ARGS from, in ``Directories.victoriametrics``
VM_ARGS = "victoria-metrics"
#: sha256 of files as their Debian packages ship them: replaced like ds01's own older files
PACKAGE_DEFAULTS = frozenset(
    {
        # victoria-metrics 1.79 (bookworm): ARGS="-storageDataPath=/var/lib/victoria-metrics"
        "d36d375f8234b089f6c64304f0af43d22efad91d81454583721c28746ed05892",
    }
)


@dataclass(frozen=True)
class Directories:
    """Where the files go (the command's options; defaults for a Debian host)."""

    prometheus: Path = Path("/etc/prometheus/ds01")
    grafana: Path = Path("/etc/grafana/provisioning")
    dashboards: Path = Path(SHIPPED_DASHBOARDS_PATH)
    alertmanager: Path = Path("/etc/prometheus/ds01/alertmanager")
    victoriametrics: Path = Path("/etc/default")


@dataclass(frozen=True)
class Planned:
    """One file: what it is, where it goes, its content, and what installing it does.

    ``status``: ``new`` (not there), ``same`` (already this content), ``update`` (ds01's own
    older file), ``kept`` (changed by an admin: left alone), ``replace`` (changed by an admin,
    overwritten because of ``--force``)."""

    kind: str
    path: Path
    text: str
    status: str
    diff: str = ""

    @property
    def writes(self) -> bool:
        return self.status in ("new", "update", "replace")

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "path": str(self.path), "status": self.status, "diff": self.diff}


def sources(dirs: Directories) -> list[tuple[str, Path, str]]:
    """(kind, target path, content) for every shipped file, in the order they are written."""
    found: list[tuple[str, Path, str]] = []
    found.append(
        (
            "scrape config",
            dirs.prometheus / "prometheus.yml",
            (SHIPPED / "prometheus" / "prometheus.yml").read_text(),
        )
    )
    for rules in sorted((SHIPPED / "rules").glob("*.yml")):
        found.append(("rules", dirs.prometheus / "rules" / rules.name, rules.read_text()))
    found.append(
        (
            "victoriametrics args",
            dirs.victoriametrics / VM_ARGS,
            (SHIPPED / "victoriametrics" / VM_ARGS).read_text(),
        )
    )
    # the configuration and the templates it names (relative to its directory)
    for example in sorted(p for p in (SHIPPED / "alertmanager").iterdir() if p.is_file()):
        found.append(
            ("alertmanager example", dirs.alertmanager / example.name, example.read_text())
        )
    provisioning = SHIPPED / "grafana" / "provisioning"
    for sub in ("datasources", "dashboards"):
        for each in sorted((provisioning / sub).glob("*.yml")):
            text = each.read_text()
            if sub == "dashboards":
                text = text.replace(SHIPPED_DASHBOARDS_PATH, str(dirs.dashboards))
            kind = "grafana datasource" if sub == "datasources" else "grafana provider"
            found.append((kind, dirs.grafana / sub / each.name, text))
    for board in sorted((SHIPPED / "grafana" / "dashboards").glob("*.json")):
        found.append(("dashboard", dirs.dashboards / board.name, board.read_text()))
    return found


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(dirs: Directories) -> dict[str, str]:
    """Path → hash of what ds01 wrote there last time ({} when never installed, or unreadable)."""
    try:
        data = json.loads((dirs.prometheus / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def diff_summary(old: str, new: str) -> str:
    """``+N -M lines`` between the file on disk and ds01's."""
    added = removed = 0
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return f"+{added} -{removed} lines"


def plan(dirs: Directories, force: bool = False) -> list[Planned]:
    """Every file and what installing it would do; nothing is written."""
    manifest = read_manifest(dirs)
    planned = []
    for kind, path, text in sources(dirs):
        try:
            current: str | None = path.read_text()
        except FileNotFoundError:
            current = None
        if current is None:
            planned.append(Planned(kind, path, text, "new"))
        elif current == text:
            planned.append(Planned(kind, path, text, "same"))
        elif manifest.get(str(path)) == digest(current) or digest(current) in PACKAGE_DEFAULTS:
            planned.append(Planned(kind, path, text, "update", diff_summary(current, text)))
        else:
            status = "replace" if force else "kept"
            planned.append(Planned(kind, path, text, status, diff_summary(current, text)))
    return planned


def write(planned: Planned) -> None:
    """One file, atomically (a reader never sees half of it), mode 0644."""
    planned.path.parent.mkdir(parents=True, exist_ok=True)
    temporary = planned.path.with_name(f".{planned.path.name}.ds01-tmp")
    temporary.write_text(planned.text)
    temporary.chmod(0o644)
    os.replace(temporary, planned.path)


def record(dirs: Directories, planned: list[Planned]) -> None:
    """The manifest: the hash of every file that now holds ds01's content."""
    manifest = read_manifest(dirs)
    for each in planned:
        if each.status != "kept":
            manifest[str(each.path)] = digest(each.text)
    dirs.prometheus.mkdir(parents=True, exist_ok=True)
    (dirs.prometheus / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def promtool_check(config: Path) -> tuple[bool, str] | None:
    """``promtool check config`` (it checks the rule files too); None without promtool."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return None
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=120
    )
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def reload_hints(dirs: Directories) -> list[str]:
    """What the admin reloads or sets so that the new files take effect."""
    return [
        f"Prometheus: run it with --config.file={dirs.prometheus / 'prometheus.yml'} (Debian: "
        "ARGS in /etc/default/prometheus) or copy its scrape_configs and rule_files into "
        "yours; then `systemctl reload prometheus`",
        f"Alertmanager: merge the example in {dirs.alertmanager} into its configuration, then "
        "`systemctl reload prometheus-alertmanager`",
        f"VictoriaMetrics: {dirs.victoriametrics / VM_ARGS} sets its retention and address; "
        "`systemctl restart victoria-metrics` (Prometheus remote-writes to it)",
        "Grafana: `systemctl restart grafana-server` (provisioning is read at start; the "
        "dashboards themselves are re-read every minute)",
    ]
