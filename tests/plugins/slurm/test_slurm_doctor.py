"""The generated Slurm configuration on a real Slurm, and ``ds01 admin doctor``'s Slurm checks.

A real slurmctld and slurmd (tests/helpers/slurm.py; fake GPUs as character devices, MIG cap
devices included) run the gres.conf and node Gres= that ds01 generates for the simulated host
of gen_fixture, whose GPU types and device files disagree on the order: jobs asking for a type
get the GRES index of ds01's GPU of that type, and the doctor passes on it and names what is
wrong when gres.conf lists another order or count. The allocation check runs on real Docker
containers. Without Slurm installed the Slurm tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ds01_core.domain.state.allocations import Allocations
from ds01_core.framework.runtime import Runtime
from ds01_slurm.doctor import doctor_checks, gres_conf_records, gres_counts
from ds01_slurm.generate import Generated, HostFacts, generate
from ds01_slurm.generate_ops import slurm_config
from tests.helpers.slurm import (
    SETUP_HINT,
    SlurmCluster,
    SlurmNode,
    missing_tools,
    running_slurm,
)
from tests.plugins.slurm.gen_fixture import A100, CAP_DEVICES, H100, MIG, NODE, slurm_runtime

SLURMCTLD_PORT = 6817


def by_check(findings: list[Any]) -> dict[str, Any]:
    found = {f.check: f for f in findings}
    assert all(f.subject == f"slurm node {NODE}" for f in findings), findings
    return found


# -- parsing, no Slurm needed ------------------------------------------------------------------


def test_gres_counts_read_slurms_node_gres_and_gres_used():
    assert gres_counts(f"gpu:{A100}:2(S:0-1),gpu:{MIG}:2") == {A100: 2, MIG: 2}
    assert gres_counts(f"gpu:{A100}:1(IDX:0),gpu:{MIG}:2(IDX:2-3)") == {A100: 1, MIG: 2}
    assert gres_counts("gpu:4,mps:200") == {None: 4}
    assert gres_counts("(null)") == {}


def test_gres_conf_records_expand_ranges_and_keep_only_this_nodes_gpus():
    text = (
        "AutoDetect=off\n"
        "NodeName=ds01gen,other Name=gpu Type=a File=/dev/nvidia[1-2]  # two\n"
        "NodeName=other Name=gpu File=/dev/nvidia9\n"
        "Name=mps Count=100\n"
        "NodeName=ds01g[1-2],ds01gen Name=gpu Type=m MultipleFiles=/dev/nvidia0,/dev/c[1-2]\n"
    )
    records, autodetect = gres_conf_records(text, NODE)
    assert records == [("/dev/nvidia1",), ("/dev/nvidia2",), ("/dev/nvidia0", "/dev/c1", "/dev/c2")]
    assert not autodetect
    assert gres_conf_records("AutoDetect=nvml\n", NODE) == ([], True)
    with pytest.raises(ValueError, match=r"File=/dev/nvidia\[a-b\]"):
        gres_conf_records("Name=gpu File=/dev/nvidia[a-b]\n", NODE)


def test_without_slurm_the_doctor_says_so_and_still_checks_the_rest(tmp_path):
    rt = slurm_runtime(
        tmp_path,
        {"plugins": {"slurm": {"bin_dir": str(tmp_path), "slurm_conf": str(tmp_path / "x.conf")}}},
    )
    try:
        found = by_check(doctor_checks(rt))
    finally:
        rt.close()
    controller = found["slurm controller"]
    assert not controller.ok and "scontrol is not installed" in controller.message
    assert controller.fix and "slurmctld" in controller.fix
    assert "slurm node" not in found  # nothing to ask when Slurm does not answer
    assert not found["slurm gres.conf"].ok
    assert f"cannot read {tmp_path}/gres.conf" in found["slurm gres.conf"].message
    assert found["slurm gpus outside jobs"].ok


# -- GPUs ds01 gave outside Slurm (real Docker) --------------------------------------------------


def test_a_gpu_slurm_schedules_held_by_a_container_outside_a_job_is_a_problem(
    tmp_path, container_factory
):
    rt = slurm_runtime(
        tmp_path,
        {
            "plugins": {"slurm": {"gpus": [0, 2]}},
            "limits": {"defaults": {"max_gpu_equivalents": 4}},
        },
    )
    try:
        slots = {s.slot_id: s.uuid for g in rt.gpu.gpus() for s in g.slots}
        job = container_factory({"Labels": {"ds01.slurm.job": "41"}})
        plain = container_factory()
        allocations = Allocations(rt)
        allocations.reserve("ds01ta", job.id, job.name, [slots["0"]])
        allocations.reserve("ds01tb", plain.id, plain.name, [slots["1"]])  # not Slurm's
        assert by_check(doctor_checks(rt))["slurm gpus outside jobs"].ok
        allocations.reserve("ds01tb", plain.id, plain.name, [slots["2.1"]])  # Slurm's
        finding = by_check(doctor_checks(rt))["slurm gpus outside jobs"]
    finally:
        rt.close()
    assert not finding.ok
    assert f"ds01tb's {plain.name} holds 2.1" in finding.message
    assert "ds01ta" not in finding.message
    assert finding.fix and "ds01 container remove" in finding.fix


# -- a real Slurm on the generated configuration -------------------------------------------------


def wait_for_free_port(port: int, timeout: float = 300) -> None:
    """Only one Slurm runs on a machine at a time: wait for another test run's to stop."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return
        if time.monotonic() > deadline:
            pytest.fail(f"port {port} stayed busy for {timeout:g}s: another Slurm runs here")
        time.sleep(2)


