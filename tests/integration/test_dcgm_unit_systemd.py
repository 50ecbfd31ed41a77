"""ds01-dcgm-exporter under a real systemd (252, PID 1 of a container): the unit keeps NVIDIA's
dcgm-exporter alive. A stand-in ``/usr/bin/dcgm-exporter`` (a script serving DCGM metrics on
the unit's address, with dcgm-exporter's flags) is killed: systemd starts it again; it hangs
(SIGSTOP, the process alive but /metrics silent): the check the timer runs restarts it.

Costs (2 shared cores): the image once (shared with test_systemd_units.py, cached by tag), then
~15 s, most of it the unit's RestartSec.
"""

from __future__ import annotations

import secrets
import textwrap
import time
from collections.abc import Iterator

import pytest

from tests.helpers.systemd_container import ROOT, SystemdContainer

pytestmark = pytest.mark.integration

UNITS = ROOT / "packaging" / "systemd"
NAMES = (
    "ds01-dcgm-exporter.service",
    "ds01-dcgm-exporter-check.service",
    "ds01-dcgm-exporter-check.timer",
)
STAND_IN = textwrap.dedent(
    """\
    #!/usr/bin/python3
    import argparse, http.server
    parser = argparse.ArgumentParser()
    parser.add_argument("-a", "--address", default=":9400")
    parser.add_argument("-f", "--collectors", required=True)
    parser.add_argument("--hpc-job-mapping-dir", required=True)
    parser.add_argument("--kubernetes", required=True)
    args = parser.parse_args()
    host, _, port = args.address.rpartition(":")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'DCGM_FI_DEV_GPU_TEMP{gpu="0"} 40\\n')

        def log_message(self, *a):
            pass

    http.server.HTTPServer((host, int(port)), Handler).serve_forever()
    """
)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemdContainer]:
    """A booted container with the three units, the stand-in, and /opt/ds01's Python (the
    probe the units run), the exporter and the timer enabled as docs/dashboards.md says."""
    staged = tmp_path_factory.mktemp("dcgm-systemd")
    (staged / "dcgm-exporter").write_text(STAND_IN)
    container = SystemdContainer(f"ds01-dcgm-test-{secrets.token_hex(3)}")
    container.start()
    try:
        container.sh("python3 -m venv --without-pip /opt/ds01")
        container.copy_in(staged / "dcgm-exporter", "/usr/bin/dcgm-exporter")
        container.sh("chmod 0755 /usr/bin/dcgm-exporter && install -d /etc/dcgm-exporter")
        container.sh("touch /etc/dcgm-exporter/default-counters.csv")
        for name in NAMES:
            container.copy_in(UNITS / name, f"/etc/systemd/system/{name}")
        container.sh(
            "systemctl daemon-reload && systemctl enable --now ds01-dcgm-exporter.service"
            " ds01-dcgm-exporter-check.timer"
        )
        yield container
    finally:
        container.stop()


def main_pid(host: SystemdContainer) -> int:
    return int(host.sh("systemctl show -p MainPID --value ds01-dcgm-exporter").strip())


def answers(host: SystemdContainer) -> bool:
    probe = (
        "/opt/ds01/bin/python -c 'import urllib.request; "
        'print(urllib.request.urlopen("http://127.0.0.1:9400/metrics", timeout=3).read().decode())\''
    )
    return "DCGM_FI_DEV_GPU_TEMP" in host.sh(f"{probe} || true", check=False)


def is_active(host: SystemdContainer) -> bool:
    """Started, not still "activating": the unit's ExecStartPost has seen /metrics answer."""
    state = host.sh("systemctl is-active ds01-dcgm-exporter || true", check=False).strip()
    return state == "active"


def wait_for_new_pid(host: SystemdContainer, old: int, timeout: float) -> int:
    """A new main process that answers, in a unit systemd counts as started (a test that acts
    on it earlier, during ExecStartPost, would race the unit's own start check)."""
    deadline = time.monotonic() + timeout
    while True:
        pid = main_pid(host)
        if pid not in (0, old) and answers(host) and is_active(host):
            return pid
        assert time.monotonic() < deadline, host.sh(
            "systemctl status --no-pager ds01-dcgm-exporter || true", check=False
        )
        time.sleep(0.5)


def test_started_means_answering(host: SystemdContainer) -> None:
    """``systemctl enable --now`` returned only after ExecStartPost saw /metrics answer."""
    assert host.sh("systemctl is-active ds01-dcgm-exporter").strip() == "active"
    assert answers(host)
    assert host.sh("systemctl is-active ds01-dcgm-exporter-check.timer").strip() == "active"
    args = host.sh(f"tr '\\0' ' ' < /proc/{main_pid(host)}/cmdline")
    assert "--hpc-job-mapping-dir /run/ds01/gpu-owners" in args and "--kubernetes=false" in args


def test_an_exporter_that_dies_is_started_again(host: SystemdContainer) -> None:
    old = main_pid(host)
    host.sh(f"kill -9 {old}")
    wait_for_new_pid(host, old, timeout=40)  # RestartSec=10s, then the start must answer


def test_an_exporter_that_hangs_is_restarted_by_the_check(host: SystemdContainer) -> None:
    wait_for_new_pid(host, 0, timeout=40)  # started (after the previous test's restart)
    old = main_pid(host)
    host.sh(f"kill -STOP {old}")
    assert not answers(host)
    # what the timer runs every minute, run now
    host.sh("systemctl start ds01-dcgm-exporter-check.service")
    wait_for_new_pid(host, old, timeout=40)
    assert "restarting it" in host.sh("journalctl -u ds01-dcgm-exporter-check --no-pager -o cat")
