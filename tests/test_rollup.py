"""Rollups: the batch hook, the migration's backfill, the window queries, the day states, pruning."""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils

from prober.model import Incident, ProbeResult, Reason, State, Surface, Verdict
from prober.store import RESULT_COLUMNS, Store, connect, read, schema
from prober.store import history as h
from prober.store import rollup as r
from prober.store.history import Counts

NOW = datetime(2022, 12, 28, 15, 7, 30, tzinfo=UTC)
VANTAGES = {"us-east": "US", "tokyo": "JP", "london": "UK"}


def open_store(path: Path) -> Store:
    """A store, whose batches maintain the rollups."""
    return Store(path, batch_size=500)


def res(
    ts: datetime, verdict: Verdict = Verdict.UP, *, check: str = "web", vantage: str = "us-east",
    latency: float | None = 120.0, surface: Surface = Surface.WEB,
) -> ProbeResult:  # fmt: skip
    return ProbeResult(
        ts=ts, check=check, vantage=vantage, region=VANTAGES.get(vantage, vantage), surface=surface,
        url="https://x.test/", verdict=verdict, reason=None if verdict is Verdict.UP else Reason.TIMEOUT,
        status=200 if verdict is Verdict.UP else None, latency_ms=latency,
    )  # fmt: skip


def random_results(n: int, seed: int = 7) -> list[ProbeResult]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        verdict = rng.choice(list(Verdict))
        latency = rng.choice([None, rng.lognormvariate(5, 1), 10.0, 10.0004, 30000.0, 1e6])
        out.append(
            res(
                NOW - timedelta(seconds=rng.randint(0, 4 * 86400)),
                verdict,
                check=rng.choice(["web", "api", "app"]),
                vantage=rng.choice(list(VANTAGES)),
                latency=latency,
            )
        )
    return out


def table(path: Path, name: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"SELECT * FROM {name} ORDER BY 1, 2, 3").fetchall()
    return [tuple(round(x, 6) if isinstance(x, float) else x for x in row) for row in rows]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite_utils.Database]:
    path = tmp_path / "p.db"
    with Store(path):
        pass
    handle = connect(path)
    yield handle
    handle.conn.close()


def write(path: Path, results: list[ProbeResult], incidents: tuple[Incident, ...] = ()) -> None:
    with open_store(path) as store:
        for result in results:
            store.add(result)
        for incident in incidents:
            store.save_incident(incident).result()


def test_the_hook_and_the_migrations_backfill_agree(tmp_path: Path) -> None:
    results = random_results(3000)
    write(tmp_path / "live.db", results)
    # The same results written by a prober from before the rollups, then migrated.
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        schema.MIGRATIONS[0](sqlite_utils.Database(conn))
        conn.execute("PRAGMA user_version = 1")
        v1 = [c for c in RESULT_COLUMNS if c not in ("browser", "screenshot_id")]  # schema version 1
        marks = ", ".join("?" * len(v1))
        insert = f"INSERT INTO results ({', '.join(v1)}) VALUES ({marks})"
        conn.executemany(insert, [tuple(x.to_row()[c] for c in v1) for x in results])
    conn.close()
    with Store(old):  # migrates
        pass
    for name in ("rollup_hourly", "rollup_daily", "latest_results"):
        assert table(tmp_path / "live.db", name) == table(old, name), name
    assert len(table(old, "rollup_daily")) == 3 * 3 * 5  # checks x vantages x days touched


