"""The cycle step ``mlflow-gpu-metrics``: ds01d tags the running MLflow runs of wired containers
and logs their GPUs' utilisation and memory to them, with nothing in the image.

Each full cycle, for every running container wired to the server (its ``ds01.mlflow.experiment``
label, :mod:`ds01_mlflow.wiring`), as MLflow's admin account:

1. the experiment's RUNNING runs (one search per experiment);
2. each run is attributed to a container: the one its ``ds01.container`` tag names (a tag the
   user set counts), else the experiment's only wired running container when the run started
   after that container did; otherwise (two containers logging to one experiment, a run from
   the host) it is left alone — no metrics are better than another container's;
3. a run not yet tagged gets ``ds01.user``, ``ds01.container`` and ``ds01.gpu.slots``; every
   attributed run gets, in the same request, ``ds01.gpu.utilization`` (percent, the mean of its
   slots), ``ds01.gpu.memory_used`` and ``ds01.gpu.memory_total`` (bytes, summed), and per slot
   ``ds01.gpu.<slot>.utilization`` / ``.memory_used`` when it has several; the step is the
   seconds since the run started.

A container's metrics go only to experiments its owner may write (``EDIT``/``MANAGE``): naming
someone else's experiment in ``MLFLOW_EXPERIMENT_NAME`` does not put one's GPU readings (or
tags) into their runs. The readings are the cycle's own (``report.gpus``, read once by the
``gpu-health`` step, MIG utilisation from the ``idle`` step): no extra GPU read. Cost: one
search per experiment, one ``log-batch`` per attributed run, and lookups remembered for ten
minutes. ``plugins.mlflow.gpu_metrics: false`` turns it off; a server that is down costs
one warning per cycle, nothing else.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ds01_core.api import CycleStep, Event, Gpu, Workload
from ds01_mlflow.client import MlflowClient, MlflowError, MlflowUnavailable, Run
from ds01_mlflow.provision import ProvisionError, admin_client, mlflow_config
from ds01_mlflow.wiring import EXPERIMENT_LABEL, set_up

if TYPE_CHECKING:
    from ds01_core.api import CycleContext

log = logging.getLogger(__name__)

NAME = "mlflow-gpu-metrics"
MEMO = "mlflow-run-metrics"
SLACK_MS = 5_000  # a run "started after the container" allows this much clock difference
WRITERS = ("EDIT", "MANAGE")
FORGET_MS = 10 * 60 * 1000  # how long looked-up experiment ids and permissions are kept

TAG_USER, TAG_CONTAINER, TAG_SLOTS = "ds01.user", "ds01.container", "ds01.gpu.slots"


def wired(workloads: Iterable[Workload]) -> dict[str, list[Workload]]:
    """The running wired containers, by experiment name."""
    found: dict[str, list[Workload]] = defaultdict(list)
    for w in workloads:
        experiment = w.labels.get(EXPERIMENT_LABEL)
        if w.kind == "container" and w.status == "running" and experiment:
            found[experiment].append(w)
    return found


def slot_readings(gpus: Sequence[Gpu]) -> dict[str, tuple[str, float | None, int, int]]:
    """Slot uuid → (slot id, utilisation %, memory used, memory total) as the cycle read them."""
    readings = {}
    for gpu in gpus:
        for slot in gpu.slots:
            util = slot.utilization
            if util is None and not gpu.mig_enabled:
                util = gpu.utilization
            used = slot.memory_used if slot.kind == "mig" else gpu.memory_used
            total = slot.memory_total if slot.kind == "mig" else gpu.memory_total
            readings[slot.uuid] = (slot.slot_id, util, int(used), int(total))
    return readings


def metrics_of(
    workload: Workload, readings: Mapping[str, tuple[str, float | None, int, int]]
) -> tuple[dict[str, float], list[str]]:
    """The container's GPU metrics, and its slot ids."""
    mine = [readings[u] for u in workload.gpu_slots if u in readings]
    if not mine:
        return {}, []
    utils = [r[1] for r in mine if r[1] is not None]
    metrics: dict[str, float] = {
        "ds01.gpu.memory_used": float(sum(r[2] for r in mine)),
        "ds01.gpu.memory_total": float(sum(r[3] for r in mine)),
    }
    if utils:
        metrics["ds01.gpu.utilization"] = float(sum(utils) / len(utils))
    if len(mine) > 1:
        for slot_id, util, used, _total in mine:
            if util is not None:
                metrics[f"ds01.gpu.{slot_id}.utilization"] = float(util)
            metrics[f"ds01.gpu.{slot_id}.memory_used"] = float(used)
    return metrics, [r[0] for r in mine]


