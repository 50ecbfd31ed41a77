"""``ds01 admin doctor`` on NVIDIA's dcgm-exporter, against a real process on a real port: a
stand-in ``dcgm-exporter`` (a script of that name, so /proc shows it as dcgm-exporter does)
serving DCGM metrics over HTTP with dcgm-exporter's flags. The doctor reads its settings from
the running process, or from the installed unit when none runs; a host with neither is fine."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ds01_core.framework.runtime import load_runtime
from ds01_core.services.doctor import HostPaths
from ds01_core.services.doctor.dcgm import check_dcgm_exporter

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_UNIT = ROOT / "packaging" / "systemd" / "ds01-dcgm-exporter.service"

# dcgm-exporter's flags that matter here; the body is what a real one starts with
STAND_IN = textwrap.dedent(
    """\
    #!{python}
    import argparse, http.server
    parser = argparse.ArgumentParser()
    parser.add_argument("-a", "--address", default=":9400")
    parser.add_argument("-f", "--collectors")
    parser.add_argument("--hpc-job-mapping-dir")
    parser.add_argument("--kubernetes")
    parser.add_argument("--body", default="DCGM_FI_DEV_GPU_TEMP{{gpu=\\"0\\"}} 40\\n")
    args = parser.parse_args()
    host, _, port = args.address.rpartition(":")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(args.body.encode())

        def log_message(self, *a):
            pass

    http.server.HTTPServer((host or "127.0.0.1", int(port)), Handler).serve_forever()
    """
)


def free_port() -> int:
    """A free loopback port in this worker's range (195xx)."""
    for port in range(19500, 19600):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 19500-19599")


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start the stand-in with these arguments; yields ``start(*args) -> address``."""
    program = tmp_path / "bin" / "dcgm-exporter"
    program.parent.mkdir()
    program.write_text(STAND_IN.format(python=sys.executable))
    program.chmod(0o755)
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> str:
        address = f"127.0.0.1:{free_port()}"
        started.append(subprocess.Popen([str(program), "-a", address, *args]))
        deadline = time.monotonic() + 15
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", int(address.rsplit(":", 1)[1]))) == 0:
                    return address
            assert started[-1].poll() is None, "the stand-in exited"
            assert time.monotonic() < deadline, "the stand-in never listened"
            time.sleep(0.05)

    yield start
    for process in started:
        process.kill()
        process.wait()


@pytest.fixture
def owner_map(tmp_config: Callable[..., Path]) -> tuple[Path, Path]:
    """A configuration with its own owner map directory; (config, owner_map_dir)."""
    config = tmp_config()
    return config, config.parent / "run" / "gpu-owners"


def findings(config: Path, host: HostPaths) -> list[tuple[bool, str]]:
    return [(f.ok, f.message) for f in check_dcgm_exporter(load_runtime(str(config)), host)]


def test_a_host_without_dcgm_exporter_is_not_a_problem(owner_map, tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    host = HostPaths(proc_dir=str(tmp_path / "proc"), dcgm_units=(str(tmp_path / "none"),))
    ((ok, message),) = findings(owner_map[0], host)
    assert ok and message.startswith("not installed")


def test_a_running_exporter_mapping_ds01s_owner_map_passes(owner_map, exporter) -> None:
    config, owners = owner_map
    address = exporter("--kubernetes=false", "--hpc-job-mapping-dir", str(owners))
    host = HostPaths(dcgm_units=())
    assert findings(config, host) == [
        (True, f"answers on http://{address}/metrics"),
        (True, f"job mapping from ds01's owner map {owners}"),
    ]


def test_a_running_exporter_mapping_another_directory_is_a_problem(
    owner_map, exporter, tmp_path: Path
) -> None:
    config, owners = owner_map
    exporter(f"--hpc-job-mapping-dir={tmp_path / 'elsewhere'}")
    (answers, mapping) = findings(config, HostPaths(dcgm_units=()))
    assert answers[0]
    assert not mapping[0]
    assert str(tmp_path / "elsewhere") in mapping[1] and str(owners) in mapping[1]


def test_a_running_exporter_without_job_mapping_is_a_problem(owner_map, exporter) -> None:
    exporter()
    (_, (ok, message)) = findings(owner_map[0], HostPaths(dcgm_units=()))
    assert not ok and "no job-mapping directory" in message


def test_something_else_on_the_port_is_not_taken_for_dcgm_exporter(owner_map, exporter) -> None:
    config, owners = owner_map
    exporter("--hpc-job-mapping-dir", str(owners), "--body", "# just some other server\n")
    ((ok, message), _) = findings(config, HostPaths(dcgm_units=()))
    assert not ok and "no DCGM_FI_ metric" in message


def test_an_installed_unit_that_does_not_answer_is_a_problem(owner_map, tmp_path: Path) -> None:
    """No process: the shipped unit's settings are read (its ${VAR}s expanded, a drop-in
    applied); nothing listens on its address, and a drop-in moved the mapping elsewhere."""
    config, owners = owner_map
    (tmp_path / "proc").mkdir()
    unit = tmp_path / "ds01-dcgm-exporter.service"
    port = free_port()
    unit.write_text(SHIPPED_UNIT.read_text().replace("127.0.0.1:9400", f"127.0.0.1:{port}"))
    host = HostPaths(proc_dir=str(tmp_path / "proc"), dcgm_units=(str(unit),))
    (answers, mapping) = findings(config, host)
    assert not answers[0] and f"127.0.0.1:{port}/metrics" in answers[1]
    # the shipped unit maps ds01's default owner map; this configuration has its own
    assert not mapping[0] and "/run/ds01/gpu-owners" in mapping[1]
    dropin = Path(f"{unit}.d")
    dropin.mkdir()
    (dropin / "owners.conf").write_text(
        f"[Service]\nEnvironment=DCGM_HPC_JOB_MAPPING_DIR={owners}\n"
    )
    assert findings(config, host)[1] == (True, f"job mapping from ds01's owner map {owners}")


def test_the_doctor_command_reports_the_exporter(owner_map, exporter, monkeypatch) -> None:
    """Through ``run_doctor`` (what ``ds01 admin doctor`` calls): the check is registered."""
    from ds01_core.services import doctor

    config, owners = owner_map
    address = exporter("--hpc-job-mapping-dir", str(owners))
    runtime = load_runtime(str(config))
    found = [f for f in doctor.run_doctor(runtime) if f.check == "dcgm-exporter"]
    assert [f.message for f in found] == [
        f"answers on http://{address}/metrics",
        f"job mapping from ds01's owner map {owners}",
    ]
