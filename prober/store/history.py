"""What the rollups say about the past: counts per window, uptime bars, hourly response times.

Every long window is read from `rollup_hourly` and `rollup_daily` (written by
`prober.store.rollup`), never from raw results: whole UTC days from the daily rows, the hours at
either end from the hourly ones.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlite_utils

from prober.model import STATE_SEVERITY, Counts, Incident, State, parse_iso
from prober.store import read
from prober.store.retention import HOURLY_RETENTION, day_key, hour_key
from prober.store.rollup import HISTOGRAM_COLUMNS, LATENCY_BOUNDS_MS

MAINTENANCE_COUNTS = "maintenance_counts"  # results inside maintenance windows (schema migration 6)
DEGRADED_DAY_SHARE = 0.02  # a day without incident is degraded above this share of degraded results


# -- values -----------------------------------------------------------------------------------------


def percentile(histogram: Sequence[int], q: float) -> float | None:
    """The q-quantile (0..1) of a latency histogram in ms, interpolated inside its bucket."""
    return _quantile(histogram, list(itertools.accumulate(histogram)), q)


def _quantile(histogram: Sequence[int], cumulative: list[int], q: float) -> float | None:
    if not cumulative or cumulative[-1] == 0:
        return None
    rank = q * cumulative[-1]
    i = bisect.bisect_left(cumulative, rank)
    i = min(i, len(cumulative) - 1)
    while histogram[i] == 0:  # rank 0 lands before the first non-empty bucket
        i += 1
    low = 0.0 if i == 0 else float(LATENCY_BOUNDS_MS[i - 1])
    if i >= len(LATENCY_BOUNDS_MS):  # the open bucket: all we know is its lower bound
        return low
    before = cumulative[i - 1] if i else 0
    share = (rank - before) / histogram[i]
    return low + (LATENCY_BOUNDS_MS[i] - low) * max(0.0, min(1.0, share))


@dataclass(frozen=True, slots=True)
class LatencyPoint:
    """Response times of one check over one hour, across its vantages (up and degraded results)."""

    hour: datetime
    count: int
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True, slots=True)
class DayStatus:
    """One day of a check's history: the bar of the 90-day uptime strip."""

    day: date
    state: State  # worst incident state of the day; else degraded or operational; unknown without data
    counts: Counts
    incident_minutes: float

    @property
    def availability(self) -> float | None:
        """The day's availability."""
        return self.counts.availability


# -- reading ----------------------------------------------------------------------------------------

_GROUPABLE = ("check_name", "vantage", "region", "surface")


def floor_hour(ts: datetime) -> datetime:
    """The start of the UTC hour of `ts`."""
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(ts: datetime) -> datetime:
    """The start of the UTC day of `ts`."""
    return ts.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _which(check: str | None) -> tuple[str, list[Any]]:
    """The WHERE term choosing one check, or every check of `latest_results`.

    `check_name IN (the checks)` makes SQLite seek each check's range of the primary key in name
    order, so GROUP BY check_name, bucket streams without a sort (and skips rows older than wanted).
    """
    if check is not None:
        return "check_name = ?", [check]
    return "check_name IN (SELECT DISTINCT check_name FROM latest_results)", []


def _ceil(ts: datetime, floor: Callable[[datetime], datetime], step: timedelta) -> datetime:
    low = floor(ts)
    return low if low == ts else low + step