def attribute(run: Run, containers: Sequence[Workload]) -> Workload | None:
    """The container a run belongs to, or None when that is not certain."""
    named = run.tags.get(TAG_CONTAINER, "").strip()
    if named:
        for w in containers:
            if named in (w.name, w.id) or (len(named) >= 12 and w.id.startswith(named)):
                return w
        return None
    if len(containers) != 1:
        return None
    only = containers[0]
    started = only.started_at or only.created_at
    if started is None:
        return None
    return only if run.start_time >= started.timestamp() * 1000 - SLACK_MS else None


def run(ctx: CycleContext) -> list[Event]:
    """The step: tag and measure every attributable running run."""
    runtime = ctx.runtime
    config = mlflow_config(runtime)
    groups = wired(ctx.workloads)
    if not config.gpu_metrics or not groups or not set_up(config):
        return []
    gpus = list(ctx.report.gpus)
    if not gpus:
        try:
            gpus = list(runtime.gpu.gpus())
        except Exception as exc:  # no readings this cycle: tags still go on
            log.debug("mlflow-gpu-metrics: no GPU readings: %s", exc)
    readings = slot_readings(gpus)
    memo: dict[str, Any] = runtime.memo(MEMO, dict)
    now_ms = int(ctx.now.timestamp() * 1000)
    if now_ms - memo.get("since", 0) > FORGET_MS:  # ids and permissions are looked up again
        memo.clear()
        memo["since"] = now_ms
    try:
        with admin_client(config) as admin:
            for experiment, containers in groups.items():
                _experiment(admin, memo, experiment, containers, readings, now_ms)
    except MlflowUnavailable as exc:
        log.warning("mlflow-gpu-metrics: %s", exc)
    except ProvisionError as exc:
        log.warning("mlflow-gpu-metrics: %s", exc)
    return []


def _experiment(
    admin: MlflowClient,
    memo: dict[str, Any],
    name: str,
    containers: list[Workload],
    readings: Mapping[str, tuple[str, float | None, int, int]],
    now_ms: int,
) -> None:
    ids: dict[str, str] = memo.setdefault("ids", {})
    experiment_id = ids.get(name)
    if experiment_id is None:
        found = admin.get_experiment_by_name(name)
        if found is None:
            return
        experiment_id = ids[name] = found.experiment_id
    writers = [w for w in containers if _may_write(admin, memo, w.owner, experiment_id)]
    if not writers:
        return
    try:
        runs = admin.search_runs([experiment_id], "attributes.status = 'RUNNING'")
    except MlflowError as exc:
        if exc.code == "RESOURCE_DOES_NOT_EXIST":
            ids.pop(name, None)
            return
        raise
    for found_run in runs:
        container = attribute(found_run, writers)
        if container is None:
            continue
        metrics, slots = metrics_of(container, readings)
        tags = {}
        if TAG_USER not in found_run.tags:
            tags[TAG_USER] = container.owner
        if TAG_CONTAINER not in found_run.tags:
            tags[TAG_CONTAINER] = container.name
        if TAG_SLOTS not in found_run.tags:
            tags[TAG_SLOTS] = ",".join(slots)
        if not metrics and not tags:
            continue
        step = max(0, (now_ms - found_run.start_time) // 1000)
        try:
            admin.log_batch(found_run.run_id, metrics, tags, step=step, timestamp_ms=now_ms)
        except MlflowUnavailable:
            raise
        except MlflowError as exc:  # the run ended or was deleted meanwhile: the next one
            log.debug("mlflow-gpu-metrics: run %s: %s", found_run.run_id, exc)


def _may_write(admin: MlflowClient, memo: dict[str, Any], user: str, experiment_id: str) -> bool:
    known: dict[tuple[str, str], bool] = memo.setdefault("writers", {})
    key = (user, experiment_id)
    if key not in known:
        known[key] = admin.permission(user, experiment_id) in WRITERS
    return known[key]


STEP = CycleStep(
    name=NAME,
    run=run,
    description="tag the running MLflow runs of wired containers and log their GPU metrics",
    needs=("detect",),
)

__all__ = ["STEP", "attribute", "metrics_of", "run"]
