"""Queries over the database: results and incidents back as model values."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import sqlite_utils

from prober.model import Incident, Phases, ProbeResult, Reason, State, Surface, Verdict, iso, parse_iso

LATEST_COLUMNS: tuple[str, ...] = (
    "check_name", "vantage", "first_ts", "ts", "region", "surface", "url", "verdict", "reason", "signature",
    "status", "latency_ms", "dns_ms", "connect_ms", "tls_ms", "ttfb_ms", "bytes", "cert_days", "error",
    "screenshot_id",
)  # fmt: skip  # the columns of `latest_results` (prober.store.rollup)


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
        maintenance=bool(row.get("maintenance")),
    )


def _rows(db: sqlite_utils.Database, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    cursor = db.execute(sql, tuple(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _result_filter(
    check: str | None = None,
    vantage: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[str], list[Any]]:
    """The WHERE terms and parameters selecting results of a check, a vantage, in [since, until)."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
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
    return where, params


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
    where, params = _result_filter(check, vantage, since, until)
    sql = f"SELECT * FROM results WHERE {' AND '.join(where)} ORDER BY ts, id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [ProbeResult.from_row(r) for r in _rows(db, sql, params)]


def results_page(
    db: sqlite_utils.Database,
    check: str,
    since: datetime | None = None,
    until: datetime | None = None,
    vantage: str | None = None,
    limit: int = 100,
    after: tuple[str, int] | None = None,
) -> list[tuple[int, ProbeResult]]:
    """Up to `limit` results of `check` in (ts, id) order after the cursor `after`, with their ids."""
    where, params = _result_filter(check, vantage, since, until)
    if after is not None:
        where.append("ts >= ? AND (ts > ? OR id > ?)")  # the first term lets the index seek
        params.extend([after[0], after[0], after[1]])
    sql = f"SELECT * FROM results WHERE {' AND '.join(where)} ORDER BY ts, id LIMIT ?"
    return [(r["id"], ProbeResult.from_row(r)) for r in _rows(db, sql, [*params, int(limit)])]


# -- report: availability, history, incident rebuild ------------------------------------------------------


def verdict_counts(
    db: sqlite_utils.Database,
    since: datetime | None = None,
    until: datetime | None = None,
    check: str | None = None,
    exclude: Iterable[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Results in [since, until) counted by verdict, per check, surface, region and vantage.

    Results inside the spans of `exclude` (maintenance windows: starts_at, ends_at, checks or None
    for every check) are left out.

    Each row: check_name, surface, region, vantage, up, degraded, down, unknown. Every availability
    figure of `prober report` comes from here, so this is the one function to switch to the rollup
    tables for long windows (whole hours or days from the rollups, raw results for the ragged edges).
    """
    where, params = _result_filter(check, None, since, until)
    for span in exclude:
        term = "NOT (ts >= ? AND ts < ?"
        params += [iso(span["starts_at"]), iso(span["ends_at"])]
        if span["checks"] is not None:
            term += f" AND check_name IN ({', '.join('?' * len(span['checks']))})"
            params += list(span["checks"])
        where.append(term + ")")
    sql = f"""
        SELECT check_name, surface, region, vantage,
               SUM(verdict = 'up') AS up, SUM(verdict = 'degraded') AS degraded,
               SUM(verdict = 'down') AS down, SUM(verdict = 'unknown') AS unknown
        FROM results WHERE {" AND ".join(where)}
        GROUP BY check_name, surface, region, vantage
        ORDER BY check_name, surface, region, vantage
    """
    return _rows(db, sql, params)


def first_result_times(db: sqlite_utils.Database, checks: Iterable[str]) -> dict[str, datetime]:
    """The time of the oldest stored result of each of `checks` that has one."""
    found: dict[str, datetime] = {}
    for check in checks:
        # One index seek per check: MIN over (check_name, ts) reads a single index entry.
        row = db.execute("SELECT MIN(ts) FROM results WHERE check_name = ?", (check,)).fetchone()
        if row and row[0]:
            found[check] = parse_iso(row[0])
    return found


def longest_incidents(
    db: sqlite_utils.Database, now: datetime, check: str | None = None
) -> list[tuple[Incident, int]]:
    """(longest incident, number of incidents) of each check, whole history; an open one lasts until `now`."""
    sql = """
        SELECT * FROM (
            SELECT *, ROW_NUMBER() OVER (
                PARTITION BY check_name
                ORDER BY julianday(COALESCE(resolved_at, :now)) - julianday(started_at) DESC, started_at, id
            ) AS rn, COUNT(*) OVER (PARTITION BY check_name) AS n
            FROM incidents WHERE :check IS NULL OR check_name = :check
        ) WHERE rn = 1 ORDER BY check_name
    """
    cursor = db.execute(sql, {"now": iso(now), "check": check})
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return [(incident_from_row(r), int(r["n"])) for r in rows]


def check_results(db: sqlite_utils.Database, check: str) -> Iterator[ProbeResult]:
    """Every result of `check` in the order it was recorded (time, then insertion), read lazily."""
    cursor = db.execute(
        "SELECT ts, check_name, vantage, region, surface, verdict, reason, signature "
        "FROM results WHERE check_name = ? ORDER BY ts, id",
        (check,),
    )
    names = [d[0] for d in cursor.description]
    for row in cursor:
        yield ProbeResult.from_row(dict(zip(names, row, strict=True)))


def check_known(db: sqlite_utils.Database, name: str) -> bool:
    """Whether the database holds anything of the check `name`: a result, a latest result, an incident."""
    sql = """SELECT EXISTS (SELECT 1 FROM results WHERE check_name = ?)
        OR EXISTS (SELECT 1 FROM latest_results WHERE check_name = ?)
        OR EXISTS (SELECT 1 FROM incidents WHERE check_name = ?)"""
    return bool(db.execute(sql, (name, name, name)).fetchone()[0])


def latest_results(
    db: sqlite_utils.Database, *, check: str | None = None
) -> list[tuple[ProbeResult, datetime]]:
    """The newest result of each check and vantage, with the time of the first result seen from there."""
    sql = f"SELECT {', '.join(LATEST_COLUMNS)} FROM latest_results"  # a table kept by the rollup hook
    params: list[Any] = []
    if check is not None:
        sql += " WHERE check_name = ?"
        params.append(check)
    out = []
    for row in db.execute(sql + " ORDER BY check_name, vantage", params).fetchall():
        r = dict(zip(LATEST_COLUMNS, row, strict=True))
        result = ProbeResult(
            ts=parse_iso(r["ts"]),
            check=r["check_name"],
            vantage=r["vantage"],
            region=r["region"] or r["vantage"],
            surface=Surface(r["surface"] or "web"),
            url=r["url"] or "",
            verdict=Verdict(r["verdict"]),
            reason=Reason(r["reason"]) if r["reason"] else None,
            signature=r["signature"],
            status=r["status"],
            latency_ms=r["latency_ms"],
            phases=Phases(r["dns_ms"], r["connect_ms"], r["tls_ms"], r["ttfb_ms"]),
            bytes=r["bytes"] or 0,
            error=r["error"],
            cert_days=r["cert_days"],
            screenshot_id=r["screenshot_id"],
        )
        out.append((result, parse_iso(r["first_ts"])))
    return out


def last_results(db: sqlite_utils.Database, check: str, n: int) -> list[ProbeResult]:
    """The `n` newest results of `check`, from any vantage, oldest first."""
    sql = "SELECT * FROM results WHERE check_name = ? ORDER BY ts DESC, id DESC LIMIT ?"
    return [ProbeResult.from_row(r) for r in reversed(_rows(db, sql, (check, n)))]
