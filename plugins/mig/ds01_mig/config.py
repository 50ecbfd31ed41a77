"""The ``plugins.mig:`` section of the ds01 configuration file."""

from __future__ import annotations

from typing import Literal

import attrs

Strategy = Literal["pack", "spread"]
Prefer = Literal["mig", "full"]


@attrs.define
class MigConfig:
    """How the MIG allocator places requests; every field has a default (the section may be absent).

    ``strategy``: ``pack`` fills GPUs that are already in use first, keeping whole GPUs idle for
    big jobs; ``spread`` puts each request on the least used GPU, so jobs share less.
    ``prefer``: for a plain ``--gpus N`` request, ``mig`` gives the smallest MIG slices first and
    whole GPUs only when needed; ``full`` gives whole GPUs first.
    """

    strategy: Strategy = "pack"
    prefer: Prefer = "mig"
