"""ds01-mig: the MIG-aware GPU allocator.

Answers ``allocate_gpu`` for every request (it never passes), so the built-in whole-GPU
allocator, which is ``trylast``, only decides when this plugin is disabled. The decision itself
is :func:`ds01_mig.decide.decide`, a pure function; the hook only reads the configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_core.api import (
    Allocation,
    AllocationDecision,
    EffectiveLimits,
    GpuRequest,
    GpuSlot,
    hookimpl,
)
from ds01_mig.config import MigConfig
from ds01_mig.decide import decide
from ds01_mig.quota import fmt_ge

if TYPE_CHECKING:
    from ds01_core.api import Runtime

__all__ = ["MigConfig", "allocate_gpu", "decide", "fmt_ge", "plugin_config_sections"]
__version__ = "0.1.0"

SECTION = "mig"


@hookimpl
def plugin_config_sections() -> Mapping[str, type]:
    """``plugins.mig:`` is validated against :class:`MigConfig`."""
    return {SECTION: MigConfig}


@hookimpl
def allocate_gpu(
    runtime: Runtime | None,
    request: GpuRequest,
    free_slots: Sequence[GpuSlot],
    all_slots: Sequence[GpuSlot],
    held: Sequence[Allocation],
    limits: EffectiveLimits,
) -> AllocationDecision:
    """Decide with this runtime's ``plugins.mig`` section and enforcement mode.

    The section is None when the configuration was loaded before this plugin was registered;
    the defaults apply then.
    """
    config = runtime.plugin_config(SECTION) if runtime is not None else None
    mode = runtime.config.enforcement.mode if runtime is not None else "hard"
    return decide(
        request,
        free_slots,
        all_slots,
        held,
        limits,
        config=config if isinstance(config, MigConfig) else None,
        mode=mode,
    )
