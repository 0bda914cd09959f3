"""Maintenance windows in SQLite: their spans, and the results inside them counted per hour.

`prober run` writes both (through the store's writer, once at start and every minute after), so
`prober serve`, `prober report` and the status page know the windows without the configuration, and
availability can leave their results out long after the raw results have been pruned.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from prober.config import Config
from prober.maintenance.window import Occurrence, occurrences
from prober.model import iso, parse_iso
from prober.store.retention import DAILY_RETENTION, day_key, hour_key

AHEAD = timedelta(days=30)  # how far ahead upcoming spans are listed
UPCOMING_PER_WINDOW = 5  # at most this many upcoming spans of one recurring window
RECOUNT = timedelta(hours=2)  # results arriving this late (agents, a busy writer) are still left out


def planned(
    config: Config, now: datetime, since: datetime | None = None
) -> list[tuple[Occurrence, str | None, str]]:
    """The spans of `config`'s windows from `since` (default: now) to AHEAD, with their cron and zone."""
    found = []
    for window in config.maintenance:
        upcoming = 0
        for span in occurrences(window, since or now, now + AHEAD):
            upcoming += span.starts_at > now
            if upcoming > UPCOMING_PER_WINDOW:
                break
            found.append((span, window.every, window.timezone))
    return found


def record_spans(
    db: sqlite_utils.Database, config: Config, now: datetime, since: datetime | None = None
) -> int:
    """Write the spans since `since` (default: now) and to come; forget future ones no longer configured.

    Spans that ended before `since` are history: a window taken out of the configuration keeps them.
    """
    spans = planned(config, now, since)
    wanted = {(s.window, iso(s.starts_at)) for s, _, _ in spans}
    with db.conn:
        later = db.execute(
            "SELECT name, starts_at, id FROM maintenance_windows WHERE ends_at > ?", [iso(now)]
        )
        for name, starts_at, row_id in later.fetchall():
            if (name, starts_at) in wanted:
                continue
            if starts_at > iso(now):  # planned, then taken out of the configuration
                db.execute("DELETE FROM maintenance_windows WHERE id = ?", [row_id])
            else:  # in progress when it was taken out: it ends now
                db.execute("UPDATE maintenance_windows SET ends_at = ? WHERE id = ?", [iso(now), row_id])
        db.conn.executemany(
            "INSERT INTO maintenance_windows (name, starts_at, ends_at, checks, every, timezone) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name, starts_at) DO UPDATE SET "
            "ends_at = excluded.ends_at, checks = excluded.checks, every = excluded.every, "
            "timezone = excluded.timezone",
            [
                (s.window, iso(s.starts_at), iso(s.ends_at), _checks(s.checks), every, zone)
                for s, every, zone in spans
            ],
        )
    return len(spans)


def _checks(checks: tuple[str, ...] | None) -> str | None:
    return None if checks is None else json.dumps(list(checks))


def spans_between(db: sqlite_utils.Database, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """The recorded spans overlapping [since, until), in start order, as dicts with parsed times."""
    rows = db.execute(
        "SELECT id, name, starts_at, ends_at, checks, every, timezone FROM maintenance_windows "
        "WHERE ends_at > ? AND starts_at < ? ORDER BY starts_at, name",
        [iso(since), iso(until)],
    ).fetchall()
    return [
        {
            "id": row[0],
            "name": row[1],
            "starts_at": parse_iso(row[2]),
            "ends_at": parse_iso(row[3]),
            "checks": None if row[4] is None else tuple(json.loads(row[4])),
            "every": row[5],
            "timezone": row[6],
        }
        for row in rows
    ]


def recount(db: sqlite_utils.Database, since: datetime, now: datetime) -> int:
    """Count again, per check, hour and vantage, the results inside recorded spans from the hour of `since`
    to `now` (into `maintenance_counts`); the number of hours recounted."""
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    spans = spans_between(db, start, now)
    hours = sorted({h for s in spans for h in _hours(max(s["starts_at"], start), min(s["ends_at"], now))})
    with db.conn:
        for hour in hours:
            end = hour + timedelta(hours=1)
            db.execute("DELETE FROM maintenance_counts WHERE bucket = ?", [hour_key(hour)])
            terms, params = [], []
            for s in spans:
                low, high = max(s["starts_at"], hour), min(s["ends_at"], end, now)
                if low >= high:
                    continue
                term = "(ts >= ? AND ts < ?"
                params += [iso(low), iso(high)]
                if s["checks"] is not None:
                    term += f" AND check_name IN ({', '.join('?' * len(s['checks']))})"
                    params += list(s["checks"])
                terms.append(term + ")")
            if not terms:
                continue
            # One WHERE with every span of the hour: a result inside two overlapping spans counts once.
            db.execute(
                "INSERT INTO maintenance_counts "
                "(check_name, bucket, vantage, region, surface, up, degraded, down, unknown) "
                "SELECT check_name, ?, vantage, MAX(region), MAX(surface), SUM(verdict = 'up'), "
                "SUM(verdict = 'degraded'), SUM(verdict = 'down'), SUM(verdict = 'unknown') FROM results "
                f"WHERE ts >= ? AND ts < ? AND ({' OR '.join(terms)}) GROUP BY check_name, vantage",
                [hour_key(hour), iso(hour), iso(end), *params],
            )
    return len(hours)


def _hours(low: datetime, high: datetime) -> Iterable[datetime]:
    hour = low.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour < high:
        yield hour
        hour += timedelta(hours=1)


def prune(db: sqlite_utils.Database, now: datetime) -> int:
    """Forget spans and counts older than the daily rollups they are subtracted from; rows deleted."""
    oldest = now - timedelta(seconds=DAILY_RETENTION)
    with db.conn:
        spans = db.execute("DELETE FROM maintenance_windows WHERE ends_at < ?", [iso(oldest)]).rowcount
        counts = db.execute("DELETE FROM maintenance_counts WHERE bucket < ?", [day_key(oldest)]).rowcount
    return int(spans) + int(counts)


def refresh(db: sqlite_utils.Database, config: Config, now: datetime, since: datetime | None = None) -> int:
    """Record the spans of `config`; recount the results in them since `since` (default: RECOUNT ago)."""
    # A recount reads raw results: never further back than they are kept, or it would count nothing.
    floor = now - timedelta(seconds=config.retention) + timedelta(hours=1)
    since = max(since or now - RECOUNT, floor)
    record_spans(db, config, now, since)
    return recount(db, since, now)


def under_maintenance(db: sqlite_utils.Database, now: datetime, checks: Iterable[str]) -> set[str]:
    """Which of `checks` a recorded span covers at `now`."""
    spans = spans_between(db, now, now + timedelta(microseconds=1))
    return {c for c in checks if any(s["checks"] is None or c in s["checks"] for s in spans)}
