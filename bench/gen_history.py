"""Fill a database with months of synthetic history: rollups for old days, raw results for the recent ones.

    python bench/gen_history.py bench.db --checks 1000 --days 90 --raw-days 14

Each check is probed from three vantages (US, JP, UK) every `--interval` seconds. Its history holds
outages (major: every region; partial: one region) recorded as incidents, slow spells (degraded),
and stray failures that no incident confirms. Days older than `--raw-days` get rollup rows only
(hourly ones while prober keeps them, daily ones always), as if their raw results had been pruned;
the last `--raw-days` days get raw results and the rollups made from them. Rows go in with
`executemany`, without the Store, in a few transactions. Then it makes the summaries of finished days
and hours that a running daemon keeps (`prober.store.summaries`), unless `--no-summaries`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's prober, whatever is installed

from prober.model import iso
from prober.store import RESULT_COLUMNS, Store, connect, summaries
from prober.store.read import LATEST_COLUMNS
from prober.store.retention import HOURLY_RETENTION
from prober.store.rollup import HISTOGRAM_COLUMNS, LATENCY_BOUNDS_MS, VERDICT_COLUMNS, bucket_index

VANTAGES = (("us-east", "US"), ("tokyo", "JP"), ("london", "UK"))
SURFACES = ("web",) * 6 + ("mobile",) * 3 + ("api",)
CAUSES = (("error_page", "x-fret", 200), ("timeout", None, None), ("http_status", None, 503),
          ("dns", None, None), ("connect", None, None), ("error_page", "cloudflare-5xx", 502))  # fmt: skip
UP, DEGRADED, DOWN, UNKNOWN = 0, 1, 2, 3
VERDICTS = ("up", "degraded", "down", "unknown")
N_BUCKETS = len(LATENCY_BOUNDS_MS) + 1
ROLLUP_COLUMNS = ("check_name", "bucket", "vantage", "region", "surface", *VERDICT_COLUMNS, "latency_count",
                  "latency_sum", *HISTOGRAM_COLUMNS)  # fmt: skip


@dataclass
class Outage:
    start: int  # minute index from the beginning of the history
    end: int  # exclusive; may be past the end for an ongoing outage
    vantages: tuple[int, ...]  # indexes into VANTAGES
    cause: tuple[str, str | None, int | None]
    ongoing: bool = False


@dataclass
class Check:
    name: str
    surface: str
    url: str
    mu: float  # log of the median latency in ms
    sigma: float
    outages: list[Outage] = field(default_factory=list)
    slow: list[tuple[int, int]] = field(default_factory=list)  # degraded spells, minutes [start, end)
    pool: list[float] = field(default_factory=list)  # latency samples for raw results
    shares: list[float] = field(default_factory=list)  # expected share of each histogram bucket
    cache: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def histogram(self, n: int) -> tuple[int, ...]:
        """Bucket counts of `n` latencies drawn from the check's distribution (largest remainder)."""
        hist = self.cache.get(n)
        if hist is None:
            raw = [n * s for s in self.shares]
            counts = [int(x) for x in raw]
            order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
            for i in order[: n - sum(counts)]:
                counts[i] += 1
            hist = self.cache[n] = tuple(counts)
        return hist

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)


def make_checks(n: int, minutes: int, rng: random.Random, open_incidents: int) -> list[Check]:
    """Checks with their outages, slow spells and latency distributions."""
    checks = []
    for i in range(n):
        surface = SURFACES[i % len(SURFACES)]
        mu, sigma = math.log(rng.uniform(40, 400)), rng.uniform(0.25, 0.6)
        check = Check(f"{surface}-{i:04d}", surface, f"https://svc{i:04d}.example.test/{surface}", mu, sigma)
        check.pool = [rng.lognormvariate(mu, sigma) for _ in range(4096)]
        cdf = [0.5 * (1 + math.erf((math.log(b) - mu) / (sigma * math.sqrt(2)))) for b in LATENCY_BOUNDS_MS]
        check.shares = [b - a for a, b in zip([0.0, *cdf], [*cdf, 1.0], strict=True)]
        for _ in range(_poisson(rng, 3.0)):  # about three outages in 90 days
            start = rng.randrange(minutes)
            length = min(int(rng.lognormvariate(math.log(25), 0.9)) + 2, 360)
            scope = tuple(range(len(VANTAGES))) if rng.random() < 0.4 else (rng.randrange(len(VANTAGES)),)
            check.outages.append(Outage(start, start + length, scope, rng.choice(CAUSES)))
        for _ in range(_poisson(rng, 2.0)):
            start = rng.randrange(minutes)
            check.slow.append((start, start + rng.randint(30, 180)))
        if i < open_incidents:  # an outage still going on: the banner is not all green
            check.outages.append(Outage(minutes - 20, minutes + 60, (i % len(VANTAGES),), CAUSES[0], True))
        checks.append(check)
    return checks


