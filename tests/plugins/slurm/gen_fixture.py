"""A simulated GPU host for the Slurm configuration tests: two whole GPUs of different models
whose device minors are swapped (GPU 0, an A100, is /dev/nvidia1; GPU 1, an H100, is
/dev/nvidia0) and an A100 in MIG mode with two 3g.40gb instances, the driver's MIG minors for
them, and a runtime with the ``plugins.slurm`` section. Types and device files disagree on
the order on purpose: a Slurm that sorted gres.conf by file would give the H100 index 0.

The plugin enters the runtime as a small stand-in that declares its section and its admin
operation (``make_plugin_host(extra=…)``), so these tests need neither ``ds01-slurm`` installed
in the test environment nor the plugin's own hook module; ``PYTHONPATH=plugins/slurm`` makes
``ds01_slurm`` importable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ds01_core.api import hookimpl
from ds01_core.domain.config import build_config
from ds01_core.framework.manager import make_plugin_host
from ds01_core.framework.runtime import Runtime
from ds01_slurm.config import SlurmConfig
from ds01_slurm.generate_ops import OPERATIONS
from tests.helpers.config import deep_merge, write_config

TOPOLOGY: dict[str, Any] = {
    "name": "slurm-test",
    "default_model": "NVIDIA A100-SXM4-80GB",
    "models": {
        "NVIDIA A100-SXM4-80GB": {
            "memory": "81920MiB",
            "profiles": {
                "3g.40gb": {"id": 2, "slices": 3, "memory": "40192MiB"},
                "7g.80gb": {"id": 4, "slices": 7, "memory": "80896MiB"},
            },
        },
        "NVIDIA H100 80GB HBM3": {"memory": "81559MiB"},
    },
    "gpus": [
        {"minor_number": 1, "utilization": 0},
        {"minor_number": 0, "utilization": 0, "model": "NVIDIA H100 80GB HBM3"},
        {
            "minor_number": 2,
            "mig": [{"profile": "3g.40gb", "gi": 1}, {"profile": "3g.40gb", "gi": 2}],
        },
    ],
}
#: the driver's minors for GPU 2's instances (what /proc/driver/nvidia-caps/mig-minors says)
MIG_MINORS = {
    "gpu2/gi1/access": 21,
    "gpu2/gi1/ci0/access": 22,
    "gpu2/gi2/access": 30,
    "gpu2/gi2/ci0/access": 31,
}
#: the cap devices those minors name, relative to the device directory
CAP_DEVICES = [f"nvidia-caps/nvidia-cap{m}" for m in sorted(MIG_MINORS.values())]
NODE = "ds01gen"
A100, H100, MIG = "a100-sxm4-80gb", "h100_80gb_hbm3", "3g.40gb"
#: the node's GRES as ds01 generates it
NODE_GRES = f"gpu:{A100}:1,gpu:{H100}:1,gpu:{MIG}:2"


class SlurmStandIn:
    """The slurm plugin's section and admin operation, registered by the tests."""

    @hookimpl
    def plugin_config_sections(self) -> Mapping[str, type]:
        return {"slurm": SlurmConfig}

    @hookimpl
    def service_operations(self) -> Sequence[Any]:
        return OPERATIONS


def write_host(directory: Path, topology: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The topology and MIG minors files under ``directory``; the config that points at them."""
    topo = directory / "topology.yaml"
    topo.write_text(yaml.safe_dump(dict(topology or TOPOLOGY), sort_keys=False))
    minors = directory / "mig-minors"
    minors.write_text("".join(f"{name} {minor}\n" for name, minor in MIG_MINORS.items()))
    return {
        "gpu": {"simulated": {"topology": str(topo)}},
        "plugins": {
            "slurm": {"node_name": NODE, "gpus": [0, 1, 2], "mig_minors_file": str(minors)}
        },
    }


def slurm_runtime(directory: Path, extra: Mapping[str, Any] | None = None) -> Runtime:
    """A runtime on the test host (no detectors: nothing looks at Docker); ``extra`` over it."""
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory, deep_merge(write_host(directory), extra or {}))
    host = make_plugin_host(
        extra=[("slurm", SlurmStandIn())],
        disabled=["docker-detector", "gpu-process-detector"],
        load_entry_points=False,
    )
    data = yaml.safe_load(config.read_text())
    return Runtime(build_config(data, sections=host.config_sections(), source=str(config)), host)