def _ranges(
    since: datetime, until: datetime, now: datetime, hourly_retention: float
) -> list[tuple[str, str, str]]:
    """(table, first bucket, bucket after the last) covering [since, until) with the fewest rows.

    Whole UTC days come from the daily rollups and the hours at either end from the hourly ones, the
    partial hours (or days, where hourly rows are no longer kept) at the ends included whole.
    """
    hour, day = timedelta(hours=1), timedelta(days=1)
    kept = now - timedelta(seconds=hourly_retention) + day  # hourly rows surely kept from here on
    start = floor_hour(since) if since >= kept else floor_day(since)
    end = _ceil(until, floor_hour, hour) if floor_day(until) >= kept else _ceil(until, floor_day, day)
    if start >= end:
        return []
    first_day, last_day = _ceil(start, floor_day, day), floor_day(end)
    if first_day >= last_day:
        return [("rollup_hourly", hour_key(start), hour_key(end))]
    ranges = [("rollup_daily", day_key(first_day), day_key(last_day))]
    if start < first_day:
        ranges.append(("rollup_hourly", hour_key(start), hour_key(first_day)))
    if last_day < end:
        ranges.append(("rollup_hourly", hour_key(last_day), hour_key(end)))
    return ranges


def counts(
    db: sqlite_utils.Database,
    since: datetime,
    until: datetime | None = None,
    *,
    by: Sequence[str] = ("check_name",),
    check: str | None = None,
    now: datetime | None = None,
    hourly_retention: float = HOURLY_RETENTION,
) -> dict[tuple[str, ...], Counts]:
    """Results per verdict over [since, until), grouped by any of check_name, vantage, region, surface.

    Whole UTC days are read from the daily rollups, the hours at either end from the hourly ones; a
    partial hour at either end counts whole (a partial day, where hourly rollups are no longer kept).
    """
    bad = [c for c in by if c not in _GROUPABLE]
    if bad or not by:
        raise ValueError(f"cannot group by {bad or list(by)}: choose among {', '.join(_GROUPABLE)}")
    now = now or datetime.now(UTC)
    out: dict[tuple[str, ...], Counts] = {}
    group = ", ".join(by)
    for table, low, high in _ranges(since, until or now, now, hourly_retention):
        where, params = "bucket >= ? AND bucket < ?", [low, high]
        if check is not None:
            where += " AND check_name = ?"
            params.append(check)
        # Results inside maintenance windows are left out: their hourly counts, whose bucket keys sort
        # within the same day or hour bounds, are subtracted (see prober.maintenance.record).
        for source, sign in ((table, 1), (MAINTENANCE_COUNTS, -1)):
            sql = (
                f"SELECT {group}, SUM(up), SUM(degraded), SUM(down), SUM(unknown) FROM {source} "
                f"WHERE {where} GROUP BY {group}"
            )
            for row in db.execute(sql, params).fetchall():
                key = tuple(row[: len(by)])
                out[key] = out.get(key, Counts()) + Counts(*(sign * n for n in row[len(by) :]))
    return out


def window_counts(
    db: sqlite_utils.Database,
    now: datetime,
    *,
    hours: Sequence[int] = (24,),
    days: Sequence[int] = (7, 30, 90),
    check: str | None = None,
) -> dict[str, dict[str, Counts]]:
    """Counts per check over the last N hours ("24h") and the last N UTC days, today included ("7d").

    Hours are whole hourly buckets from the one N hours ago to the current one; days are whole daily
    buckets, the same days as the uptime bars. One query per window: each streams the rows of its
    window in primary-key order, which is quicker than one pass summing every window with CASEs.
    """
    out: dict[str, dict[str, Counts]] = {}
    which, params = _which(check)
    windows = [("rollup_hourly", f"{n}h", hour_key(now - timedelta(hours=n))) for n in hours]
    windows += [("rollup_daily", f"{n}d", day_key(now - timedelta(days=n - 1))) for n in days]
    for table, label, low in windows:
        for source, sign in ((table, 1), (MAINTENANCE_COUNTS, -1)):  # maintenance left out, as in `counts`
            sql = (
                f"SELECT check_name, SUM(up), SUM(degraded), SUM(down), SUM(unknown) FROM {source} "
                f"WHERE {which} AND bucket >= ? GROUP BY check_name"
            )
            for name, *n in db.execute(sql, [*params, low]).fetchall():
                got = out.setdefault(name, {})
                got[label] = got.get(label, Counts()) + Counts(*(sign * x for x in n))
    every = [label for _, label, _ in windows]
    return {name: {label: windows.get(label, Counts()) for label in every} for name, windows in out.items()}


