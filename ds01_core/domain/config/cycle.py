"""The ``cycle:`` configuration section: the order of the daemon's cycle steps, and those turned off.

Only the shape is checked here (two lists of names). Whether the names exist and whether the
order keeps every step after the steps it needs is decided where the steps are known, once
the plugins have been loaded (:func:`ds01_core.cycle.steps.arrange`); those problems are
reported like every other configuration error, by their path (``cycle.order[2]: …``).
"""

from __future__ import annotations

import attrs


@attrs.define
class CycleConfig:
    """``cycle.order``: steps to run in this order (a step not named runs right after the last
    of the steps that come before it by default); ``cycle.disabled``: steps that do not run."""

    order: list[str] = attrs.Factory(list)
    disabled: list[str] = attrs.Factory(list)
