"""Summaries of finished days and hours: the page reads the same with them as from the rollups, after
new days and hours, late results, pruning and the migration that makes them."""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils

from prober.model import Incident, ProbeResult, Reason, State, Surface, Verdict
from prober.store import SCHEMA_VERSION, Store, connect, schema, summaries
from prober.store import history as h
from prober.store import rollup as r
from prober.web.view import load_days

NOW = datetime(2022, 12, 28, 15, 7, 30, tzinfo=UTC)
VANTAGES = {"us-east": "US", "tokyo": "JP", "london": "UK"}
CHECKS = ("web", "api", "app")


def res(ts: datetime, verdict: Verdict, check: str, vantage: str, latency: float | None) -> ProbeResult:
    return ProbeResult(
        ts=ts, check=check, vantage=vantage, region=VANTAGES[vantage], surface=Surface.WEB,
        url="https://x.test/", verdict=verdict, reason=None if verdict is Verdict.UP else Reason.TIMEOUT,
        status=200 if verdict is Verdict.UP else None, latency_ms=latency,
    )  # fmt: skip


def history_of(seed: int, days: int = 6) -> list[ProbeResult]:
    """Results of three checks from three vantages every 20 minutes over `days` days up to NOW:
    mostly up, some degraded, down and unknown, with latencies across the histogram."""
    rng = random.Random(seed)
    out = []
    ts = NOW - timedelta(days=days)
    while ts <= NOW:
        for check in CHECKS:
            for vantage in VANTAGES:
                verdict = rng.choices(list(Verdict), weights=[90, 4, 4, 2])[0]
                latency = None if verdict is Verdict.UNKNOWN else rng.lognormvariate(5, 1)
                out.append(res(ts + timedelta(seconds=rng.randint(0, 59)), verdict, check, vantage, latency))
        ts += timedelta(minutes=20)
    return out


OUTAGE = Incident(
    "web", State.MAJOR_OUTAGE, Reason.TIMEOUT, None, NOW - timedelta(days=2, hours=3),
    NOW - timedelta(days=2, hours=3), NOW - timedelta(days=1, hours=22), ("us-east",), ("US",),
)  # fmt: skip


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "p.db"
    with Store(path) as store:
        for result in history_of(1):
            store.add(result)
        store.save_incident(OUTAGE).result()
    return path


@pytest.fixture
def db(path: Path) -> Iterator[sqlite_utils.Database]:
    handle = connect(path)
    yield handle
    handle.conn.close()


def same_as_rollups(db: sqlite_utils.Database, now: datetime = NOW) -> None:
    """What the page reads (summaries and rollups) is what the rollups alone say."""
    days = load_days(db, now)
    expected = h.day_history(db, now, 90)
    assert set(expected) <= set(days.counts) | set(days.incidents)
    for name, statuses in expected.items():
        assert days.statuses(name) == statuses, name
    latency = summaries.latency(db, now - timedelta(hours=24))
    exact = h.hourly_latency(db, now - timedelta(hours=24))
    # An hour without a served result has no point from a summary, and a point of count 0 from the
    # rollups: the chart draws neither.
    assert latency == {name: [p for p in points if p.count] for name, points in exact.items()}


def rows(db: sqlite_utils.Database, table: str) -> dict[str, tuple[str, str]]:
    return {name: (first, through) for name, first, through, _ in db.execute(f"SELECT * FROM {table}")}


def test_refresh_makes_a_row_per_check_and_the_page_reads_the_same(db: sqlite_utils.Database) -> None:
    same_as_rollups(db)  # none yet: every day and hour from the rollups
    assert summaries.refresh(db, NOW) == 2 * len(CHECKS)
    assert rows(db, "day_summaries") == {c: ("2022-09-19", "2022-12-27") for c in CHECKS}
    assert rows(db, "hour_summaries") == {c: ("2022-12-27T03:00:00Z", "2022-12-28T14:00:00Z") for c in CHECKS}
    same_as_rollups(db)
    assert summaries.refresh(db, NOW) == 0  # up to date: nothing to do


