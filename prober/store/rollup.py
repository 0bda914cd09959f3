"""Rollups: hourly and daily counts per check and vantage, kept current as results are written.

Long windows (90 days of uptime bars, 30-day availability) are read from `rollup_hourly` and
`rollup_daily`, never from raw results: a rollup row holds, for one check, vantage and hour (or
UTC day), the number of results of each verdict, the sum and count of the latencies of served
responses (up and degraded) and a latency histogram good enough for p50 and p95. The
`latest_results` table holds the newest result of each check and vantage, so "what is the state
now" never searches the results table either.

This module makes the tables and writes them: `update_rollups` is the Store batch hook that
maintains the three inside each batch's transaction. What they say is read by
`prober.store.history`; `prune` and `prune_store` (`prober.store.retention`, importable from
here too) delete, a chunk at a time, what has outlived its retention.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from prober.model import ProbeResult, Verdict, iso
from prober.store.read import LATEST_COLUMNS
from prober.store.retention import DAILY_RETENTION, HOURLY_RETENTION, prune, prune_store

__all__ = [
    "DAILY_RETENTION",
    "HISTOGRAM_COLUMNS",
    "HOURLY_RETENTION",
    "LATENCY_BOUNDS_MS",
    "VERDICT_COLUMNS",
    "backfill",
    "bucket_index",
    "create_tables",
    "prune",
    "prune_store",
    "update_rollups",
]

# Upper bounds (milliseconds, inclusive) of the latency histogram buckets; the last bucket is open.
# Steps of at most a third between 100 ms and 3 s, where web latencies live: p50/p95 interpolated
# inside a bucket are within a few percent of the exact figures.
LATENCY_BOUNDS_MS: tuple[int, ...] = (
    10, 20, 30, 40, 50, 65, 80, 100, 125, 150, 200, 250, 300, 400, 500, 650, 800, 1000,
    1250, 1500, 2000, 2500, 3000, 4000, 5000, 6500, 8000, 10000, 15000, 30000,
)  # fmt: skip
HISTOGRAM_COLUMNS: tuple[str, ...] = (*(f"lat_{b}" for b in LATENCY_BOUNDS_MS), "lat_inf")
VERDICT_COLUMNS: tuple[str, ...] = ("up", "degraded", "down", "unknown")
_SUMMED = (*VERDICT_COLUMNS, "latency_count", "latency_sum", *HISTOGRAM_COLUMNS)

_VERDICT_INDEX = {Verdict.UP: 0, Verdict.DEGRADED: 1, Verdict.DOWN: 2, Verdict.UNKNOWN: 3}
_SERVED = (Verdict.UP, Verdict.DEGRADED)  # verdicts whose latency is a response time


# -- schema --------------------------------------------------------------------------------------


def create_tables(db: sqlite_utils.Database) -> None:
    """Create the rollup tables and `latest_results` (part of schema migration 2)."""
    counters = ",\n".join(f"  {c} INTEGER NOT NULL DEFAULT 0" for c in (*VERDICT_COLUMNS, "latency_count"))
    histogram = ",\n".join(f"  {c} INTEGER NOT NULL DEFAULT 0" for c in HISTOGRAM_COLUMNS)
    for table in ("rollup_hourly", "rollup_daily"):
        # Clustered by check then time: one check's window, or every check's window in check order
        # (GROUP BY check_name, bucket without a sort), are contiguous reads.
        db.execute(
            f"""CREATE TABLE IF NOT EXISTS {table} (
  check_name TEXT NOT NULL,
  bucket TEXT NOT NULL,
  vantage TEXT NOT NULL,
  region TEXT,
  surface TEXT,
{counters},
  latency_sum REAL NOT NULL DEFAULT 0,
{histogram},
  PRIMARY KEY (check_name, bucket, vantage)
) WITHOUT ROWID"""
        )
        # For pruning by age; an UPDATE of the counters never touches it.
        db.execute(f"CREATE INDEX IF NOT EXISTS {table}_bucket ON {table} (bucket)")
    db.execute(
        """CREATE TABLE IF NOT EXISTS latest_results (
  check_name TEXT NOT NULL,
  vantage TEXT NOT NULL,
  first_ts TEXT NOT NULL,
  ts TEXT NOT NULL,
  region TEXT, surface TEXT, url TEXT, verdict TEXT NOT NULL, reason TEXT, signature TEXT,
  status INTEGER, latency_ms REAL, dns_ms REAL, connect_ms REAL, tls_ms REAL, ttfb_ms REAL,
  bytes INTEGER, cert_days REAL, error TEXT,
  PRIMARY KEY (check_name, vantage)
) WITHOUT ROWID"""
    )


def _histogram_case(column: str) -> list[str]:
    """SQL expressions putting `column` into the histogram buckets, the same way `bucket_index` does."""
    served = "verdict IN ('up', 'degraded')"
    out, low = [], None
    for bound in (*LATENCY_BOUNDS_MS, None):
        cond = [served, f"{column} IS NOT NULL"]
        if low is not None:
            cond.append(f"{column} > {low}")
        if bound is not None:
            cond.append(f"{column} <= {bound}")
        out.append(f"SUM(CASE WHEN {' AND '.join(cond)} THEN 1 ELSE 0 END)")
        low = bound
    return out


def backfill(db: sqlite_utils.Database) -> None:
    """Fill the rollups and `latest_results` from the results already stored (migration 2)."""
    served = "verdict IN ('up', 'degraded') AND latency_ms IS NOT NULL"
    verdicts = [f"SUM(verdict = '{v}')" for v in VERDICT_COLUMNS]
    latency = [
        f"SUM(CASE WHEN {served} THEN 1 ELSE 0 END)",
        f"COALESCE(SUM(CASE WHEN {served} THEN latency_ms END), 0)",
    ]
    values = ", ".join([*verdicts, *latency, *_histogram_case("latency_ms")])
    columns = ", ".join(("check_name", "bucket", "vantage", "region", "surface", *_SUMMED))
    for table, bucket in (
        ("rollup_hourly", "substr(ts, 1, 13) || ':00:00Z'"),
        ("rollup_daily", "substr(ts, 1, 10)"),
    ):
        db.execute(
            f"INSERT INTO {table} ({columns}) SELECT check_name, {bucket}, vantage, MAX(region), "
            f"MAX(surface), {values} FROM results GROUP BY check_name, {bucket}, vantage"
        )
    # The columns of this version of the schema: later migrations add theirs (screenshot_id).
    present = {*db.table("results").columns_dict, "first_ts"}
    latest = [c for c in LATEST_COLUMNS if c in present]
    rest = ", ".join(latest[3:])
    db.execute(
        f"""INSERT INTO latest_results ({", ".join(latest)})
        SELECT check_name, vantage, first_ts, {rest} FROM (
            SELECT *, MIN(ts) OVER w AS first_ts, ROW_NUMBER() OVER (w ORDER BY ts DESC, id DESC) AS rn
            FROM results WINDOW w AS (PARTITION BY check_name, vantage)
        ) WHERE rn = 1"""
    )


# -- the batch hook ----------------------------------------------------------------------------------


def bucket_index(latency_ms: float) -> int:
    """The histogram bucket of a latency: the first whose upper bound is at least it."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def _upsert(table: str) -> str:
    columns = ("check_name", "bucket", "vantage", "region", "surface", *_SUMMED)
    sums = ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMMED)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT (check_name, bucket, vantage) DO UPDATE SET "
        f"region = excluded.region, surface = excluded.surface, {sums}"
    )