def test_hook_counts_verdicts_latency_and_histogram(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    hour = NOW.replace(minute=0, second=0)
    write(path, [
        res(hour, latency=10), res(hour + timedelta(minutes=1), latency=10.5),
        res(hour + timedelta(minutes=2), Verdict.DEGRADED, latency=2500),
        res(hour + timedelta(minutes=3), Verdict.DOWN, latency=10000),  # not a response time
        res(hour + timedelta(minutes=4), Verdict.UNKNOWN, latency=None),
        res(hour - timedelta(minutes=1), latency=99),  # the hour before
    ])  # fmt: skip
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute(
            "SELECT * FROM rollup_hourly WHERE bucket = ?", ("2022-12-28T15:00:00Z",)
        ).fetchone()
        day = conn.execute("SELECT * FROM rollup_daily").fetchone()
        latest = conn.execute("SELECT * FROM latest_results").fetchone()
    assert (row["up"], row["degraded"], row["down"], row["unknown"]) == (2, 1, 1, 1)
    assert row["latency_count"] == 3 and row["latency_sum"] == pytest.approx(2520.5)
    assert (row["lat_10"], row["lat_20"], row["lat_2500"], row["lat_10000"]) == (1, 1, 1, 0)
    assert (row["region"], row["surface"], row["vantage"]) == ("US", "web", "us-east")
    assert (day["bucket"], day["up"], day["latency_count"]) == ("2022-12-28", 3, 4)
    assert latest["ts"] == "2022-12-28T15:04:00.000Z" and latest["verdict"] == "unknown"
    assert latest["first_ts"] == "2022-12-28T14:59:00.000Z"


def test_late_results_do_not_replace_the_latest(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    write(path, [res(NOW, Verdict.DOWN)])
    write(path, [res(NOW - timedelta(hours=1))])  # a late batch, older
    with sqlite3.connect(path) as conn:
        first, ts, verdict = conn.execute("SELECT first_ts, ts, verdict FROM latest_results").fetchone()
    assert (ts, verdict) == ("2022-12-28T15:07:30.000Z", "down")
    assert first == "2022-12-28T14:07:30.000Z"


@pytest.mark.parametrize(("q", "tolerance"), [(0.5, 0.08), (0.95, 0.1)], ids=["p50", "p95"])
def test_percentiles_from_the_histogram_are_close_to_the_exact_ones(q: float, tolerance: float) -> None:
    rng = random.Random(3)
    for median in (40, 120, 350, 900):
        values = sorted(rng.lognormvariate(math.log(median), 0.5) for _ in range(5000))
        hist = [0] * len(r.HISTOGRAM_COLUMNS)
        for v in values:
            hist[r.bucket_index(v)] += 1
        exact = values[int(q * len(values))]
        estimate = h.percentile(hist, q)
        assert estimate is not None
        assert abs(estimate - exact) / exact < tolerance, (median, q, estimate, exact)


def test_percentile_edges() -> None:
    empty = [0] * len(r.HISTOGRAM_COLUMNS)
    assert h.percentile(empty, 0.5) is None
    only_slow = [*empty[:-1], 4]
    assert h.percentile(only_slow, 0.5) == r.LATENCY_BOUNDS_MS[-1]  # all we know: above the last bound
    one = list(empty)
    one[r.bucket_index(120)] = 1
    assert (h.percentile(one, 0.0), h.percentile(one, 1.0)) == (100, 125)  # the bucket's bounds


def test_counts_by_check_vantage_region_surface(db: sqlite_utils.Database, tmp_path: Path) -> None:
    results = random_results(4000, seed=11)
    write(tmp_path / "p.db", results)
    since, until = NOW - timedelta(days=2, hours=5), NOW - timedelta(hours=3)
    start, end = since.replace(minute=0, second=0), (until + timedelta(hours=1)).replace(minute=0, second=0)
    for by in (("check_name",), ("vantage",), ("region",), ("surface",), ("check_name", "region")):
        got = h.counts(db, since, until, by=by, now=NOW)
        expected: dict[tuple[str, ...], Counts] = {}
        for x in results:
            if start <= x.ts < end:  # partial hours at the ends count whole
                row = x.to_row()
                key = tuple(str(row[c]) for c in by)
                one = Counts(**{str(x.verdict): 1})
                expected[key] = expected.get(key, Counts()) + one
        assert got == expected, by
    assert h.counts(db, since, until, check="api", now=NOW).keys() == {("api",)}
    with pytest.raises(ValueError, match="cannot group by"):
        h.counts(db, since, by=("url",))


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        ("2022-12-28T13:20", "2022-12-28T15:07", [
            ("rollup_hourly", "2022-12-28T13:00:00Z", "2022-12-28T16:00:00Z"),
        ]),
        ("2022-12-25T13:20", "2022-12-28T15:00", [
            ("rollup_daily", "2022-12-26", "2022-12-28"),
            ("rollup_hourly", "2022-12-25T13:00:00Z", "2022-12-26T00:00:00Z"),
            ("rollup_hourly", "2022-12-28T00:00:00Z", "2022-12-28T15:00:00Z"),
        ]),
        ("2022-12-20T00:00", "2022-12-27T00:00", [("rollup_daily", "2022-12-20", "2022-12-27")]),
        ("2022-10-01T07:00", "2022-12-28T15:07", [  # older than hourly rows are kept: from its whole day
            ("rollup_daily", "2022-10-01", "2022-12-28"),
            ("rollup_hourly", "2022-12-28T00:00:00Z", "2022-12-28T16:00:00Z"),
        ]),
        ("2022-12-28T15:00", "2022-12-28T15:00", []),
    ],
    ids=["same-day", "days-and-edges", "whole-days", "old-start", "empty"],
)  # fmt: skip
def test_ranges_read_whole_days_from_daily_rows(
    since: str, until: str, expected: list[tuple[str, str, str]]
) -> None:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    assert h._ranges(at(since), at(until), NOW, r.HOURLY_RETENTION) == expected


