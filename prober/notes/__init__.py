"""Incident notes: what operators say of an incident, beside what prober measured.

A note has a Statuspage status (investigating, identified, monitoring, resolved) and a text; it is a
row of `incident_notes`, written by `prober incident note` (another process than the daemon: the
busy timeout waits for the daemon's writer). Notes never change the measured incident: an incident
resolves when its probes recover, whatever a note says.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from prober.model import Incident, ProberError, iso, parse_iso

STATUSES = ("investigating", "identified", "monitoring", "resolved")
MAX_BODY = 5000  # characters: a note is a paragraph, not a post-mortem
IN_CLAUSE_CHUNK = 500  # ids per query (SQLite's limit on parameters is far above)


class NoteError(ProberError):
    """A note that cannot be added: no such incident, an unknown status, an empty text."""


@dataclass(frozen=True, slots=True)
class Note:
    """One operator's note on an incident."""

    id: int
    incident_id: int
    created_at: datetime
    status: str
    body: str

    def to_json(self) -> dict[str, Any]:
        """The note as JSON."""
        return {
            "id": self.id,
            "incident_id": self.incident_id,
            "created_at": iso(self.created_at),
            "status": self.status,
            "body": self.body,
        }


def add_note(db: sqlite_utils.Database, incident_id: int, status: str, body: str, now: datetime) -> Note:
    """Store a note on the incident `incident_id`; NoteError if it cannot be (blocking)."""
    if status not in STATUSES:
        raise NoteError(f'status "{status}" is not one of {", ".join(STATUSES)}')
    text = body.strip()
    if not text:
        raise NoteError("the note's text is empty")
    if len(text) > MAX_BODY:
        raise NoteError(f"the note's text is {len(text)} characters long; at most {MAX_BODY} are kept")
    if not db.execute("SELECT 1 FROM incidents WHERE id = ?", [incident_id]).fetchone():
        raise NoteError(f"no incident {incident_id} (see `prober incident list`)")
    with db.conn:
        cursor = db.execute(
            "INSERT INTO incident_notes (incident_id, created_at, status, body) VALUES (?, ?, ?, ?)",
            [incident_id, iso(now), status, text],
        )
    return Note(int(cursor.lastrowid or 0), incident_id, parse_iso(iso(now)), status, text)


def notes_of(db: sqlite_utils.Database, incident_ids: Iterable[int | None]) -> dict[int, list[Note]]:
    """Incident id -> its notes, oldest first (blocking); none for a database without the table."""
    ids = sorted({i for i in incident_ids if i is not None})
    if not ids or not db.table("incident_notes").exists():
        return {}
    out: dict[int, list[Note]] = {}
    for start in range(0, len(ids), IN_CLAUSE_CHUNK):
        chunk = ids[start : start + IN_CLAUSE_CHUNK]
        sql = (
            "SELECT id, incident_id, created_at, status, body FROM incident_notes "
            f"WHERE incident_id IN ({', '.join('?' * len(chunk))}) ORDER BY created_at, id"
        )
        for row in db.execute(sql, chunk).fetchall():
            note = Note(row[0], row[1], parse_iso(row[2]), row[3], row[4])
            out.setdefault(note.incident_id, []).append(note)
    return out


def incident_status(incident: Incident, notes: Sequence[Note]) -> str:
    """The Statuspage status of an incident: resolved once measured so; else the newest note's status,
    "resolved" read as "monitoring" (the probes have not confirmed the recovery yet)."""
    if incident.resolved_at is not None:
        return "resolved"
    if not notes:
        return "investigating"
    return "monitoring" if notes[-1].status == "resolved" else notes[-1].status
