"""The label_migrations table: the ``ds01.*`` labels each legacy container stands for.

Per legacy container: the ``ds01.*`` labels its ``aime.mlc.*`` labels stand for, and what it
was recreated as.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping

from ds01_core.domain.labels import LEGACY_PREFIX, legacy_mapping
from ds01_core.domain.model import utc_text


def record(
    db: sqlite3.Connection,
    container_id: str,
    name: str,
    labels: Mapping[str, str],
    now: dt.datetime,
) -> bool:
    """Record a legacy container's mapping once; True if it was new."""
    legacy = {k: v for k, v in labels.items() if k.startswith(LEGACY_PREFIX)}
    cursor = db.execute(
        "INSERT OR IGNORE INTO label_migrations (container_id, container_name, legacy, mapped, "
        "recorded_at) VALUES (?, ?, ?, ?, ?)",
        (
            container_id,
            name,
            json.dumps(legacy, sort_keys=True),
            json.dumps(legacy_mapping(labels), sort_keys=True),
            utc_text(now),
        ),
    )
    return cursor.rowcount > 0


def recorded(db: sqlite3.Connection) -> dict[str, dict[str, str]]:
    """container id → recorded ``ds01.*`` mapping."""
    return {
        row[0]: json.loads(row[1])
        for row in db.execute("SELECT container_id, mapped FROM label_migrations")
    }


def mark_recreated(db: sqlite3.Connection, old_id: str, new_id: str) -> None:
    db.execute(
        "UPDATE label_migrations SET recreated_as = ? WHERE container_id = ?", (new_id, old_id)
    )
