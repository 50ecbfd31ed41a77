"""``ds01 admin monitoring install`` as root and as users: it writes every shipped file where it
was told, checks the result with the real promtool, never overwrites an admin's change without
--force (but updates its own older files), writes nothing on --dry-run, and refuses anyone who
is not root (a non-root admin and a plain user alike) before touching anything."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ds01_prometheus.dashboards import SHIPPED as SHIPPED_DASHBOARDS
from ds01_prometheus.monitoring_install import MANIFEST, PACKAGE_DEFAULTS, SHIPPED, digest
from tests.conftest import in_ci
from tests.helpers.user_cli import run_as

#: /etc/default/victoria-metrics as Debian's victoria-metrics 1.79 ships it
DEBIAN_VM_DEFAULTS = r"""# Set the command-line arguments to pass to the server.
# Due to shell escaping, to pass backslashes for regexes, you need to double
# them (\\d for \d). If running under systemd, you need to double them again
# (\\\\d to mean \d), and escape newlines too.
ARGS="-storageDataPath=/var/lib/victoria-metrics"
"""
DS01 = [sys.executable, "-c", "from ds01_core.transports.cli import main; main()"]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is missing: bash scripts/ci/setup-monitoring.sh"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: this test must not be skipped)", pytrace=False)
        pytest.skip(reason)
    return found


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    return {
        "prometheus": tmp_path / "prometheus" / "ds01",
        "grafana": tmp_path / "grafana" / "provisioning",
        "dashboards": tmp_path / "grafana-lib" / "dashboards" / "ds01",
        "alertmanager": tmp_path / "alertmanager",
        "victoriametrics": tmp_path / "default",
    }


def install(dirs: dict[str, Path], *extra: str) -> subprocess.CompletedProcess[str]:
    args = [f"--{key}-dir={path}" for key, path in dirs.items()]
    return subprocess.run(
        [*DS01, "admin", "monitoring", "install", *args, *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_install_writes_every_shipped_file_and_promtool_accepts_it(
    dirs: dict[str, Path],
) -> None:
    promtool()
    result = install(dirs)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "promtool check config: ok" in result.stdout
    scrape = dirs["prometheus"] / "prometheus.yml"
    assert scrape.read_text() == (SHIPPED / "prometheus" / "prometheus.yml").read_text()
    for rules in (SHIPPED / "rules").glob("*.yml"):
        assert (dirs["prometheus"] / "rules" / rules.name).read_text() == rules.read_text()
    examples = [p for p in (SHIPPED / "alertmanager").iterdir() if p.is_file()]
    assert {p.name for p in examples} >= {"alertmanager.yml"}
    for example in examples:
        assert (dirs["alertmanager"] / example.name).read_text() == example.read_text()
    boards = sorted(p.name for p in SHIPPED_DASHBOARDS.glob("*.json"))
    assert sorted(p.name for p in dirs["dashboards"].iterdir()) == boards
    assert boards == ["ds01-history.json", "ds01-my-usage.json", "ds01-operations.json"]
    provider = (dirs["grafana"] / "dashboards" / "ds01.yml").read_text()
    assert f"path: {dirs['dashboards']}\n" in provider  # pointed at where the JSON went
    assert "uid: ds01-prometheus" in (dirs["grafana"] / "datasources" / "ds01.yml").read_text()
    history = (dirs["grafana"] / "datasources" / "ds01-history.yml").read_text()
    assert "uid: ds01-victoriametrics" in history and "url: http://127.0.0.1:8428" in history
    vm_args = (dirs["victoriametrics"] / "victoria-metrics").read_text()
    assert vm_args == (SHIPPED / "victoriametrics" / "victoria-metrics").read_text()
    assert "-retentionPeriod=2y " in vm_args
    # one progress line per file, and what to reload
    assert result.stdout.count("written") == len(boards) + 5 + len(
        list((SHIPPED / "rules").glob("*.yml"))
    ) + len(examples)
    assert "systemctl reload prometheus" in result.stdout
    # a second run changes nothing
    again = install(dirs, "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert {f["status"] for f in report["files"]} == {"same"}
    assert report["promtool"]["ok"] is True


def test_an_admins_change_is_kept_until_force(dirs: dict[str, Path]) -> None:
    promtool()
    assert install(dirs).returncode == 0
    scrape = dirs["prometheus"] / "prometheus.yml"
    edited = scrape.read_text().replace("scrape_interval: 15s", "scrape_interval: 30s", 1)
    scrape.write_text(edited)
    kept = install(dirs)
    assert kept.returncode == 1
    assert scrape.read_text() == edited
    (line,) = [x for x in kept.stdout.splitlines() if str(scrape) in x.split()]
    assert line.startswith("kept: changed by an admin") and "(+1 -1 lines)" in line
    assert "--force" in kept.stderr
    forced = install(dirs, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "replaced (--force)" in forced.stdout
    assert scrape.read_text() == (SHIPPED / "prometheus" / "prometheus.yml").read_text()


def test_ds01s_own_older_file_is_updated(dirs: dict[str, Path]) -> None:
    """What an older ds01 wrote (its hash in the manifest) is not an admin's change."""
    promtool()
    assert install(dirs).returncode == 0
    board = dirs["dashboards"] / "ds01-operations.json"
    older = board.read_text().replace("ds01 — operations", "ds01 operations (old)")
    board.write_text(older)
    manifest_path = dirs["prometheus"] / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest[str(board)] = digest(older)
    manifest_path.write_text(json.dumps(manifest))
    result = install(dirs)
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = [x for x in result.stdout.splitlines() if str(board) in x.split()]
    assert line.startswith("updated")
    assert board.read_text() == (SHIPPED_DASHBOARDS / "ds01-operations.json").read_text()