def test_a_day_and_an_hour_later_rows_get_the_finished_ones(db: sqlite_utils.Database, path: Path) -> None:
    summaries.refresh(db, NOW - timedelta(days=1, hours=1))
    with Store(path) as store:  # what a daemon would have written meanwhile, and more
        for result in history_of(2, days=1):
            store.add(result)
    summaries.refresh(db, NOW - timedelta(hours=1))  # the day that closed, and a full rebuild of hours
    summaries.refresh(db, NOW)  # the hour that closed
    assert rows(db, "day_summaries")["web"][1] == "2022-12-27"
    assert rows(db, "hour_summaries")["web"][1] == "2022-12-28T14:00:00Z"
    same_as_rollups(db)
    incremental = dict(db.execute("SELECT check_name, data FROM hour_summaries").fetchall())
    db.execute("DELETE FROM hour_summaries")
    db.conn.commit()
    summaries.refresh(db, NOW)
    assert dict(db.execute("SELECT check_name, data FROM hour_summaries").fetchall()) == incremental


def test_a_late_result_deletes_the_rows_holding_its_day_and_hour(
    db: sqlite_utils.Database, path: Path
) -> None:
    summaries.refresh(db, NOW)
    with Store(path) as store:
        store.add(res(NOW - timedelta(days=3, hours=2), Verdict.DOWN, "api", "tokyo", None))  # late
        store.add(res(NOW, Verdict.DOWN, "app", "tokyo", None))  # today's, current hour: no summary holds it
    assert set(rows(db, "day_summaries")) == set(rows(db, "hour_summaries")) == {"web", "app"}
    same_as_rollups(db)  # api's days and hours from the rollups, its late result counted
    assert summaries.refresh(db, NOW) == 2
    same_as_rollups(db)


def test_pruning_deletes_rows_holding_pruned_buckets(db: sqlite_utils.Database) -> None:
    summaries.refresh(db, NOW)
    r.prune(db, NOW, 86400, hourly_seconds=86400, daily_seconds=4 * 86400)
    assert rows(db, "day_summaries") == rows(db, "hour_summaries") == {}
    same_as_rollups(db)
    summaries.refresh(db, NOW)
    same_as_rollups(db)


def test_maintenance_counts_are_left_out_as_from_the_rollups(db: sqlite_utils.Database) -> None:
    summaries.refresh(db, NOW)
    row = ("web", "2022-12-26T10:00:00Z", "tokyo", "JP", "web", 2, 0, 1, 0)  # 3 results in a window
    db.execute("INSERT INTO maintenance_counts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    db.conn.commit()
    same_as_rollups(db)
    day = load_days(db, NOW).statuses("web")[-3]
    assert day.counts == h.day_history(db, NOW, 90)["web"][-3].counts


def test_a_check_without_a_row_and_one_gone(db: sqlite_utils.Database, path: Path) -> None:
    summaries.refresh(db, NOW)
    with Store(path) as store:
        store.add(res(NOW, Verdict.UP, "new", "london", 80.0))
    same_as_rollups(db)  # "new" has no row: read from the rollups
    db.execute("DELETE FROM latest_results WHERE check_name = 'app'")  # pruned after a year of silence
    db.conn.commit()
    summaries.refresh(db, NOW)
    assert set(rows(db, "day_summaries")) == {"web", "api", "new"}


def test_refresh_store_goes_a_chunk_at_a_time(path: Path) -> None:
    with Store(path) as store:
        assert asyncio.run(summaries.refresh_store(store, NOW, limit=2, pause=0)) == 2 * len(CHECKS)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM day_summaries").fetchone()[0] == len(CHECKS)


def test_the_migration_makes_empty_tables_and_unmigrated_databases_read_the_rollups(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        handle = sqlite_utils.Database(conn)
        for migration in schema.MIGRATIONS[:9]:
            migration(handle)
        conn.execute("PRAGMA user_version = 9")
    old = connect(path)
    assert summaries.latency(old, NOW) == {}  # no table: the rollups (none here)
    assert load_days(old, NOW).counts == {}
    assert schema.migrate(old) == 9 and SCHEMA_VERSION == 10
    assert rows(old, "day_summaries") == rows(old, "hour_summaries") == {}
    old.conn.close()


def test_packing_keeps_floats_and_missing_figures() -> None:
    values = [3.0, 120.5, math.nan, 1e-9]
    back = summaries._unpack("d", summaries._pack("d", values))
    assert back[:2] == values[:2] and math.isnan(back[2]) and back[3] == values[3]
