"""Two Slurm nodes, each served by its own ds01: a job's GPUs are recorded on the node it ran on.

One host runs the whole cluster: slurmctld, the host's own slurmd (2 fake GPUs) and a second
``slurmd -N node2`` (1 fake GPU), and a ds01 per node — its own configuration, state, logs and
simulated topology (2 GPUs vs 1), ``plugins.slurm.node_name`` its node, its own ``ds01-gateway``
and ``ds01-api``. gres.conf holds both nodes' lines in each ds01's own GRES order. A job's
script reaches "the local ds01-api" through ``DS01_API_SOCKET`` in the submitter's environment
(``sbatch`` exports it to the job), as each node's own socket would on a real cluster.

This cluster uses its own ports (7817/7818/7828) and job ids (from FIRST_JOB, so that its job
containers, ``slurm-job-<id>`` on the shared Docker engine, never meet another test cluster's),
so it can run beside the default test cluster.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.gateway import running_gateway
from tests.helpers.servers import running_api
from tests.helpers.slurm import SlurmNode, ds01_gres, host_name, running_slurm
from tests.plugins.notify.notify_servers import WebhookServer
from tests.plugins.slurm.slurm_env import (
    TEST_IMAGE,
    Site,
    ds01_as,
    ds01_config,
    job_containers,
    submit,
    wait_for,
)

pytestmark = pytest.mark.integration

#: slurmctld, the host's slurmd, node2's slurmd
PORTS = (7817, 7818, 7828)
NODE2 = "node2"
FIRST_JOB = 70001
LAST_JOB = 79999


def remove_our_job_containers() -> None:
    """This cluster's job containers (by job id), none of another cluster's."""
    from ds01_core.api import DockerAdapter

    with DockerAdapter.from_env() as docker:
        for found in docker.list_containers(all=True, filters={"label": ["ds01.slurm.job"]}):
            job = (found.get("Labels") or {}).get("ds01.slurm.job", "")
            if job.isdigit() and FIRST_JOB <= int(job) <= LAST_JOB:
                docker.remove(found["Id"], force=True)


@contextmanager
def two_node_sites() -> Iterator[tuple[Site, Site]]:
    """The host's ds01 (2 GPUs) and node2's (1 GPU), over one two-node Slurm."""
    directory = Path(tempfile.mkdtemp(prefix="ds01-slurm2-"))
    directory.chmod(0o755)
    nodes = {host_name(): 2, NODE2: 1}
    remove_our_job_containers()
    try:
        with ExitStack() as stack:
            stack.callback(remove_our_job_containers)
            webhook = WebhookServer()
            stack.callback(webhook.close)
            (directory / "slurm").mkdir(mode=0o755)
            dev = directory / "slurm" / "dev"
            gres_lines, node_gres = ["AutoDetect=off"], {}
            for node, gpus in nodes.items():
                (directory / node).mkdir(mode=0o755)
                probe = ds01_config(
                    directory / node,
                    None,
                    node,
                    gpus,
                    webhook,
                    {"plugins": {"slurm": {"device_dir": str(dev)}}},
                )
                text, node_gres[node] = ds01_gres(probe)
                gres_lines += [line for line in text.splitlines() if line != "AutoDetect=off"]
            cluster = stack.enter_context(
                running_slurm(
                    directory / "slurm",
                    [SlurmNode(node, gpus) for node, gpus in nodes.items()],
                    gres_conf="\n".join(gres_lines) + "\n",
                    node_gres=node_gres,
                    extra_conf=f"FirstJobId={FIRST_JOB}\nMaxJobId={LAST_JOB}\n",
                    ctld_port=PORTS[0],
                    slurmd_port=PORTS[1],
                    extra_port=PORTS[2],
                )
            )
            sites = []
            for node, gpus in nodes.items():
                config = ds01_config(directory / node, cluster, node, gpus, webhook)
                gateway = stack.enter_context(running_gateway(config))
                data = yaml.safe_load(config.read_text())
                data.setdefault("gateway", {})["socket"] = gateway
                config.write_text(yaml.safe_dump(data, sort_keys=False))
                api = stack.enter_context(running_api(config))
                sites.append(Site(directory / node, config, cluster, api, gateway, webhook, node))
            yield sites[0], sites[1]
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def sites(
    docker_engine: Any, test_image: str, unix_users: Any, user_cli: Path
) -> Iterator[tuple[Site, Site]]:
    with two_node_sites() as running:
        yield running


def submit_to_node2(
    alice: Any, user_cli: Path, host: Site, api_socket: str, name: str, *cmd: str
) -> str:
    """``ds01 job submit --nodelist node2`` by alice, the job's ds01-api being ``api_socket``."""
    return submit(
        host,
        alice,
        user_cli,
        "--image",
        TEST_IMAGE,
        "--gpus",
        "1",
        "--time",
        "10m",
        "--name",
        name,
        "--nodelist",
        NODE2,
        "--",
        *cmd,
        env={"DS01_API_SOCKET": api_socket},
    )


