"""Summaries: each check's finished days and hours in one small row, so a page reads 1,000 rows, not 345,000.

The 90-day uptime strip and the 24-hour chart of a check change only at its newest end: past days
and hours are done. `day_summaries` holds, per check, the counts of each of its last finished UTC
days across vantages (up, degraded, down, unknown: four integers a day, packed), and
`hour_summaries` the response-time point of each finished hour (count, mean, p50, p95). What is not
in a summary (today, the current hour, a check without a row) is read from the rollups, as before.

Who keeps them (the writer thread):

- `refresh`, run by the daemon every few minutes, adds the days and hours that closed since (a few
  rollup rows per check) and builds the rows missing: a new check, a brand-new or migrated
  database (its first page reads the rollups, as it did before summaries, until the first
  `refresh`: about a second at 1,000 checks);
- the rollup hook (`prober.store.rollup.update_rollups`) deletes the row of a check that receives
  a late result for a day or hour its row already holds: rebuilt by the next `refresh`;
- pruning deletes the rows that hold days whose daily rollups it deleted.

Maintenance windows are not in the summaries: their counts are subtracted when read, as before.
"""

from __future__ import annotations

import asyncio
import math
import sys
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, cast

import sqlite_utils

from prober.model import parse_iso
from prober.store import history
from prober.store.history import MAINTENANCE_COUNTS, LatencyPoint
from prober.store.retention import day_key, hour_key

if TYPE_CHECKING:
    from prober.store import Store

SUMMARY_DAYS = 100  # finished days kept per check: the 90-day strip, whatever day the row was made
SUMMARY_HOURS = 36  # finished hours kept per check: the 24-hour chart
SETTLE = timedelta(minutes=2)  # an hour or day is summarized this long after it finished
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
_NAN = float("nan")


def create_tables(db: sqlite_utils.Database) -> None:
    """Create the summary tables (schema migration 10): empty, filled by the first `refresh`."""
    for table, first in (("day_summaries", "first_day"), ("hour_summaries", "first_hour")):
        db.execute(
            f"""CREATE TABLE IF NOT EXISTS {table} (
  check_name TEXT PRIMARY KEY,
  {first} TEXT NOT NULL,
  through TEXT NOT NULL,
  data BLOB NOT NULL
) WITHOUT ROWID"""
        )


# -- packing ---------------------------------------------------------------------------------------


def _pack(kind: str, values: Iterable[float]) -> bytes:
    packed = array(kind, values)
    if sys.byteorder == "big":  # stored little-endian: a database file moves between machines
        packed.byteswap()
    return packed.tobytes()


def _unpack(kind: str, data: bytes) -> list[float] | list[int]:
    packed = array(kind)
    packed.frombytes(data)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tolist()


# -- reading the rollups --------------------------------------------------------------------------


def _day_counts(
    db: sqlite_utils.Database, first: date | datetime, end: date | datetime, checks: Sequence[str] | None
) -> dict[str, dict[str, tuple[int, int, int, int]]]:
    """Counts per check and day in [first, end) across vantages, from the daily rollups (maintenance
    not subtracted). `checks` None: every check of `latest_results`."""
    out: dict[str, dict[str, tuple[int, int, int, int]]] = {}
    for where, params in _chunks(checks):
        sql = (
            "SELECT check_name, bucket, SUM(up), SUM(degraded), SUM(down), SUM(unknown) FROM rollup_daily "
            f"WHERE {where} AND bucket >= ? AND bucket < ? GROUP BY check_name, bucket"
        )
        for name, day, *n in db.execute(sql, [*params, day_key(first), day_key(end)]).fetchall():
            out.setdefault(name, {})[day] = (n[0], n[1], n[2], n[3])
    return out


def _hour_points(
    db: sqlite_utils.Database, first: datetime, end: datetime, checks: Sequence[str]
) -> dict[str, dict[str, Sequence[float]]]:
    """Response-time figures (count, mean, p50, p95) per check and hour in [first, end), from the
    hourly rollups."""
    out: dict[str, dict[str, Sequence[float]]] = {}
    names = sorted(checks)
    for i in range(0, len(names), 500):
        found = history.hourly_latency(db, first, checks=names[i : i + 500], until=end)
        for name, points in found.items():
            out.setdefault(name, {}).update((hour_key(p.hour), _point_values(p)) for p in points)
    return out


def _chunks(checks: Sequence[str] | None) -> list[tuple[str, list[str]]]:
    if checks is None:
        return [("check_name IN (SELECT DISTINCT check_name FROM latest_results)", [])]
    names = sorted(checks)
    return [
        (f"check_name IN ({', '.join('?' * len(names[i : i + 500]))})", names[i : i + 500])
        for i in range(0, len(names), 500)
    ]


