"""One result of a ``ds01 admin doctor`` check: the core's checks and the plugins' alike."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class Finding:
    """One check's result; ``fix`` says what to run when it is a problem."""

    check: str
    subject: str
    ok: bool
    message: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


#: the name plugins know it by (``ds01_core.api.DoctorFinding``)
DoctorFinding = Finding
