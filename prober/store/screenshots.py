"""Browser checks' screenshots: written beside their result, read by id, pruned with the results."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

import sqlite_utils

from prober.model import Incident, ProbeResult, iso

if TYPE_CHECKING:
    from collections.abc import Iterable

_INSERT = "INSERT INTO screenshots (ts, check_name, vantage, verdict, png) VALUES (?, ?, ?, ?, ?)"


def save_screenshot(db: sqlite_utils.Database, result: ProbeResult) -> ProbeResult:
    """Insert the result's PNG (in the caller's transaction); the result naming it, without the bytes."""
    assert result.screenshot is not None
    cursor = db.conn.execute(_INSERT, (iso(result.ts), result.check, result.vantage, str(result.verdict),
                                       result.screenshot))  # fmt: skip
    return replace(result, screenshot=None, screenshot_id=cursor.lastrowid)


def screenshot_png(db: sqlite_utils.Database, ident: int) -> tuple[str, bytes] | None:
    """The check and PNG of screenshot `ident`, or None if there is no such row (pruned, never taken)."""
    row = db.execute("SELECT check_name, png FROM screenshots WHERE id = ?", (ident,)).fetchone()
    return None if row is None else (row[0], bytes(row[1]))


def incident_screenshots(
    db: sqlite_utils.Database, incidents: Iterable[Incident], now: datetime
) -> dict[int, int]:
    """Incident id -> the last screenshot of a failure taken during it (what users saw), if any."""
    found: dict[int, int] = {}
    if not db.table("screenshots").exists():  # an older database served as it is (`prober serve`)
        return found
    sql = """SELECT id FROM screenshots WHERE check_name = ? AND ts >= ? AND ts <= ?
        AND verdict IN ('down', 'degraded') ORDER BY ts DESC LIMIT 1"""
    for incident in incidents:
        if incident.id is None:
            continue
        end = incident.resolved_at or now
        row = db.execute(sql, (incident.check, iso(incident.started_at), iso(end))).fetchone()
        if row is not None:
            found[incident.id] = int(row[0])
    return found