@pytest.fixture(scope="module")
def slurm_dir() -> Iterator[Path]:
    missing = missing_tools()
    if missing:
        reason = f"Slurm unavailable (missing: {', '.join(missing)})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: the Slurm tests must not be skipped)", pytrace=False)
        pytest.skip(f"{reason}; {SETUP_HINT}")
    path = Path(tempfile.mkdtemp(prefix="ds01-slurmgen-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def make_runtime(slurm_dir: Path) -> Iterator[Callable[..., Runtime]]:
    """Runtimes whose ``plugins.slurm`` points at the cluster in ``slurm_dir``."""
    made: list[Runtime] = []

    def make(**slurm: Any) -> Runtime:
        section = {
            "device_dir": str(slurm_dir / "dev"),
            "slurm_conf": str(slurm_dir / "slurm.conf"),
            **slurm,
        }
        made.append(slurm_runtime(slurm_dir / f"ds01-{len(made)}", {"plugins": {"slurm": section}}))
        return made[-1]

    yield make
    for runtime in made:
        runtime.close()


@pytest.fixture(scope="module")
def generated(make_runtime: Callable[..., Runtime]) -> Generated:
    runtime = make_runtime()
    return generate(runtime, slurm_config(runtime), host=HostFacts(4, 1000))


#: the fragment's lines this machine can run: not slurmdbd's (none here), not the cgroup
#: plugins' (the harness tracks with linuxproc), not those the harness sets itself
HARNESS_OWN = ("AccountingStorage", "ProctrackType", "TaskPlugin", "JobAcctGather", "Select")


def runnable_fragment(generated: Generated) -> str:
    return "\n".join(
        line
        for line in generated.slurm_conf.splitlines()
        if line and not line.startswith(("#", "NodeName=", "GresTypes=", *HARNESS_OWN))
    )


@pytest.fixture(scope="module")
def cluster(slurm_dir: Path, generated: Generated) -> Iterator[SlurmCluster]:
    """Slurm on exactly what ds01 generated: its gres.conf, its node Gres= and the fragment's
    priority and privacy lines (slurmctld refuses to start on a line it cannot read)."""
    wait_for_free_port(SLURMCTLD_PORT)
    with running_slurm(
        slurm_dir,
        [SlurmNode(NODE, gpus=3, cpus=8)],
        gres_conf=generated.gres_conf,
        node_gres={NODE: generated.node_gres},
        devices=CAP_DEVICES,
        extra_conf=runnable_fragment(generated),
    ) as running:
        yield running


@pytest.fixture
def gres_conf(cluster: SlurmCluster, generated: Generated) -> Iterator[Path]:
    """The cluster's gres.conf, put back as generated after the test."""
    path = cluster.conf.parent / "gres.conf"
    yield path
    path.write_text(generated.gres_conf)


def test_slurm_runs_the_fragments_priority_and_privacy_settings(cluster, generated):
    assert "PrivateData=jobs,usage" in runnable_fragment(generated)
    shown = {
        key.strip().lower(): value.strip()
        for key, sep, value in (
            line.partition("=")
            for line in cluster.run("scontrol", "show", "config").stdout.splitlines()
        )
        if sep
    }
    assert shown["privatedata"] == "jobs,usage"
    assert shown["prioritytype"] == "priority/multifactor"
    assert shown["priorityweightfairshare"] == "10000"
    assert shown["prioritydecayhalflife"].startswith("7-00:00:00")


def test_slurmd_reads_the_records_in_ds01s_order(cluster, generated):
    """``slurmd -G`` lists the GRES as slurmd loaded them: ds01's order, not sorted by file."""
    done = subprocess.run(
        ["slurmd", "-G", "-N", NODE],
        env={**os.environ, **cluster.env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    files = [
        line.split(" File=", 1)[1].rsplit(" ", 1)[0]
        for line in (done.stdout + done.stderr).splitlines()
        if " File=" in line
    ]
    assert files == [",".join(r["files"]) for r in generated.records]
    assert Path(files[0]).name == "nvidia1"  # GPU 0 is /dev/nvidia1: order kept, not sorted


def test_a_job_asking_for_a_type_gets_the_index_of_ds01s_gpu_of_that_type(cluster, generated):
    want = {A100: {0}, H100: {1}, MIG: {2, 3}}
    jobs = {
        gres_type: [
            cluster.submit(f"--gres=gpu:{gres_type}:1", "-o", "/dev/null", "--wrap", "sleep 60")
            for _ in want[gres_type]
        ]
        for gres_type in (H100, A100, MIG)  # the H100 first: it must still get index 1
    }
    try:
        for gres_type, ids in jobs.items():
            got: set[int] = set()
            for job_id in ids:
                cluster.wait_state(job_id, {"RUNNING"})
                [detail] = cluster.job(job_id).gres
                assert detail.node == NODE and detail.gres.startswith(f"gpu:{gres_type}:1(")
                got.update(detail.idx)
            assert got == want[gres_type]
            # the index is ds01's GPU of that type, MIG instances included
            assert {generated.records[i]["type"] for i in got} == {gres_type}
    finally:
        cluster.run("scancel", *(i for ids in jobs.values() for i in ids), check=False)


def test_doctor_passes_on_the_generated_configuration(cluster, make_runtime):
    found = by_check(doctor_checks(make_runtime()))
    assert set(found) == {
        "slurm controller",
        "slurm node",
        "slurm gres",
        "slurm gres.conf",
        "slurm gpus outside jobs",
    }
    assert all(f.ok for f in found.values()), [f for f in found.values() if not f.ok]
    assert f"gpu:{A100}:1" in found["slurm gres"].message


def test_doctor_finds_gres_conf_listing_the_gpus_in_another_order(cluster, make_runtime, gres_conf):
    lines = gres_conf.read_text().splitlines()
    first, second = [i for i, line in enumerate(lines) if line.startswith("NodeName=")][:2]
    lines[first], lines[second] = lines[second], lines[first]
    gres_conf.write_text("\n".join(lines) + "\n")
    finding = by_check(doctor_checks(make_runtime()))["slurm gres.conf"]
    assert not finding.ok
    assert f"has GRES 0 as {cluster.dev_dir}/nvidia0" in finding.message
    assert f"Type={A100} File={cluster.dev_dir}/nvidia1" in finding.message
    assert finding.fix and "ds01 admin slurm config" in finding.fix


def test_doctor_finds_gres_conf_with_another_count_and_autodetect(cluster, make_runtime, gres_conf):
    text = gres_conf.read_text()
    last = [line for line in text.splitlines() if line.startswith("NodeName=")][-1]
    gres_conf.write_text(text.replace(last + "\n", ""))
    finding = by_check(doctor_checks(make_runtime()))["slurm gres.conf"]
    assert not finding.ok and f"lists 3 GPU record(s) for {NODE}, ds01 has 4" in finding.message
    gres_conf.write_text(text.replace("AutoDetect=off", "AutoDetect=nvml"))
    finding = by_check(doctor_checks(make_runtime()))["slurm gres.conf"]
    assert not finding.ok and "AutoDetect" in finding.message


def test_doctor_finds_slurms_gres_differing_from_ds01s(cluster, make_runtime):
    """ds01 gives Slurm GPUs 0 and 2 now; Slurm still schedules all four records."""
    found = by_check(doctor_checks(make_runtime(gpus=[0, 2])))
    gres = found["slurm gres"]
    assert not gres.ok
    assert f"Slurm has Gres=gpu:{MIG}:2,gpu:{A100}:1,gpu:{H100}:1 on {NODE}" in gres.message
    assert f"ds01 has gpu:{MIG}:2,gpu:{A100}:1 for Slurm there" in gres.message
    assert gres.fix and "restart slurmd" in gres.fix
    assert not found["slurm gres.conf"].ok


def test_doctor_finds_a_node_slurm_does_not_know(cluster, make_runtime):
    found = by_check_any(doctor_checks(make_runtime(node_name="ds01nosuch")))
    assert found["slurm controller"].ok
    node = found["slurm node"]
    assert not node.ok and "Slurm does not know node ds01nosuch" in node.message
    assert node.fix and "NodeName=ds01nosuch Gres=" in node.fix
    assert node.subject == "slurm node ds01nosuch"


def by_check_any(findings: list[Any]) -> dict[str, Any]:
    return {f.check: f for f in findings}


def test_a_server_that_lends_no_gpu_to_slurm_has_nothing_to_check(tmp_path):
    """A login node, or a server with the plugin installed and Slurm unused: one pass."""
    rt = slurm_runtime(tmp_path, {"plugins": {"slurm": {"gpus": []}}})
    try:
        found = doctor_checks(rt)
    finally:
        rt.close()
    assert [(f.check, f.ok) for f in found] == [("slurm gpus", True)]
    assert "lends none to Slurm" in found[0].message
