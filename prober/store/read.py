"""Queries over the database: results and incidents back as model values."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlite_utils

from prober.model import Incident, ProbeResult, Reason, State, iso, parse_iso


def incident_from_row(row: Mapping[str, Any]) -> Incident:
    """An Incident from an `incidents` row."""
    return Incident(
        id=row["id"],
        check=row["check_name"],
        state=State(row["state"]),
        reason=Reason(row["reason"]) if row["reason"] else None,
        signature=row["signature"],
        started_at=parse_iso(row["started_at"]),
        detected_at=parse_iso(row["detected_at"]),
        resolved_at=parse_iso(row["resolved_at"]) if row["resolved_at"] else None,
        vantages=tuple(json.loads(row["vantages"] or "[]")),
        regions=tuple(json.loads(row["regions"] or "[]")),
    )


def _rows(db: sqlite_utils.Database, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    cursor = db.execute(sql, tuple(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def open_incidents(db: sqlite_utils.Database) -> list[Incident]:
    """Incidents not yet resolved."""
    return [incident_from_row(r) for r in _rows(db, "SELECT * FROM incidents WHERE resolved_at IS NULL")]


def incidents(
    db: sqlite_utils.Database,
    since: datetime | None = None,
    until: datetime | None = None,
    check: str | None = None,
) -> list[Incident]:
    """Incidents overlapping [since, until), oldest first."""
    where, params = ["1 = 1"], []
    if since is not None:
        where.append("(resolved_at IS NULL OR resolved_at >= ?)")
        params.append(iso(since))
    if until is not None:
        where.append("started_at < ?")
        params.append(iso(until))
    if check is not None:
        where.append("check_name = ?")
        params.append(check)
    sql = f"SELECT * FROM incidents WHERE {' AND '.join(where)} ORDER BY started_at, id"
    return [incident_from_row(r) for r in _rows(db, sql, params)]


def recent_results(db: sqlite_utils.Database, since: datetime, per_vantage: int) -> list[ProbeResult]:
    """The last `per_vantage` results of each check and vantage since `since`, oldest first."""
    sql = """
        SELECT * FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY check_name, vantage ORDER BY ts DESC) AS rn
            FROM results WHERE ts >= ?
        ) WHERE rn <= ? ORDER BY ts, id
    """
    return [ProbeResult.from_row(r) for r in _rows(db, sql, (iso(since), per_vantage))]


def results(
    db: sqlite_utils.Database,
    check: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    vantage: str | None = None,
    limit: int | None = None,
) -> list[ProbeResult]:
    """Raw results in time order, filtered."""
    where, params = ["1 = 1"], []
    for column, value in (("check_name", check), ("vantage", vantage)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("ts >= ?")
        params.append(iso(since))
    if until is not None:
        where.append("ts < ?")
        params.append(iso(until))
    sql = f"SELECT * FROM results WHERE {' AND '.join(where)} ORDER BY ts, id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [ProbeResult.from_row(r) for r in _rows(db, sql, params)]