_UPSERT_HOURLY = _upsert("rollup_hourly")
_UPSERT_DAILY = _upsert("rollup_daily")
_UPSERT_LATEST = (
    f"INSERT INTO latest_results ({', '.join(LATEST_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(LATEST_COLUMNS))}) "
    "ON CONFLICT (check_name, vantage) DO UPDATE SET first_ts = MIN(first_ts, excluded.first_ts), "
    # A result older than the stored one (a late batch) only moves first_ts.
    + ", ".join(f"{c} = IIF(excluded.ts >= latest_results.ts, excluded.{c}, {c})" for c in LATEST_COLUMNS[3:])
)
_WIDTH = 2 + len(_SUMMED)  # region, surface, then the summed columns


def _accumulate(
    acc: dict[tuple[str, str, str], list[Any]], key: tuple[str, str, str], r: ProbeResult
) -> None:
    row = acc.get(key)
    if row is None:
        row = acc[key] = [r.region, str(r.surface), *([0] * (_WIDTH - 2))]
    row[0], row[1] = r.region, str(r.surface)
    row[2 + _VERDICT_INDEX[r.verdict]] += 1
    if r.verdict in _SERVED and r.latency_ms is not None:
        latency = round(r.latency_ms, 3)  # as stored, so the backfill puts it in the same bucket
        row[6] += 1
        row[7] += latency
        row[8 + bucket_index(latency)] += 1