def test_debians_own_victoria_metrics_defaults_are_replaced(dirs: dict[str, Path]) -> None:
    """/etc/default/victoria-metrics as the package ships it is nobody's edit: replaced on the
    first install; one line changed from it is an admin's, kept."""
    promtool()
    stock = dirs["victoriametrics"] / "victoria-metrics"
    stock.parent.mkdir(parents=True)
    debian = DEBIAN_VM_DEFAULTS
    assert digest(debian) in PACKAGE_DEFAULTS, "not Debian's file: the fixture is wrong"
    stock.write_text(debian.replace("lib/victoria", "srv/victoria"))
    kept = install(dirs)
    assert kept.returncode == 1 and "srv/victoria" in stock.read_text()
    stock.write_text(debian)
    result = install(dirs)
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = [x for x in result.stdout.splitlines() if "victoriametrics args" in x]
    assert line.startswith("updated") and line.endswith(str(stock) + " (+13 -5 lines)")
    assert stock.read_text() == (SHIPPED / "victoriametrics" / "victoria-metrics").read_text()
    assert f"VictoriaMetrics: {stock} sets its retention" in result.stdout


def test_dry_run_writes_nothing(dirs: dict[str, Path]) -> None:
    result = install(dirs, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would write" in result.stdout and "dry run: nothing written" in result.stdout
    assert not any(path.exists() for path in dirs.values())


def test_a_broken_rule_file_fails_the_promtool_check(dirs: dict[str, Path]) -> None:
    """promtool checks the rules the config loads (rules/*.yml), an admin's included."""
    promtool()
    broken = dirs["prometheus"] / "rules" / "local.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text("groups:\n  - name: x\n    rules:\n      - record: a\n        expr: rate(\n")
    result = install(dirs)
    assert result.returncode == 1
    assert "promtool check config failed" in result.stderr and "local.yml" in result.stderr


@pytest.fixture
def shared_dirs() -> Iterator[dict[str, Path]]:
    """Directories the test users could reach (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="ds01-mon-"))
    base.chmod(0o777)
    yield {"prometheus": base / "p", "grafana": base / "g", "dashboards": base / "d"}
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("who", ["ds01tc", "ds01ta"])
def test_anyone_but_root_is_refused_before_anything_is_written(
    who: str, unix_users, admin_member, user_cli: Path, shared_dirs: dict[str, Path]
) -> None:
    """ds01tc is in the admin group, ds01ta is not: neither is root, so neither can write under
    /etc; both get one line saying so, exit 2, and the (writable) directories stay empty."""
    user = admin_member if who == "ds01tc" else unix_users[who]
    args = [f"--{key}-dir={path}" for key, path in shared_dirs.items()]
    result = run_as(user, user_cli, ["admin", "monitoring", "install", *args])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "run it as root" in result.stderr
    assert "Traceback" not in result.stderr
    assert os.listdir(shared_dirs["prometheus"].parent) == []