# -- the writer's side ----------------------------------------------------------------------------


def refresh(db: sqlite_utils.Database, now: datetime, limit: int = 250) -> int:
    """Bring the summaries up to the last finished day and hour (writer thread); rows written.

    Rows a day or hour behind get the newly finished ones; rows missing or further behind are made
    again from the rollups, at most `limit` checks per call (call it again while it returns as many).
    """
    written = 0
    settled = now - SETTLE  # results of an hour just finished are still arriving (agents, batches)
    with db.conn:
        written += _refresh(db, _DAYS, history.floor_day(settled), limit)
        written += _refresh(db, _HOURS, history.floor_hour(settled), limit)
    return written


async def refresh_store(store: Store, now: datetime, limit: int = 250, pause: float = 0.05) -> int:
    """Refresh through the store's writer, `limit` checks at a time, pausing in between; rows written."""
    total = 0
    while True:
        n = await store.call(lambda db: refresh(db, now, limit))
        total += n
        if n < limit:
            return total
        await asyncio.sleep(pause)


def _stored(db: sqlite_utils.Database, table: str) -> dict[str, str]:
    """Check -> the last bucket its row holds (not the data: most rounds have nothing to add)."""
    return dict(db.execute(f"SELECT check_name, through FROM {table}").fetchall())


def _forget(db: sqlite_utils.Database, table: str, stored: dict[str, str], known: list[str]) -> None:
    """Delete the rows of checks gone from `latest_results` (their rows would never be refreshed)."""
    gone = set(stored) - set(known)
    db.conn.executemany(f"DELETE FROM {table} WHERE check_name = ?", [(name,) for name in gone])
    for name in gone:
        del stored[name]


def _known(db: sqlite_utils.Database) -> list[str]:
    return [r[0] for r in db.execute("SELECT DISTINCT check_name FROM latest_results").fetchall()]


@dataclass(frozen=True, slots=True)
class _Kind:
    """One of the two summaries: what a bucket is, how many a row keeps, how they are read and packed."""

    table: str
    step: timedelta
    size: int  # buckets kept per row
    key: Callable[[datetime], str]  # the rollup bucket of a time
    packing: str  # array type code: "q" (counts) or "d" (latency figures)
    empty: tuple[float, ...]  # the four values of a bucket without rollups
    read: Callable[
        [sqlite_utils.Database, datetime, datetime, list[str]], Mapping[str, Mapping[str, Sequence[float]]]
    ]


def _refresh(db: sqlite_utils.Database, kind: _Kind, current: datetime, limit: int) -> int:
    """Bring `kind`'s rows up to the bucket before `current` (the start of the current one)."""
    last = current - kind.step  # the last finished bucket
    first, before = last - (kind.size - 1) * kind.step, kind.key(last - kind.step)
    stored = _stored(db, kind.table)
    known = _known(db)
    _forget(db, kind.table, stored, known)
    behind = [n for n, through in stored.items() if through == before]
    rebuild = [n for n in known if n not in stored or stored[n] < before][:limit]
    rows = []
    if behind:  # the bucket that just finished, added to each row, the oldest dropped
        added = kind.read(db, last, current, behind)
        held = dict(db.execute(f"SELECT check_name, data FROM {kind.table} WHERE through = ?", [before]))
        for name in behind:
            new = added.get(name, {}).get(kind.key(last), kind.empty)
            values = [*_unpack(kind.packing, held[name])[4:], *new]
            rows.append((name, kind.key(first), kind.key(last), _pack(kind.packing, values)))
    if rebuild:
        found = kind.read(db, first, current, rebuild)
        span = [kind.key(first + i * kind.step) for i in range(kind.size)]
        for name in rebuild:
            mine = found.get(name, {})
            values = [v for bucket in span for v in mine.get(bucket, kind.empty)]
            rows.append((name, kind.key(first), kind.key(last), _pack(kind.packing, values)))
    db.conn.executemany(f"INSERT OR REPLACE INTO {kind.table} VALUES (?, ?, ?, ?)", rows)
    return len(rows)


def _point_values(p: LatencyPoint) -> tuple[float, float, float, float]:
    mean, p50, p95 = (_NAN if v is None else v for v in (p.mean_ms, p.p50_ms, p.p95_ms))
    return (float(p.count), mean, p50, p95)


_DAYS = _Kind("day_summaries", DAY, SUMMARY_DAYS, day_key, "q", (0, 0, 0, 0), _day_counts)
_HOURS = _Kind("hour_summaries", HOUR, SUMMARY_HOURS, hour_key, "d", (0.0, _NAN, _NAN, _NAN), _hour_points)