def test_window_counts_use_hours_and_whole_days(db: sqlite_utils.Database, tmp_path: Path) -> None:
    results = [
        res(NOW - timedelta(minutes=5), Verdict.DOWN),
        res(NOW - timedelta(hours=20)),
        res(NOW - timedelta(hours=25, minutes=30)),  # before the hour 24 hours ago
        res(NOW - timedelta(days=6, hours=14)),  # 2022-12-22: the 7th day back
        res(NOW - timedelta(days=7, hours=14)),  # 2022-12-21: not in 7d
        res(NOW - timedelta(days=20), Verdict.UNKNOWN),
        res(NOW - timedelta(days=80), Verdict.DEGRADED, check="other"),
    ]
    write(tmp_path / "p.db", results)
    got = h.window_counts(db, NOW)
    assert got["web"]["24h"] == Counts(up=1, down=1)
    assert got["web"]["7d"] == Counts(up=3, down=1)
    assert got["web"]["30d"] == Counts(up=4, down=1, unknown=1)
    assert got["other"]["90d"] == Counts(degraded=1) and got["other"]["24h"] == Counts()
    assert got["web"]["30d"].availability == pytest.approx(0.8)
    assert Counts(unknown=5).availability is None
    assert h.window_counts(db, NOW, check="web").keys() == {"web"}


def test_hourly_latency_merges_vantages(db: sqlite_utils.Database, tmp_path: Path) -> None:
    hour = NOW.replace(minute=0, second=0)
    results = [
        res(hour + timedelta(seconds=i), latency=100 + i, vantage=v) for i in range(40) for v in VANTAGES
    ]
    results.append(res(hour - timedelta(hours=30), latency=5000))  # too old for the 24 hours asked
    write(tmp_path / "p.db", results)
    (point,) = h.hourly_latency(db, NOW - timedelta(hours=24))["web"]
    assert point.hour == hour and point.count == 120
    assert point.mean_ms == pytest.approx(119.5)
    assert 100 <= (point.p50_ms or 0) <= 125 and (point.p95_ms or 0) <= 150