def _poisson(rng: random.Random, mean: float) -> int:
    k, p, limit = 0, 1.0, math.exp(-mean)
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1


def timeline(check: Check, vantage: int, minutes: int, rng: random.Random) -> bytearray:
    """The verdict of each minute from one vantage."""
    states = bytearray(minutes)
    for start, end in check.slow:
        states[start:end] = bytes([DEGRADED]) * len(states[start:end])
    for outage in check.outages:
        if vantage in outage.vantages:
            states[outage.start : outage.end] = bytes([DOWN]) * len(states[outage.start : outage.end])
    for _ in range(_poisson(rng, minutes / 4000)):  # stray failures no incident confirms
        states[rng.randrange(minutes)] = DOWN
    for _ in range(_poisson(rng, minutes / 20000)):  # the vantage itself failed
        states[rng.randrange(minutes)] = UNKNOWN
    return states


def rollup_row(
    check: Check, vantage: int, bucket: str, counts: list[int], hist: list[int], lat: float
) -> tuple:
    name, region = VANTAGES[vantage]
    served = counts[UP] + counts[DEGRADED]
    return (check.name, bucket, name, region, check.surface, *counts, served, round(lat, 3), *hist)


def _insert(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def add_day(
    acc: dict[str, tuple[list[int], list[int], list[float]]],
    day: str,
    counts: list[int],
    hist: Sequence[int],
    lat: float,
) -> None:
    """Add an hour's rollup to its day's."""
    verdicts, buckets, total = acc.setdefault(day, ([0] * 4, [0] * N_BUCKETS, [0.0]))
    for i in range(4):
        verdicts[i] += counts[i]
    for i in range(N_BUCKETS):
        buckets[i] += hist[i]
    total[0] += lat


def generate(
    path: Path,
    n_checks: int,
    days: int,
    raw_days: int,
    interval: int,
    seed: int,
    open_incidents: int,
    summarize: bool = True,
) -> dict:
    """Write the history; returns what was written."""
    started = time.monotonic()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with Store(path):  # creates the schema, migrations included
        pass
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    step = timedelta(seconds=interval)
    origin = (now - timedelta(days=days)).replace(minute=0, second=0)
    slots = int((now - origin) / step)
    per_hour, per_day = 3600 // interval, 86400 // interval
    raw_from = max(0, slots - raw_days * per_day)
    raw_from -= raw_from % per_hour  # raw results start on an hour boundary
    hourly_from = max(0, slots - int(HOURLY_RETENTION // interval))
    hourly_from -= hourly_from % per_hour
    checks = make_checks(n_checks, slots, rng, open_incidents)

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    insert_results = _insert("results", RESULT_COLUMNS)
    insert_latest = _insert("latest_results", LATEST_COLUMNS)
    insert_hourly = _insert("rollup_hourly", ROLLUP_COLUMNS)
    insert_daily = _insert("rollup_daily", ROLLUP_COLUMNS)

    stamp = [iso(origin + i * step) for i in range(slots)]  # every slot's time, once for all checks
    hour_key = [s[:13] + ":00:00Z" for s in stamp[::per_hour]]
    day_of_slot = [s[:10] for s in stamp]
    written = {"results": 0, "rollup_hourly": 0, "rollup_daily": 0, "incidents": 0}
    for k, check in enumerate(checks):
        conn.execute("BEGIN")
        raw_rows: list[tuple] = []
        hourly_rows: list[tuple] = []
        daily_rows: list[tuple] = []
        latest_rows: list[tuple] = []
        for v, (vantage, region) in enumerate(VANTAGES):
            states = timeline(check, v, slots, rng)
            offset = (k * 7 + v * 13) % min(interval, 60)  # probes spread over the interval
            day_acc: dict[str, tuple[list[int], list[int], list[float]]] = {}

            # Old hours: rollups only, from the timeline and the check's latency distribution.
            for h0 in range(0, raw_from, per_hour):
                counts = [states.count(s, h0, h0 + per_hour) for s in range(4)]
                served = counts[UP] + counts[DEGRADED]
                hist = check.histogram(served)
                lat = served * check.mean
                if h0 >= hourly_from:
                    hourly_rows.append(
                        rollup_row(check, v, hour_key[h0 // per_hour], counts, list(hist), lat)
                    )
                add_day(day_acc, day_of_slot[h0], counts, hist, lat)
            # Recent hours: raw results, and the rollups made from them.
            pool, reason_of = check.pool, {}
            for outage in check.outages:
                if v in outage.vantages:
                    for m in range(max(outage.start, raw_from), min(outage.end, slots)):
                        reason_of[m] = outage.cause
            last: tuple | None = None
            for h0 in range(raw_from, slots, per_hour):
                counts, hist, lat = [0] * 4, [0] * N_BUCKETS, 0.0
                for m in range(h0, min(h0 + per_hour, slots)):
                    state = states[m]
                    counts[state] += 1
                    latency = round(pool[(m * 31 + v) & 4095], 3)
                    reason = signature = error = None
                    status: int | None = 200
                    if state == DEGRADED:
                        latency = round(latency * 3 + 2000, 3)
                        reason = "slow"
                    elif state == DOWN:
                        reason, signature, status = reason_of.get(m, ("timeout", None, None))
                        error = f"{reason} from {region}"
                        latency = 10000.0 if reason == "timeout" else latency
                    elif state == UNKNOWN:
                        reason, status, latency, error = "vantage", None, None, "proxy unreachable"
                    if state in (UP, DEGRADED):
                        hist[bucket_index(latency)] += 1
                        lat += latency
                    ts = stamp[m][:17] + f"{int(stamp[m][17:19]) + offset:02d}.000Z"
                    dns = ttfb = None
                    if latency is not None:
                        dns, ttfb = round(latency * 0.05, 3), round(latency * 0.6, 3)
                    last = (ts, check.name, vantage, region, check.surface, check.url, VERDICTS[state],
                            reason, signature, status, latency, dns, dns, dns, ttfb,
                            0 if status is None else 18000, None, error, None, None)  # fmt: skip
                    # (the last two: no browser evidence, no screenshot)
                    raw_rows.append(last)
                hourly_rows.append(rollup_row(check, v, hour_key[h0 // per_hour], counts, hist, lat))
                add_day(day_acc, day_of_slot[h0], counts, hist, lat)
            for day, (counts, hist, (lat,)) in day_acc.items():
                daily_rows.append(rollup_row(check, v, day, counts, hist, lat))
            if last is not None:
                latest_rows.append((check.name, vantage, stamp[0], last[0], *last[3:18], last[19]))
        conn.executemany(insert_results, raw_rows)
        conn.executemany(insert_hourly, hourly_rows)
        conn.executemany(insert_daily, daily_rows)
        conn.executemany(insert_latest, latest_rows)
        for outage in check.outages:
            reason, signature, _ = outage.cause
            major = len(outage.vantages) == len(VANTAGES)
            conn.execute(
                "INSERT INTO incidents (check_name, state, reason, signature, started_at, detected_at, "
                "resolved_at, vantages, regions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (check.name, "major_outage" if major else "partial_outage", reason, signature,
                 iso(origin + outage.start * step), iso(origin + (outage.start + 1) * step),
                 None if outage.ongoing else iso(origin + min(outage.end, slots) * step),
                 json.dumps([VANTAGES[i][0] for i in outage.vantages]),
                 json.dumps([VANTAGES[i][1] for i in outage.vantages])),
            )  # fmt: skip
        conn.execute("COMMIT")
        written["results"] += len(raw_rows)
        written["rollup_hourly"] += len(hourly_rows)
        written["rollup_daily"] += len(daily_rows)
        written["incidents"] += len(check.outages)
        if sys.stderr.isatty() and (k % 10 == 9 or k == n_checks - 1):
            print(f"\r{k + 1}/{n_checks} checks, {written['results']:,} results", end="", file=sys.stderr)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    if summarize:  # as the daemon keeps them: the page reads its finished days and hours from them
        began = time.monotonic()
        db = connect(path)
        while summaries.refresh(db, now) >= 250:
            pass
        db.conn.close()
        written["summaries_seconds"] = round(time.monotonic() - began, 1)
    written["seconds"] = round(time.monotonic() - started, 1)
    written["bytes"] = path.stat().st_size
    written["checks"], written["vantages"], written["days"], written["raw_days"] = (
        n_checks,
        len(VANTAGES),
        days,
        raw_days,
    )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("db", type=Path, help="database to (re)create")
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90, help="days of history")
    parser.add_argument(
        "--raw-days", type=int, default=14, help="recent days with raw results (the retention)"
    )
    parser.add_argument("--interval", type=int, default=60, help="seconds between probes")
    parser.add_argument("--open-incidents", type=int, default=2, help="checks with an outage going on now")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-summaries", action="store_true", help="leave the page's summaries empty, as after a migration"
    )
    args = parser.parse_args(argv)
    if (
        not 1 <= args.raw_days <= args.days
        or 3600 % args.interval
        or (args.interval < 60 and 60 % args.interval)
    ):
        parser.error("--raw-days must be 1 to --days, and --interval must divide a minute or an hour")
    written = generate(
        args.db, args.checks, args.days, args.raw_days, args.interval, args.seed, args.open_incidents,
        summarize=not args.no_summaries,
    )  # fmt: skip
    print(json.dumps(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
