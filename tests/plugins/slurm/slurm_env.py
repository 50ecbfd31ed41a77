"""A real Slurm with fake GPUs, and ds01 serving it: the ds01 half of the Slurm plugin's tests.

:func:`slurm_site` starts, in a directory every user can reach: a webhook server that records
notices, Slurm (munged, slurmctld, slurmd) whose gres.conf and node ``Gres=`` are what ds01's
own GRES order says (:func:`ds01_slurm.gres.slurm_gpus`), then ``ds01-gateway`` and
``ds01-api`` over a configuration whose simulated host has the same GPUs. Users run ``ds01``
through :func:`ds01_as`; the jobs they submit run ``ds01 job run`` on the slurmd, which reaches
the same ``ds01-api`` (its socket is in the job's environment, exported by ``sbatch``).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import attrs
import yaml

from ds01_core.framework.runtime import Runtime, load_runtime
from tests.helpers.config import deep_merge, write_config
from tests.helpers.gateway import running_gateway
from tests.helpers.servers import running_api
from tests.helpers.slurm import SlurmCluster, SlurmNode, ds01_gres, host_name, running_slurm
from tests.helpers.user_cli import run_as
from tests.plugins.notify.notify_servers import WebhookServer

TEST_IMAGE = "ds01-test:busybox"


def topology(gpus: int, utilization: int = 50) -> dict[str, Any]:
    """A simulated host of ``gpus`` whole A100s, each at ``utilization`` percent."""
    return {
        "name": "slurm-node",
        "default_model": "NVIDIA A100-SXM4-80GB",
        "models": {
            "NVIDIA A100-SXM4-80GB": {
                "memory": "81920MiB",
                "profiles": {"1g.10gb": {"id": 0, "slices": 1, "memory": "9728MiB"}},
            }
        },
        "gpus": [{"utilization": utilization} for _ in range(gpus)],
    }


@attrs.frozen
class Site:
    """A running Slurm and the ds01 that serves its node."""

    directory: Path
    config: Path
    slurm: SlurmCluster
    api_socket: str
    gateway_socket: str
    webhook: WebhookServer
    node: str

    @property
    def events_file(self) -> Path:
        return self.directory / "log" / "events.jsonl"

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        lines = self.events_file.read_text().splitlines() if self.events_file.exists() else []
        found = [json.loads(line) for line in lines]
        return [e for e in found if kind is None or e["event_type"] == kind]

    def runtime(self) -> Runtime:
        return load_runtime(str(self.config))

    def notices(self, user: str) -> list[dict[str, Any]]:
        return [p.body for p in self.webhook.posts if p.body.get("user") == user]


def ds01_config(
    directory: Path,
    cluster: SlurmCluster | None,
    node: str,
    gpus: int,
    webhook: WebhookServer,
    extra: Mapping[str, Any] | None = None,
    utilization: int = 50,
) -> Path:
    topo = directory / "topology.yaml"
    topo.write_text(yaml.safe_dump(topology(gpus, utilization)))
    slurm: dict[str, Any] = {"node_name": node, "gpus": list(range(gpus)), "stop_grace": "1s"}
    if cluster is not None:
        slurm |= {"slurm_conf": str(cluster.conf), "device_dir": str(cluster.dev_dir)}
    base = {
        "gpu": {"backend": "simulated", "simulated": {"topology": str(topo)}},
        "limits": {"defaults": {"max_gpu_equivalents": 2, "max_containers_per_user": 8}},
        "plugins": {
            "slurm": slurm,
            "notify": {
                "channels": {"webhooks": [{"name": "test", "url": webhook.url()}]},
                "rate_limit": {"max": 0},
            },
        },
    }
    return write_config(directory, deep_merge(base, extra or {}))


def remove_job_containers(site_events: Path | None = None) -> None:
    """Job ids start at 1 in every test cluster: no stopped container of an earlier one may
    remain; on the way out, this site's own (those its events name), running or not. Other
    tests' running job containers are left alone."""
    from ds01_core.api import DockerAdapter

    ours: set[str] = set()
    if site_events is not None and site_events.exists():
        for line in site_events.read_text().splitlines():
            event = json.loads(line)
            if event["event_type"] == "container.created_by_ds01":
                ours.add(event["details"]["container_id"])
    with DockerAdapter.from_env() as docker:
        for found in docker.list_containers(all=True, filters={"label": ["ds01.slurm.job"]}):
            if found["Id"] in ours or found.get("State") != "running":
                docker.remove(found["Id"], force=True)