def test_day_states_from_incidents_and_degraded_share() -> None:
    days = [date(2022, 12, d) for d in range(24, 29)]
    incident = Incident(
        "web", State.MAJOR_OUTAGE, Reason.ERROR_PAGE, "x-fret",
        started_at=datetime(2022, 12, 25, 23, 30, tzinfo=UTC),
        detected_at=datetime(2022, 12, 25, 23, 32, tzinfo=UTC),
        resolved_at=datetime(2022, 12, 26, 0, 45, tzinfo=UTC),
    )  # fmt: skip
    ongoing = Incident("web", State.PARTIAL_OUTAGE, Reason.DNS, None, NOW - timedelta(minutes=20), NOW)
    counts = {
        date(2022, 12, 24): Counts(up=1000),
        date(2022, 12, 25): Counts(up=900, down=100),
        date(2022, 12, 26): Counts(up=1000),
        date(2022, 12, 27): Counts(up=950, degraded=50),  # 5%: above the share
    }
    got = h.day_states(days, counts, [incident, ongoing], NOW)
    assert [d.state for d in got] == [
        State.OPERATIONAL, State.MAJOR_OUTAGE, State.MAJOR_OUTAGE, State.DEGRADED, State.PARTIAL_OUTAGE,
    ]  # fmt: skip
    assert [round(d.incident_minutes, 1) for d in got] == [0, 30, 45, 0, 20]
    assert got[1].availability == pytest.approx(0.9)
    assert h.day_states([date(2022, 12, 1)], {}, [], NOW)[0].state is State.UNKNOWN


def test_day_history_reads_rollups_and_incidents(db: sqlite_utils.Database, tmp_path: Path) -> None:
    start = datetime(2022, 12, 26, 13, 50, tzinfo=UTC)
    incident = Incident(
        "web", State.MAJOR_OUTAGE, Reason.ERROR_PAGE, None, start, start, start + timedelta(minutes=55)
    )
    write(tmp_path / "p.db", [res(start, Verdict.DOWN), res(NOW)], (incident,))
    history = h.day_history(db, NOW, 90)["web"]
    assert len(history) == 90 and history[-1].day == NOW.date()
    by_day = {d.day: d for d in history}
    assert by_day[date(2022, 12, 26)].state is State.MAJOR_OUTAGE
    assert by_day[date(2022, 12, 26)].incident_minutes == pytest.approx(55)
    assert by_day[date(2022, 12, 28)].state is State.OPERATIONAL
    assert by_day[date(2022, 12, 27)].state is State.UNKNOWN  # no data: grey


def test_prune_deletes_old_raw_results_in_chunks_and_keeps_rollups(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    old = [res(NOW - timedelta(days=20, minutes=i)) for i in range(120)]
    ancient = [res(NOW - timedelta(days=500), check="gone")]
    write(path, [*old, *ancient, res(NOW)])
    with Store(path) as store:
        first = store.submit(lambda db: r.prune(db, NOW, 14 * 86400, chunk=50)).result()
        assert first == 50
        rest = asyncio.run(r.prune_store(store, NOW, 14 * 86400, chunk=50, pause=0))
    assert first + rest == 121 + 1 + 1 + 1  # raw, hourly and daily rows of `gone`, its latest row
    assert table(path, "results")[0][1] == "2022-12-28T15:07:30.000Z"
    assert len(table(path, "results")) == 1
    daily = table(path, "rollup_daily")
    assert [(row[0], row[1], row[5]) for row in daily] == [
        ("web", "2022-12-08", 120),
        ("web", "2022-12-28", 1),
    ]
    assert len(table(path, "rollup_hourly")) == 4  # 20 days old: still kept; 500 days: gone
    assert [row[0] for row in table(path, "latest_results")] == ["web"]
    with Store(path) as store, pytest.raises(ValueError, match="chunk"):
        store.submit(lambda db: r.prune(db, NOW, 86400, chunk=0)).result()


def test_latest_results_round_trip(db: sqlite_utils.Database, tmp_path: Path) -> None:
    write(
        tmp_path / "p.db",
        [res(NOW - timedelta(minutes=1), vantage=v) for v in VANTAGES] + [res(NOW, Verdict.DOWN)],
    )
    got = {(x.check, x.vantage): (x, first) for x, first in read.latest_results(db)}
    assert len(got) == 3
    newest, first = got[("web", "us-east")]
    assert newest == res(NOW, Verdict.DOWN) and first == NOW - timedelta(minutes=1)
    assert [x.vantage for x, _ in read.latest_results(db, check="web")] == ["london", "tokyo", "us-east"]
