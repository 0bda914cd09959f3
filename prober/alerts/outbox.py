"""The `notifications` table: events written with the incident change that caused them, then delivered.

Everything here runs in the store's writer thread (through an incident hook or `Store.call`): rows are
inserted inside the incident's own transaction, so an incident change and its notifications are
committed together or not at all, and a restart finds every notification not yet delivered.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from prober.claims.findings import incident_json  # what the official page said, for the message
from prober.config import Config
from prober.model import Incident, iso, parse_iso, utcnow
from prober.store.read import incident_from_row

PENDING, SENT, FAILED = "pending", "sent", "failed"
COLUMNS = ("id", "created_at", "channel", "event", "incident_id", "check_name", "state", "attempts",
           "next_attempt_at", "sent_at", "last_error", "incident")  # fmt: skip
_INSERT = f"INSERT INTO notifications ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
SEVERE = "major_outage"


def events_of(before: dict[str, Any] | None, incident: Incident) -> list[str]:
    """The events an incident change makes: open, escalate (partial to major outage), resolve."""
    events = []
    was_open = before is not None and before.get("resolved_at") is None
    if before is None:
        events.append("open")
    elif was_open and before.get("state") != SEVERE and incident.state == SEVERE:
        events.append("escalate")
    if incident.resolved_at is not None and (before is None or was_open):
        events.append("resolve")
    return events


def in_maintenance(incident: Incident | dict[str, Any]) -> bool:
    """Whether an incident (or an outbox row's incident JSON) opened in a maintenance window."""
    if isinstance(incident, dict):
        return bool(incident.get("maintenance"))
    return incident.maintenance


@dataclass(frozen=True, slots=True)
class Row:
    """One notification, as stored."""

    id: str
    created_at: str
    channel: str
    event: str
    incident_id: int | None
    check_name: str | None
    state: str
    attempts: int
    next_attempt_at: str
    sent_at: str | None
    last_error: str | None
    incident: str | None

    def incident_json(self) -> dict[str, Any]:
        """The incident as it was at the event."""
        return dict(json.loads(self.incident)) if self.incident else {}


def new_rows(
    db: sqlite_utils.Database,
    incident: dict[str, Any],
    channels: tuple[str, ...],
    events: list[str],
    now: datetime,
) -> int:
    """Insert one pending notification per channel and event; how many."""
    text = json.dumps(incident, sort_keys=True)
    rows = [
        (str(uuid.uuid4()), iso(now), channel, event, incident["id"], incident["check"], PENDING, 0, iso(now),
         None, None, text)
        for event in events for channel in channels
    ]  # fmt: skip
    db.conn.executemany(_INSERT, rows)
    return len(rows)


def make_hook(
    config: Callable[[], Config], wake: Callable[[], None]
) -> Callable[[sqlite_utils.Database, dict[str, Any] | None, Incident], None]:
    """The store's incident hook: the notifications of a change, in its transaction (see the module)."""

    def hook(db: sqlite_utils.Database, before: dict[str, Any] | None, incident: Incident) -> None:
        current = config()
        if current.alerts is None or in_maintenance(incident):
            return  # an outage in a maintenance window notifies no one
        try:
            channels = current.check(incident.check).alerts
        except KeyError:  # a check removed by a reload: nobody is listening for it any more
            return
        events = [e for e in events_of(before, incident) if e in current.alerts.send_on]
        channels = tuple(c for c in channels if c in current.alerts.channels)
        if (
            events
            and channels
            and new_rows(db, incident_json(db, incident, utcnow()), channels, events, utcnow())
        ):
            wake()

    return hook


def rows_of(cursor: Any) -> list[Row]:
    names = [d[0] for d in cursor.description]
    return [Row(**{k: v for k, v in zip(names, r, strict=True) if k in COLUMNS}) for r in cursor.fetchall()]


def due(db: sqlite_utils.Database, now: datetime, limit: int = 500) -> list[Row]:
    """Pending notifications whose next attempt is due, oldest first."""
    cursor = db.execute(
        "SELECT * FROM notifications WHERE state = ? AND next_attempt_at <= ? "
        "ORDER BY next_attempt_at, created_at LIMIT ?",
        [PENDING, iso(now), limit],
    )
    return rows_of(cursor)


def next_due(db: sqlite_utils.Database) -> str | None:
    """When the next pending notification is due (ISO), if any."""
    row = db.execute("SELECT min(next_attempt_at) FROM notifications WHERE state = ?", [PENDING]).fetchone()
    return None if row is None else row[0]


def listing(db: sqlite_utils.Database, state: str | None = None, limit: int = 200) -> list[Row]:
    """The newest notifications, of one state or all."""
    where, args = ("WHERE state = ?", [state]) if state else ("", [])
    cursor = db.execute(
        f"SELECT * FROM notifications {where} ORDER BY created_at DESC LIMIT ?", [*args, limit]
    )
    return rows_of(cursor)


def record(
    db: sqlite_utils.Database, row_id: str, *, state: str, at: datetime, error: str | None, retry_at: datetime
) -> None:
    """Record one delivery attempt's outcome."""
    with db.conn:
        db.conn.execute(
            "UPDATE notifications SET state = ?, attempts = attempts + 1, sent_at = ?, last_error = ?, "
            "next_attempt_at = ? WHERE id = ? AND state = ?",
            (state, iso(at) if state == SENT else None, error, iso(retry_at), row_id, PENDING),
        )


def remind(db: sqlite_utils.Database, config: Config, every: float, now: datetime) -> int:
    """Add a reminder for each channel of each open incident last notified `every` seconds ago or more."""
    since = iso(now - timedelta(seconds=every))
    cursor = db.execute(
        "SELECT i.*, n.channel AS notified_channel FROM incidents i JOIN ("
        "  SELECT incident_id, channel, max(created_at) AS last FROM notifications"
        "  WHERE event IN ('open', 'escalate', 'reminder') GROUP BY incident_id, channel"
        ") n ON n.incident_id = i.id WHERE i.resolved_at IS NULL AND n.last <= ?",
        [since],
    )
    names = [d[0] for d in cursor.description]
    added = 0
    with db.conn:
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            if in_maintenance(row):
                continue
            incident = incident_from_row(row)
            added += new_rows(
                db, incident_json(db, incident, now), (row["notified_channel"],), ["reminder"], now
            )
    return added


def prune(db: sqlite_utils.Database, before: datetime) -> int:
    """Delete delivered and failed notifications made before `before`; how many. Pending ones stay."""
    with db.conn:
        cursor = db.conn.execute(
            "DELETE FROM notifications WHERE state != ? AND created_at < ?", (PENDING, iso(before))
        )
    return int(cursor.rowcount)


def figures(db: sqlite_utils.Database, now: datetime) -> dict[str, Any]:
    """Counts by channel and state, the pending depth and the oldest pending notification's age."""
    counts = db.execute(
        "SELECT channel, state, count(*) FROM notifications GROUP BY channel, state"
    ).fetchall()
    oldest = db.execute("SELECT min(created_at) FROM notifications WHERE state = ?", [PENDING]).fetchone()[0]
    age = 0.0 if oldest is None else max(0.0, (now - parse_iso(oldest)).total_seconds())
    return {
        "by_channel": [{"channel": c, "state": s, "count": n} for c, s, n in counts],
        "pending": sum(n for _, s, n in counts if s == PENDING),
        "failed": sum(n for _, s, n in counts if s == FAILED),
        "oldest_pending_seconds": round(age, 3),
    }
