"""An incident's measured timeline: started, detected, each region's down results beginning and
ending, resolved; beside the operators' notes on the page.

Regions come from the raw results of the incident's window: a region is down from its first down
result (from any of its vantages) until each of its vantages has a good result again. Results older
than the retention are gone: an old incident's timeline then has its start, detection and end only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from prober.model import Incident, iso, parse_iso
from prober.notes import Note, notes_of

MAX_ROWS = 20_000  # results read per incident: a long outage is summed up by its first hours
MAX_REGION_EVENTS = 20


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the timeline."""

    at: datetime
    kind: str  # started, detected, region_down, region_up, note, resolved
    text: str
    status: str | None = None  # a note's status


def region_events(db: sqlite_utils.Database, incident: Incident, now: datetime) -> list[Event]:
    """When each region's down results began and ended during `incident` (blocking)."""
    end = incident.resolved_at or now
    sql = (
        "SELECT ts, vantage, region, verdict FROM results WHERE check_name = ? AND ts >= ? AND ts <= ? "
        "ORDER BY ts LIMIT ?"
    )
    rows = db.execute(sql, [incident.check, iso(incident.started_at), iso(end), MAX_ROWS]).fetchall()
    down: dict[str, set[str]] = {}  # region -> its vantages whose last judged result was down
    events: list[Event] = []
    for ts, vantage, region, verdict in rows:
        if verdict == "unknown":
            continue  # says nothing either way
        region = region or vantage
        vantages = down.setdefault(region, set())
        was_down = bool(vantages)
        if verdict == "down":
            vantages.add(vantage)
        else:
            vantages.discard(vantage)
        if bool(vantages) != was_down:
            text = f"{region}: down results began" if vantages else f"{region}: good results again"
            events.append(Event(parse_iso(ts), "region_down" if vantages else "region_up", text))
    if len(events) > MAX_REGION_EVENTS:
        hidden = len(events) - MAX_REGION_EVENTS
        events = events[:MAX_REGION_EVENTS]
        events.append(Event(events[-1].at, "more", f"{hidden} more region changes"))
    return events


def timeline(
    db: sqlite_utils.Database, incident: Incident, notes: Sequence[Note], now: datetime
) -> list[Event]:
    """The incident's measured events and the operators' notes, oldest first (blocking)."""
    events = [
        Event(incident.started_at, "started", "First down result"),
        Event(incident.detected_at, "detected", "Outage confirmed: incident opened"),
        *region_events(db, incident, now),
        *(Event(n.created_at, "note", n.body, n.status) for n in notes),
    ]
    if incident.resolved_at is not None:
        events.append(Event(incident.resolved_at, "resolved", "Recovered: incident resolved"))
    order = {"started": 0, "region_down": 1, "detected": 2}
    return sorted(events, key=lambda e: (e.at, order.get(e.kind, 3)))


def timelines(
    db: sqlite_utils.Database, incidents: Sequence[Incident], now: datetime
) -> dict[int, list[Event]]:
    """Incident id -> its timeline, for each of `incidents` saved with an id (blocking)."""
    saved = [i for i in incidents if i.id is not None]
    notes = notes_of(db, (i.id for i in saved))
    return {i.id: timeline(db, i, notes.get(i.id, []), now) for i in saved if i.id is not None}