def test_both_nodes_are_up_with_their_own_gpus(sites: tuple[Site, Site]) -> None:
    host, node2 = sites
    out = host.slurm.run("sinfo", "-h", "-N", "-o", "%N %G %T").stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert rows[host.node] == ["gpu:a100-sxm4-80gb:2", "idle"], out
    assert rows[NODE2] == ["gpu:a100-sxm4-80gb:1", "idle"], out
    assert host.node != node2.node and host.api_socket != node2.api_socket


def test_a_job_on_node2_is_recorded_by_node2s_ds01(
    sites: tuple[Site, Site], unix_users: Any, user_cli: Path
) -> None:
    host, node2 = sites
    alice = unix_users["ds01ta"]
    job = submit_to_node2(alice, user_cli, host, node2.api_socket, "far", "sh", "-c", "echo hi")
    state = host.slurm.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=60)
    log = Path(alice.home) / ".ds01" / "jobs" / f"far-{job}.log"
    assert state == "COMPLETED", log.read_text() if log.exists() else host.slurm.log_tail()
    assert host.slurm.job(job)["NodeList"] == NODE2
    [started] = [e for e in node2.events("slurm.job.started") if e["details"]["job"] == job]
    assert started["user"] == "ds01ta" and started["details"]["node"] == NODE2
    assert len(started["details"]["slots"]) == 1
    name = f"slurm-job-{job}"
    allocated = [e for e in node2.events("gpu.allocated") if e["details"]["container"] == name]
    assert len(allocated) == 1
    assert "hi" in log.read_text()
    # the host's ds01 saw nothing of it
    assert not [e for e in host.events("slurm.job.started") if e["details"]["job"] == job]
    assert not [e for e in host.events("gpu.allocated") if e["details"]["container"] == name]


def test_a_running_job_holds_node2s_gpu_not_the_hosts(
    sites: tuple[Site, Site], unix_users: Any, user_cli: Path
) -> None:
    from ds01_core.api import live_allocations

    host, node2 = sites
    alice = unix_users["ds01ta"]
    job = submit_to_node2(alice, user_cli, host, node2.api_socket, "stay", "sleep", "300")
    host.slurm.wait_state(job, {"RUNNING"}, timeout=30)
    [container] = wait_for("the job's container", lambda: job_containers(node2.runtime(), job))
    assert container["Labels"]["ds01.slurm.node"] == NODE2

    def held(site: Site) -> list[list[str]]:
        runtime = site.runtime()
        try:
            return [a.slot_uuids for a in live_allocations(runtime) if a.user == "ds01ta"]
        finally:
            runtime.close()

    assert len(held(node2)) == 1 and held(host) == []
    cancelled = ds01_as(
        alice, user_cli, host, "job", "cancel", job, env={"DS01_API_SOCKET": node2.api_socket}
    )
    assert cancelled.returncode == 0, cancelled.stderr
    assert not job_containers(node2.runtime(), job)
    assert held(node2) == []


def test_a_job_on_node2_pointed_at_the_hosts_api_is_refused(
    sites: tuple[Site, Site], unix_users: Any, user_cli: Path
) -> None:
    host, node2 = sites
    alice = unix_users["ds01ta"]
    job = submit_to_node2(alice, user_cli, host, host.api_socket, "astray", "echo", "never")
    state = host.slurm.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=60)
    log = Path(alice.home) / ".ds01" / "jobs" / f"astray-{job}.log"
    text = log.read_text() if log.exists() else ""
    assert state == "FAILED", text or host.slurm.log_tail()
    assert f"job {job} runs on {NODE2}, not on this server ({host.node})" in text, text
    assert "Traceback" not in text and "never" not in text.splitlines()  # it never ran
    for site in (host, node2):
        assert not [e for e in site.events("slurm.job.started") if e["details"]["job"] == job]
    assert not job_containers(host.runtime(), job)