@contextmanager
def slurm_site(
    gpus: int = 2, extra: Mapping[str, Any] | None = None, utilization: int = 50
) -> Iterator[Site]:
    directory = Path(tempfile.mkdtemp(prefix="ds01-slurm-"))
    directory.chmod(0o755)
    node = host_name()
    remove_job_containers()
    try:
        with ExitStack() as stack:
            stack.callback(remove_job_containers, directory / "log" / "events.jsonl")
            webhook = WebhookServer()
            stack.callback(webhook.close)
            # first a configuration without Slurm, to read the GPUs' order and device files
            (directory / "slurm").mkdir()
            (directory / "slurm").chmod(0o755)
            dev = directory / "slurm" / "dev"
            probe = ds01_config(
                directory,
                None,
                node,
                gpus,
                webhook,
                {"plugins": {"slurm": {"device_dir": str(dev)}}},
            )
            gres_conf, node_gres = ds01_gres(probe)
            cluster = stack.enter_context(
                running_slurm(
                    directory / "slurm",
                    [SlurmNode(node, gpus)],
                    gres_conf=gres_conf,
                    node_gres={node: node_gres},
                )
            )
            config = ds01_config(directory, cluster, node, gpus, webhook, extra, utilization)
            gateway = stack.enter_context(running_gateway(config))
            data = yaml.safe_load(config.read_text())
            data.setdefault("gateway", {})["socket"] = gateway
            config.write_text(yaml.safe_dump(data, sort_keys=False))
            api = stack.enter_context(running_api(config))
            yield Site(directory, config, cluster, api, gateway, webhook, node)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def ds01_as(
    user: Any,
    cli_root: Path,
    site: Site,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Any:
    """``ds01 ARGS`` as ``user``, through the site's ``ds01-api``."""
    return run_as(
        user,
        cli_root,
        args,
        env={"DS01_API_SOCKET": site.api_socket, **(env or {})},
        timeout=timeout,
    )


def submitted(result: Any) -> str:
    """The job id ``ds01 job submit`` printed (it must have succeeded)."""
    assert result.returncode == 0, result.stderr + result.stdout
    match = re.search(r"Submitted job (\d+)", result.stdout)
    assert match, result.stdout
    return match.group(1)


def submit(site: Site, user: Any, cli_root: Path, *args: str, **kw: Any) -> str:
    """``ds01 job submit ARGS`` as ``user``; the job id."""
    return submitted(ds01_as(user, cli_root, site, "job", "submit", *args, **kw))


def running_job(site: Site, user: Any, cli_root: Path, *args: str) -> str:
    """A job submitted with ``args``, once Slurm runs it and its container is running."""
    job = submit(site, user, cli_root, *args)
    site.slurm.wait_state(job, {"RUNNING"}, timeout=30)
    wait_for(
        f"job {job}'s container to run",
        lambda: [c for c in job_containers(site.runtime(), job) if c["State"] == "running"],
    )
    return job


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    """Poll ``check`` until it answers something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def job_containers(runtime: Runtime, job: str | None = None) -> Sequence[dict[str, Any]]:
    label = "ds01.slurm.job" if job is None else f"ds01.slurm.job={job}"
    return runtime.docker.list_containers(all=True, filters={"label": [label]})
