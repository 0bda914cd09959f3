"""Incidents in SQLite: one row each, written by the store's writer thread or rebuilt in one transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from prober.model import Incident, iso

INCIDENT_COLUMNS = ("check_name", "state", "reason", "signature", "started_at", "detected_at",
                    "resolved_at", "vantages", "regions", "maintenance")  # fmt: skip


def incident_row(incident: Incident) -> dict[str, Any]:
    """The `incidents` row of an incident, without its id."""
    return {
        "check_name": incident.check,
        "state": str(incident.state),
        "reason": None if incident.reason is None else str(incident.reason),
        "signature": incident.signature,
        "started_at": iso(incident.started_at),
        "detected_at": iso(incident.detected_at),
        "resolved_at": None if incident.resolved_at is None else iso(incident.resolved_at),
        "vantages": json.dumps(list(incident.vantages)),
        "regions": json.dumps(list(incident.regions)),
        "maintenance": int(incident.maintenance),
    }


def write_incident(db: sqlite_utils.Database, incident: Incident) -> int:
    """Insert an incident (id None) or update it in place, in a transaction of its own; returns its id."""
    with db.conn:
        return put_incident(db, incident)


def put_incident(db: sqlite_utils.Database, incident: Incident) -> int:
    """Insert or update an incident inside the caller's transaction; returns its id."""
    row = incident_row(incident)
    if incident.id is None:
        cursor = db.conn.execute(
            f"INSERT INTO incidents ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
        return int(cursor.lastrowid or 0)
    db.conn.execute(
        f"UPDATE incidents SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ?",
        (*row.values(), incident.id),
    )
    return incident.id


def stored_incident(db: sqlite_utils.Database, incident_id: int | None) -> dict[str, Any] | None:
    """The `incidents` row of an id as stored now (None if there is none), for incident hooks."""
    if incident_id is None:
        return None
    cursor = db.conn.execute("SELECT * FROM incidents WHERE id = ?", (incident_id,))
    found = cursor.fetchone()
    return None if found is None else dict(zip([d[0] for d in cursor.description], found, strict=True))


def replace_incidents(
    db: sqlite_utils.Database, checks: Iterable[str], rebuilt: Iterable[Incident]
) -> dict[str, int]:
    """Replace the incidents of `checks` by `rebuilt`, in one transaction; counts of what changed.

    An incident rebuilt with the same check and start as a stored one keeps the stored id, so links to
    it stay valid. Incidents of other checks are left alone. Returns {"kept_ids", "new", "removed"}.
    """
    names = sorted(set(checks))
    marks = ", ".join("?" * len(names))
    columns = ("id", *INCIDENT_COLUMNS)
    insert = f"INSERT INTO incidents ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    with db.conn:  # one transaction: readers see the old incidents or the new ones, never a mix
        old = db.execute(
            f"SELECT check_name, started_at, id FROM incidents WHERE check_name IN ({marks})", names
        )
        ids = {(check, started): incident_id for check, started, incident_id in old.fetchall()}
        db.conn.execute(f"DELETE FROM incidents WHERE check_name IN ({marks})", names)
        kept: list[tuple[Any, ...]] = []
        new: list[tuple[Any, ...]] = []
        for incident in rebuilt:
            row = incident_row(incident)
            incident_id = ids.pop((row["check_name"], row["started_at"]), None)
            (new if incident_id is None else kept).append((incident_id, *row.values()))
        # Kept ids first: a fresh id never takes one that is still in use.
        db.conn.executemany(insert, kept)
        db.conn.executemany(insert, new)
    return {"kept_ids": len(kept), "new": len(new), "removed": len(ids)}