def hourly_latency(
    db: sqlite_utils.Database,
    since: datetime,
    *,
    check: str | None = None,
    checks: Sequence[str] | None = None,
    until: datetime | None = None,
) -> dict[str, list[LatencyPoint]]:
    """Response time per check and hour from the hour of `since` on (to the hour before `until`),
    histograms merged across vantages; of one `check`, of `checks` (at most 500), or of all."""
    which, params = _which(check)
    if checks is not None:
        which, params = f"check_name IN ({', '.join('?' * len(checks))})", list(checks)
    hist = ", ".join(f"SUM({c})" for c in HISTOGRAM_COLUMNS)
    which += " AND bucket >= ?"
    params.append(hour_key(since))
    if until is not None:
        which += " AND bucket < ?"
        params.append(hour_key(until))
    sql = (
        f"SELECT check_name, bucket, SUM(latency_count), SUM(latency_sum), {hist} FROM rollup_hourly "
        f"WHERE {which} GROUP BY check_name, bucket"
    )
    out: dict[str, list[LatencyPoint]] = {}
    hours: dict[str, datetime] = {}  # a day's 25 bucket names, parsed once for all checks
    for row in db.execute(sql, params).fetchall():
        n = int(row[2])
        histogram = row[4:]
        cumulative = list(itertools.accumulate(histogram))  # once for both quantiles
        hour = hours.get(row[1]) or hours.setdefault(row[1], parse_iso(row[1]))
        point = LatencyPoint(
            hour=hour,
            count=n,
            mean_ms=row[3] / n if n else None,
            p50_ms=_quantile(histogram, cumulative, 0.5),
            p95_ms=_quantile(histogram, cumulative, 0.95),
        )
        out.setdefault(row[0], []).append(point)
    return out


def daily_counts(
    db: sqlite_utils.Database, first_day: date, *, check: str | None = None
) -> dict[str, dict[date, Counts]]:
    """Counts per check and UTC day from `first_day` on, across vantages."""
    which, params = _which(check)
    sql = (
        f"SELECT check_name, bucket, SUM(up), SUM(degraded), SUM(down), SUM(unknown) FROM rollup_daily "
        f"WHERE {which} AND bucket >= ? GROUP BY check_name, bucket"
    )
    rows = db.execute(sql, [*params, day_key(first_day)]).fetchall()
    days = {day: date.fromisoformat(day) for day in {row[1] for row in rows}}  # 90 names, parsed once
    out = {  # rows come by check, then day
        name: {days[r[1]]: Counts(r[2], r[3], r[4], r[5]) for r in group}
        for name, group in itertools.groupby(rows, key=operator.itemgetter(0))
    }
    excluded = (  # results inside maintenance windows, left out as in `counts`
        f"SELECT check_name, substr(bucket, 1, 10), SUM(up), SUM(degraded), SUM(down), SUM(unknown) "
        f"FROM {MAINTENANCE_COUNTS} WHERE {which} AND bucket >= ? GROUP BY check_name, substr(bucket, 1, 10)"
    )
    for name, day, *n in db.execute(excluded, [*params, day_key(first_day)]).fetchall():
        by_day = out.setdefault(name, {})
        key = date.fromisoformat(day)
        by_day[key] = by_day.get(key, Counts()) + Counts(*(-x for x in n))
    return out


def day_states(
    days: Sequence[date],
    counts_by_day: Mapping[date, Counts],
    incidents: Iterable[Incident],
    now: datetime,
) -> list[DayStatus]:
    """Pure: the uptime bar of one check from its daily counts and its incidents overlapping `days`."""
    worst, minutes = incident_days(incidents, now)
    none = Counts()
    return [
        day_status(day, counts_by_day.get(day, none), worst.get(day), minutes.get(day, 0.0)) for day in days
    ]