def update_rollups(db: sqlite_utils.Database, results: Sequence[ProbeResult]) -> None:
    """Store batch hook: add `results` to the hourly and daily rollups and `latest_results`.

    Every `Store` runs it in its writer thread, inside each batch's transaction.
    """
    hourly: dict[tuple[str, str, str], list[Any]] = {}
    daily: dict[tuple[str, str, str], list[Any]] = {}
    newest: dict[tuple[str, str], tuple[str, ProbeResult]] = {}
    first: dict[tuple[str, str], str] = {}
    for r in results:
        ts = iso(r.ts)
        _accumulate(hourly, (r.check, ts[:13] + ":00:00Z", r.vantage), r)
        _accumulate(daily, (r.check, ts[:10], r.vantage), r)
        key = (r.check, r.vantage)
        seen = newest.get(key)
        if seen is None or ts >= seen[0]:
            newest[key] = (ts, r)
        first[key] = min(first.get(key, ts), ts)
    db.conn.executemany(_UPSERT_HOURLY, [(*k, *v) for k, v in hourly.items()])
    db.conn.executemany(_UPSERT_DAILY, [(*k, *v) for k, v in daily.items()])
    _forget_late(db, hourly, daily)
    rows = [
        (r.check, r.vantage, first[key], ts, r.region, str(r.surface), r.url, str(r.verdict),
         None if r.reason is None else str(r.reason), r.signature, r.status, _round(r.latency_ms),
         _round(r.phases.dns_ms), _round(r.phases.connect_ms), _round(r.phases.tls_ms),
         _round(r.phases.ttfb_ms), r.bytes, _round(r.cert_days), r.error, r.screenshot_id)
        for key, (ts, r) in newest.items()
    ]  # fmt: skip  # the columns of LATEST_COLUMNS, as ProbeResult.to_row writes them
    db.conn.executemany(_UPSERT_LATEST, rows)


def _forget_late(
    db: sqlite_utils.Database,
    hourly: dict[tuple[str, str, str], list[Any]],
    daily: dict[tuple[str, str, str], list[Any]],
) -> None:
    """Delete the summaries (`prober.store.summaries`) that hold a day or hour these results add to:
    late results, rare; the next refresh makes them again."""
    now = iso(datetime.now(UTC))
    today, hour = now[:10], now[:13] + ":00:00Z"
    days = {(check, day) for check, day, _ in daily if day < today}
    hours = {(check, bucket) for check, bucket, _ in hourly if bucket < hour}
    if days:
        db.conn.executemany("DELETE FROM day_summaries WHERE check_name = ? AND through >= ?", days)
    if hours:
        db.conn.executemany("DELETE FROM hour_summaries WHERE check_name = ? AND through >= ?", hours)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
