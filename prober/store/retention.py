"""Retention: raw results, hourly and daily rollups and stale latest results deleted in short chunks."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import sqlite_utils

from prober.model import iso

if TYPE_CHECKING:
    from prober.store import Store

HOURLY_RETENTION = 35 * 86400.0  # hourly rows: the 24-hour charts and windows up to a month
DAILY_RETENTION = 400 * 86400.0  # daily rows: the 90-day bars and a year of history


def hour_key(ts: datetime) -> str:
    """The `bucket` of the hourly rollup holding `ts`: "2022-12-28T13:00:00Z"."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:00:00Z")


def day_key(ts: datetime | date) -> str:
    """The `bucket` of the daily rollup holding `ts`: "2022-12-28"."""
    return ts.strftime("%Y-%m-%d")


def prune(
    db: sqlite_utils.Database,
    now: datetime,
    retention_seconds: float,
    chunk: int = 5000,
    *,
    hourly_seconds: float = HOURLY_RETENTION,
    daily_seconds: float = DAILY_RETENTION,
) -> int:
    """Delete at most `chunk` rows past their retention, oldest first; how many were deleted.

    Raw results and screenshots go after `retention_seconds`, hourly rollups after `hourly_seconds`,
    daily rollups and the latest result of a vantage not heard from after `daily_seconds`. Run it in
    the writer thread (`store.call`) again and again while it returns `chunk`: each call is one short
    transaction, so result batches are written in between. Rollups never shrink when raw results are deleted.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, not {chunk}")
    steps = (
        ("DELETE FROM results WHERE id IN (SELECT id FROM results WHERE ts < ? ORDER BY ts LIMIT ?)",
         iso(now - timedelta(seconds=retention_seconds))),
        # Screenshots go with the results they belong to.
        ("DELETE FROM screenshots WHERE id IN (SELECT id FROM screenshots WHERE ts < ? ORDER BY ts LIMIT ?)",
         iso(now - timedelta(seconds=retention_seconds))),
        ("DELETE FROM rollup_hourly WHERE (check_name, bucket, vantage) IN "
         "(SELECT check_name, bucket, vantage FROM rollup_hourly WHERE bucket < ? ORDER BY bucket LIMIT ?)",
         hour_key(now - timedelta(seconds=hourly_seconds))),
        ("DELETE FROM rollup_daily WHERE (check_name, bucket, vantage) IN "
         "(SELECT check_name, bucket, vantage FROM rollup_daily WHERE bucket < ? ORDER BY bucket LIMIT ?)",
         day_key(now - timedelta(seconds=daily_seconds))),
        ("DELETE FROM latest_results WHERE (check_name, vantage) IN (SELECT check_name, vantage "
         "FROM latest_results WHERE ts < ? LIMIT ?)",
         iso(now - timedelta(seconds=daily_seconds))),
    )  # fmt: skip
    deleted = 0
    with db.conn:
        # Summaries holding hours or days whose rollups go (`prober.store.summaries`): made again.
        db.conn.execute("DELETE FROM hour_summaries WHERE first_hour < ?", (steps[2][1],))
        db.conn.execute("DELETE FROM day_summaries WHERE first_day < ?", (steps[3][1],))
        for sql, cutoff in steps:
            if deleted >= chunk:
                break
            deleted += db.conn.execute(sql, (cutoff, chunk - deleted)).rowcount
    return deleted


async def prune_store(
    store: Store, now: datetime, retention_seconds: float, chunk: int = 5000, pause: float = 0.05
) -> int:
    """Prune through the store's writer a chunk at a time, pausing in between; rows deleted in all."""
    total = 0
    while True:
        n = await store.call(lambda db: prune(db, now, retention_seconds, chunk))
        total += n
        if n < chunk:
            return total
        await asyncio.sleep(pause)