# -- the page's side ------------------------------------------------------------------------------


def _usable(db: sqlite_utils.Database, table: str, first: str) -> tuple[dict[str, tuple[str, bytes]], str]:
    """The rows holding `first` on ({check: (their first bucket, data)}) and the last bucket all hold."""
    if not db.table(table).exists():  # a database not migrated yet, served read-only: the rollups
        return {}, ""
    rows = {
        r[0]: (r[1], r[2], r[3]) for r in db.execute(f"SELECT * FROM {table}").fetchall() if r[1] <= first
    }
    through = min((t for _, t, _ in rows.values()), default="")
    return {name: (f, data) for name, (f, _, data) in rows.items()}, through


def day_counts(db: sqlite_utils.Database, span: Sequence[date]) -> dict[str, list[int]]:
    """Check -> its counts on the days of `span` (consecutive UTC days), four a day (up, degraded,
    down, unknown), maintenance windows left out: the finished days from the summaries, the others
    (and every day of a check without a summary) from the daily rollups."""
    first, n = span[0], len(span)
    end = span[-1] + DAY
    rows, through = _usable(db, "day_summaries", day_key(first))
    recent = first if not rows or through < day_key(first) else min(date.fromisoformat(through) + DAY, end)
    if recent == first:
        rows = {}
    out: dict[str, list[int]] = {}
    held = (recent - first).days * 4
    for name, (row_first, data) in rows.items():
        offset = (first - date.fromisoformat(row_first)).days * 4
        out[name] = cast("list[int]", _unpack("q", data)[offset : offset + held]) + [0] * (n * 4 - held)
    if recent < end:
        _add(out, _day_counts(db, recent, end, None), first, n, 1)
    missing = [name for name in _known(db) if name not in rows] if rows else []
    if missing:
        _add(out, _day_counts(db, first, recent, missing), first, n, 1)
    excluded = (  # results inside maintenance windows, left out as in `history.counts`
        "SELECT check_name, substr(bucket, 1, 10) AS day, SUM(up), SUM(degraded), SUM(down), SUM(unknown) "
        f"FROM {MAINTENANCE_COUNTS} WHERE bucket >= ? AND bucket < ? GROUP BY check_name, day"
    )
    maintenance: dict[str, dict[str, tuple[int, int, int, int]]] = {}
    for name, day, *c in db.execute(excluded, [day_key(first), day_key(end)]).fetchall():
        maintenance.setdefault(name, {})[day] = (c[0], c[1], c[2], c[3])
    _add(out, maintenance, first, n, -1)
    return out


def _add(
    out: dict[str, list[int]],
    found: Mapping[str, Mapping[str, Sequence[int]]],
    first: date,
    n: int,
    sign: int,
) -> None:
    for name, days in found.items():
        values = out.get(name)
        if values is None:
            values = out[name] = [0] * (n * 4)
        for day, counts in days.items():
            i = (date.fromisoformat(day) - first).days * 4
            if 0 <= i < n * 4:
                for k in range(4):
                    values[i + k] += sign * counts[k]


def latency(db: sqlite_utils.Database, since: datetime) -> dict[str, list[LatencyPoint]]:
    """Response time per check and hour from the hour of `since` on, as `history.hourly_latency` says:
    the finished hours from the summaries, the others (and a check without one) from the rollups."""
    start = history.floor_hour(since)
    rows, through = _usable(db, "hour_summaries", hour_key(start))
    if not rows or through < hour_key(start):
        return history.hourly_latency(db, since)
    recent = parse_iso(through) + HOUR
    stamps = [start + i * HOUR for i in range(int((recent - start) / HOUR))]
    out: dict[str, list[LatencyPoint]] = {}
    for name, (row_first, data) in rows.items():
        values = cast("list[float]", _unpack("d", data))
        offset = int((start - parse_iso(row_first)) / HOUR) * 4
        points = out[name] = []
        for i, hour in enumerate(stamps):
            count, mean, p50, p95 = values[offset + 4 * i : offset + 4 * i + 4]
            if count:
                points.append(LatencyPoint(hour, int(count), _none(mean), _none(p50), _none(p95)))
    for name, points in history.hourly_latency(db, recent).items():
        out.setdefault(name, []).extend(points)
    missing = [name for name in _known(db) if name not in rows]
    for chunk in range(0, len(missing), 500):
        older = history.hourly_latency(db, since, checks=missing[chunk : chunk + 500], until=recent)
        for name, points in older.items():
            out[name] = points + out.get(name, [])
    return out


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value
