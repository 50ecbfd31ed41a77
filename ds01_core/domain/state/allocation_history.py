"""Allocations by id, released ones included: how a plugin follows each from start to release.

By primary key only (the ids asked for, and every id above one), so that following every
allocation costs no scan of a table that grows for years.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ds01_core.domain.model import Allocation
from ds01_core.domain.state.allocations import Allocations

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


def allocation_history(
    runtime: Runtime, ids: Iterable[int] = (), after: int | None = None
) -> list[Allocation]:
    """The allocations with one of ``ids`` or (when given) an id above ``after``, oldest
    first, released ones with their ``released_at``."""
    db = runtime.state.db
    wanted = sorted({int(i) for i in ids})
    clauses: list[str] = []
    args: list[Any] = []
    if wanted:
        clauses.append(f"id IN ({','.join('?' * len(wanted))})")
        args += wanted
    if after is not None:
        clauses.append("id > ?")
        args.append(int(after))
    if not clauses:
        return []
    query = f"SELECT * FROM allocations WHERE {' OR '.join(clauses)} ORDER BY id"
    return Allocations._rows_to_allocations(db, db.execute(query, tuple(args)))