def day_status(day: date, n: Counts, worst: State | None, incident_minutes: float) -> DayStatus:
    """Pure: a day's bar from its counts and its incidents' worst state (None without any)."""
    state = worst
    if state is None:
        judged = n.up + n.degraded + n.down
        if judged == 0:
            state = State.UNKNOWN
        elif n.degraded > DEGRADED_DAY_SHARE * judged:
            state = State.DEGRADED
        else:
            state = State.OPERATIONAL
    return DayStatus(day, state, n, incident_minutes)


def incident_days(
    incidents: Iterable[Incident], now: datetime
) -> tuple[dict[date, State], dict[date, float]]:
    """Pure: the days `incidents` touch, with their worst state and the minutes of incident in each."""
    by_day: dict[date, list[tuple[datetime, datetime]]] = {}
    worst: dict[date, State] = {}
    for incident in incidents:
        end = incident.resolved_at or now
        day = incident.started_at.astimezone(UTC).date()
        while day <= end.astimezone(UTC).date():
            start_of_day = datetime(day.year, day.month, day.day, tzinfo=UTC)
            low, high = max(incident.started_at, start_of_day), min(end, start_of_day + timedelta(days=1))
            if high > low or incident.started_at == end:
                by_day.setdefault(day, []).append((low, max(low, high)))
                if STATE_SEVERITY[incident.state] > STATE_SEVERITY[worst.get(day, State.UNKNOWN)]:
                    worst[day] = incident.state
            day += timedelta(days=1)
    return worst, {day: _merged_minutes(spans) for day, spans in by_day.items()}


def _merged_minutes(spans: list[tuple[datetime, datetime]]) -> float:
    """Minutes covered by possibly overlapping spans."""
    total, end = 0.0, None
    for low, high in sorted(spans):
        if end is not None and low < end:
            low = end
        if high > low:
            total += (high - low).total_seconds()
        end = high if end is None else max(end, high)
    return total / 60


def day_history(
    db: sqlite_utils.Database,
    now: datetime,
    days: int = 90,
    *,
    checks: Collection[str] | None = None,
    check: str | None = None,
) -> dict[str, list[DayStatus]]:
    """The last `days` UTC days (today last) of each check: worst state, counts, incident minutes."""
    today = now.astimezone(UTC).date()
    span = [today - timedelta(days=days - 1 - i) for i in range(days)]
    counts_by_check = daily_counts(db, span[0], check=check)
    start = datetime(span[0].year, span[0].month, span[0].day, tzinfo=UTC)
    by_check: dict[str, list[Incident]] = {}
    for incident in read.incidents(db, since=start, check=check):
        by_check.setdefault(incident.check, []).append(incident)
    names = set(counts_by_check) | set(by_check) if checks is None else set(checks)
    if check is not None:
        names = {check}
    return {
        name: day_states(span, counts_by_check.get(name, {}), by_check.get(name, []), now) for name in names
    }


def hourly_counts(
    db: sqlite_utils.Database, since: datetime, checks: Collection[str]
) -> dict[str, dict[datetime, Counts]]:
    """Counts per check and UTC hour from the hour of `since` on, across vantages, for `checks`."""
    out: dict[str, dict[datetime, Counts]] = {}
    names = sorted(checks)
    for start in range(0, len(names), 500):  # well within SQLite's limit on parameters
        chunk = names[start : start + 500]
        sql = (
            "SELECT check_name, bucket, SUM(up), SUM(degraded), SUM(down), SUM(unknown) FROM rollup_hourly "
            f"WHERE check_name IN ({', '.join('?' * len(chunk))}) AND bucket >= ? GROUP BY check_name, bucket"
        )
        for row in db.execute(sql, [*chunk, hour_key(since)]).fetchall():
            out.setdefault(row[0], {})[parse_iso(row[1])] = Counts(row[2], row[3], row[4], row[5])
    return out
